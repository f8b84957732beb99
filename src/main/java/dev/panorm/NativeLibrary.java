package dev.panorm;

import dev.panorm.internal.cache.CacheFolder;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.module.FindException;
import java.lang.module.ModuleFinder;
import java.lang.module.ModuleReader;
import java.lang.module.ModuleReference;
import java.net.JarURLConnection;
import java.net.URI;
import java.net.URL;
import java.net.URLConnection;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.Properties;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import java.util.zip.CRC32;

/**
 * Finds and loads oneDNN, once per class loader.
 *
 * <p>By default the shared libraries bundled in the {@code org.bytedeco} runtime jars are extracted
 * into a per-user cache folder whose name carries the oneDNN version and a hash of the libraries'
 * contents, then loaded with {@link System#load}. The generated bindings find the symbols through
 * the loader lookup, so nothing in {@code generated/} names a path. Several JVMs may extract at
 * once: each writes into a private temporary folder and renames it into place atomically; the
 * loser of the race uses the winner's folder. A cached library whose size or CRC-32 differs from
 * the jar's entry (truncated, corrupted, tampered with) is replaced. A record beside the folder
 * lets later loads skip that check while the libraries stay the files it passed
 * ({@link #checkedBefore}). The jars may be on the class path or on the module path (see
 * {@link #locate}).
 */
final class NativeLibrary {
    static final String LIBRARY_PROPERTY = "panorm.onednn.library";
    static final String LIBRARY_ENV = "PANORM_ONEDNN_LIBRARY";
    static final String CACHE_PROPERTY = CacheFolder.PROPERTY;
    static final String CACHE_ENV = CacheFolder.ENV;

    private static final String PLATFORM = "linux-x86_64";
    /** libdnnl first: it is the one that is loaded; the others sit beside it ($ORIGIN RUNPATH). */
    private static final List<Bundled> BUNDLED = List.of(
            new Bundled("org.bytedeco.dnnl.linux.x86_64", "org/bytedeco/dnnl/linux-x86_64/libdnnl.so.3"),
            new Bundled("org.bytedeco.dnnl.linux.x86_64", "org/bytedeco/dnnl/linux-x86_64/libgomp.so.1"),
            new Bundled("org.bytedeco.opencl.linux.x86_64", "org/bytedeco/opencl/linux-x86_64/libOpenCL.so.1"));

    private static final System.Logger LOG = System.getLogger("dev.panorm");
    /** The temporary folders of processes that cannot use the cache: this prefix, then the process id. */
    private static final String TEMPORARY_PREFIX = "panorm-onednn-";
    /** Such a temporary folder; group 1 is the process id. */
    private static final Pattern TEMPORARY = Pattern.compile(Pattern.quote(TEMPORARY_PREFIX) + "(\\d+)-\\d+");
    /**
     * A staging or moved-aside folder in the cache ({@link #extractInto}), or a check record being written
     * ({@link #recordCheck}); group 1 is the process id.
     */
    private static final Pattern STAGED_OR_STALE = Pattern.compile("\\.onednn-.*\\.(?:tmp|stale)-(\\d+)-\\d+");
    /**
     * How old a dead process's folder must be before another process removes it: a process in another PID namespace
     * (a container sharing the folder) may look dead while it extracts, which takes about a second.
     */
    private static final long ORPHAN_AGE_MILLIS = 10 * 60 * 1000;

    /** A bundled library: its resource, and the module name of the jar that holds it. */
    private record Bundled(String module, String resource) {}

    /** Where the library came from, once loaded. */
    record Loaded(Path path, boolean bundled) {}

    private static Loaded loaded;
    private static NativeLibraryException failure;

    private NativeLibrary() {}

    /**
     * Loads oneDNN on first use and returns where it came from; every later call returns the same
     * result, or throws the same failure.
     *
     * @throws NativeLibraryException if oneDNN cannot be loaded
     */
    static synchronized Loaded load() {
        if (loaded != null) {
            return loaded;
        }
        if (failure == null) {
            try {
                loaded = locateAndLoad();
                return loaded;
            } catch (NativeLibraryException e) {
                failure = e;
            } catch (RuntimeException e) { // never the caller's problem: AUTO runs Java, ONEDNN says why
                failure = new NativeLibraryException("could not load oneDNN: " + e, e);
            }
        }
        throw new NativeLibraryException(failure.getMessage(), failure);
    }

    /** The oneDNN version of the bundled artifact, e.g. {@code 3.8.1}. */
    static String bundledVersion() {
        return buildProperties().getProperty("onednn.version");
    }

    private static Loaded locateAndLoad() {
        String override = System.getProperty(LIBRARY_PROPERTY);
        String source = "system property " + LIBRARY_PROPERTY;
        if (override == null || override.isBlank()) {
            override = System.getenv(LIBRARY_ENV);
            source = "environment variable " + LIBRARY_ENV;
        }
        if (override != null && !override.isBlank()) {
            Path path;
            try {
                path = Path.of(override).toAbsolutePath();
            } catch (InvalidPathException e) {
                throw new NativeLibraryException(
                        CacheFolder.unencodable(source, e).getMessage(), e);
            }
            if (!Files.isRegularFile(path)) {
                throw new NativeLibraryException(
                        source + " names " + path + ", which is not a file. Point it at a "
                                + "oneDNN 3.x shared library (libdnnl.so.3), or unset it to use the bundled oneDNN "
                                + bundledVersion() + ".",
                        null);
            }
            systemLoad(path, source);
            return new Loaded(path, false);
        }
        String os = System.getProperty("os.name");
        String arch = System.getProperty("os.arch");
        if (!os.startsWith("Linux") || !(arch.equals("amd64") || arch.equals("x86_64"))) {
            throw new NativeLibraryException(
                    "panorm bundles oneDNN for " + PLATFORM + " only; this JVM runs on " + os
                            + "/" + arch + ". Install oneDNN 3.x and set -D" + LIBRARY_PROPERTY
                            + "=/path/to/libdnnl.so "
                            + "(or " + LIBRARY_ENV + "), or use Backend.JAVA.",
                    null);
        }
        List<Entry> entries = new ArrayList<>();
        ModuleFinder modulePath = modulePath();
        for (Bundled bundled : BUNDLED) {
            entries.add(Entry.of(bundled.resource(), locate(bundled, modulePath)));
        }
        Path folder = extract(entries);
        Path library = folder.resolve(entries.getFirst().fileName());
        systemLoad(library, "the bundled oneDNN " + bundledVersion());
        return new Loaded(library, true);
    }

    private static void systemLoad(Path path, String source) {
        try {
            System.load(path.toString());
        } catch (UnsatisfiedLinkError e) {
            String searchPath = System.getenv("LD_LIBRARY_PATH");
            throw new NativeLibraryException(
                    "could not load " + path + " (from " + source + "): " + e.getMessage()
                            + ". It needs its dependencies (libgomp.so.1, libOpenCL.so.1) in the same folder or on the "
                            + "system's library path"
                            + (searchPath == null || searchPath.isBlank()
                                    ? "."
                                    : "; LD_LIBRARY_PATH (" + searchPath + ") comes first, so a copy of them there is"
                                            + " taken instead."),
                    e);
        } catch (IllegalCallerException e) { // --illegal-native-access=deny, the default of a later JDK
            throw new NativeLibraryException(
                    "native access is not enabled for panorm, so oneDNN cannot be loaded: run the JVM with"
                            + " --enable-native-access=ALL-UNNAMED on the class path, --enable-native-access=dev.panorm"
                            + " on the module path (" + e.getMessage() + ")",
                    e);
        }
    }

    /** One bundled library: its jar resource and the size and CRC-32 the jar records for it. */
    private record Entry(String resource, URL url, long size, long crc) {
        String fileName() {
            return resource.substring(resource.lastIndexOf('/') + 1);
        }

        static Entry of(String resource, URL url) {
            if (url == null) {
                throw new NativeLibraryException(
                        "the bundled oneDNN library " + resource + " is neither on the class path "
                                + "nor on the module path. "
                                + "Add org.bytedeco:dnnl:" + buildProperties().getProperty("dnnl.artifact.version")
                                + ":linux-x86_64 and org.bytedeco:opencl:"
                                + buildProperties().getProperty("opencl.artifact.version")
                                + ":linux-x86_64 as runtime dependencies, or set -D" + LIBRARY_PROPERTY + " (or "
                                + LIBRARY_ENV
                                + ") to a oneDNN 3.x library.",
                        null);
            }
            try {
                URLConnection connection = url.openConnection();
                if (connection instanceof JarURLConnection jar
                        && jar.getJarEntry().getCrc() >= 0
                        && jar.getJarEntry().getSize() >= 0) {
                    return new Entry(
                            resource,
                            url,
                            jar.getJarEntry().getSize(),
                            jar.getJarEntry().getCrc());
                }
                // Not in a jar (an exploded class path): read it once to learn its size and CRC.
                try (InputStream in = connection.getInputStream()) {
                    CRC32 crc = new CRC32();
                    long size = 0;
                    byte[] buffer = new byte[1 << 16];
                    for (int n; (n = in.read(buffer)) > 0; size += n) {
                        crc.update(buffer, 0, n);
                    }
                    return new Entry(resource, url, size, crc.getValue());
                }
            } catch (IOException e) {
                throw new NativeLibraryException("could not read the bundled library " + url + ": " + e, e);
            }
        }
    }

    /** The module path of the boot layer, to look for jars in; it finds nothing on the class path. */
    private static ModuleFinder modulePath() {
        String modulePath = System.getProperty("jdk.module.path", "");
        return ModuleFinder.of(
                modulePath.isEmpty()
                        ? new Path[0]
                        : Stream.of(modulePath.split(File.pathSeparator))
                                .map(Path::of)
                                .toArray(Path[]::new));
    }

    /**
     * Where a bundled library is, or null. On the class path the class loader finds it. On the module path
     * it does not: the org.bytedeco jars are modules that require JavaCPP's modules, which panorm leaves out
     * (it uses only the libraries), so they can never be resolved, and the resources of a module that is not
     * resolved are nowhere the class loader looks. The jars are still on the module path, though: a
     * {@link ModuleFinder} over it finds a jar by its module name (it reads module descriptors and resolves
     * nothing), and the library is read from that jar. The class loader goes first, so a resolved module
     * (an application that has all of JavaCPP on its module path) is found too. Only the module path of the
     * command line is searched, not a module layer that an application builds.
     */
    private static URL locate(Bundled bundled, ModuleFinder modulePath) {
        URL url = NativeLibrary.class.getClassLoader().getResource(bundled.resource());
        if (url != null) {
            return url;
        }
        try {
            Optional<ModuleReference> jar = modulePath.find(bundled.module());
            if (jar.isEmpty()) {
                return null;
            }
            try (ModuleReader reader = jar.get().open()) {
                Optional<URI> found = reader.find(bundled.resource());
                return found.isEmpty() ? null : found.get().toURL();
            }
        } catch (FindException | IOException e) {
            throw new NativeLibraryException("could not look for " + bundled.module() + " on the module path: " + e, e);
        }
    }

    /** Extracts the libraries into the cache, or reuses a valid earlier extraction; returns the folder. */
    private static Path extract(List<Entry> entries) {
        String folderPrefix = "onednn-" + bundledVersion() + "-" + PLATFORM + "-";
        Path root = null; // until the settings name one
        Path temporaries = Path.of(System.getProperty("java.io.tmpdir"));
        sweepOrphans(temporaries, TEMPORARY);
        try {
            root = cacheRoot();
            sweepOrphans(root, STAGED_OR_STALE);
            Path checkRecord = root.resolve("." + folderPrefix + "checked");
            Path checked = checkedBefore(checkRecord, folderPrefix, entries);
            if (checked != null) {
                return checked;
            }
            Path folder = extractInto(root, folderPrefix + contentHash(entries), entries);
            recordCheck(checkRecord, folder, entries);
            return folder;
        } catch (IOException | UncheckedIOException | InvalidPathException e) {
            String why = switch (e) {
                case InvalidPathException invalid -> invalid.getMessage();
                case FileAlreadyExistsException notAFolder -> notAFolder.getFile() + " exists and is not a folder";
                default -> e.toString();
            };
            Path temporary = null;
            try {
                temporary = Files.createTempDirectory(
                        temporaries, TEMPORARY_PREFIX + ProcessHandle.current().pid() + "-");
                LOG.log(
                        System.Logger.Level.WARNING,
                        "panorm: cannot use the cache folder" + (root == null ? "" : " " + root) + " (" + why
                                + "); extracting oneDNN into " + temporary + " for this process only. Set -D"
                                + CACHE_PROPERTY
                                + " or " + CACHE_ENV + " to a writable folder with about 90 MiB free.");
                Path folder = extractInto(temporary, folderPrefix + contentHash(entries), entries);
                deleteOnExit(temporary, folder, entries);
                return folder;
            } catch (IOException | UncheckedIOException again) {
                again.addSuppressed(e);
                if (temporary != null) {
                    deleteQuietly(temporary); // a full disk: leave no empty folder behind
                }
                throw new NativeLibraryException(
                        "could not extract oneDNN into " + (root == null ? "the cache folder" : root)
                                + " nor into a temporary folder: " + again + ". Set -D" + CACHE_PROPERTY + " (or "
                                + CACHE_ENV + ") to a writable folder with about 90 MiB free.",
                        again);
            }
        }
    }

    static Path cacheRoot() {
        return CacheFolder.root();
    }

    private static Path extractInto(Path root, String folderName, List<Entry> entries) throws IOException {
        Path folder = root.resolve(folderName);
        // Two attempts: the second follows the removal of an invalid folder or a lost race.
        for (int attempt = 0; attempt < 2; attempt++) {
            if (Files.isDirectory(folder)) {
                if (isValid(folder, entries)) {
                    return folder;
                }
                LOG.log(
                        System.Logger.Level.WARNING,
                        "panorm: the cached oneDNN in " + folder
                                + " is incomplete or does not match the bundled libraries; extracting it again");
                moveAsideAndDelete(folder);
            }
            Files.createDirectories(root);
            Path staging = Files.createTempDirectory(
                    root, "." + folderName + ".tmp-" + ProcessHandle.current().pid() + "-");
            try {
                for (Entry entry : entries) {
                    copyVerified(entry, staging.resolve(entry.fileName()));
                }
                Files.move(staging, folder, StandardCopyOption.ATOMIC_MOVE);
                return folder;
            } catch (AtomicMoveNotSupportedException e) {
                throw new IOException("the file system of " + root + " cannot rename folders atomically", e);
            } catch (FileSystemException raceLost) {
                // Another JVM renamed its complete folder into place first: use that one. Linux says ENOTEMPTY, which
                // the JDK reports as a plain FileSystemException, not a DirectoryNotEmptyException.
                if (!Files.isDirectory(folder)) {
                    throw raceLost;
                }
            } finally {
                deleteRecursively(staging);
            }
        }
        if (Files.isDirectory(folder) && isValid(folder, entries)) {
            return folder;
        }
        throw new IOException("could not create a valid " + folder);
    }

    private static boolean isValid(Path folder, List<Entry> entries) throws IOException {
        for (Entry entry : entries) {
            Path file = folder.resolve(entry.fileName());
            // A link is not ours: the loader resolves $ORIGIN through it, away from the other libraries.
            if (!Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)
                    || Files.size(file) != entry.size()
                    || crc32(file) != entry.crc()) {
                return false;
            }
        }
        return true;
    }

    /**
     * The folder that a record of an earlier full check names, if the record is for these jar entries and every library
     * in that folder is still the file it was then (same size, modification time and file identity); otherwise null,
     * and the full check runs. It spares a JVM's start hashing the entries and reading 90 MB for their CRC-32s (about
     * 50 ms on a warm page cache). Anything that writes, replaces or links a library changes what is compared.
     */
    private static Path checkedBefore(Path record, String folderPrefix, List<Entry> entries) {
        try {
            List<String> lines = Files.readAllLines(record, StandardCharsets.UTF_8);
            if (lines.size() != entries.size() + 2
                    || !lines.getFirst().equals(entriesLine(entries))
                    || !lines.get(1).startsWith(folderPrefix)
                    || lines.get(1).contains("/")) {
                return null;
            }
            Path folder = record.resolveSibling(lines.get(1));
            for (int i = 0; i < entries.size(); i++) {
                if (!lines.get(i + 2).equals(stamp(folder.resolve(entries.get(i).fileName())))) {
                    return null;
                }
            }
            return folder;
        } catch (IOException | RuntimeException noRecord) {
            return null;
        }
    }

    /** Records that {@code folder} passed the full check for {@code entries}; best effort, written atomically. */
    private static void recordCheck(Path record, Path folder, List<Entry> entries) {
        Path staging = null;
        try {
            StringBuilder lines = new StringBuilder(entriesLine(entries)).append('\n');
            lines.append(folder.getFileName()).append('\n');
            for (Entry entry : entries) {
                lines.append(stamp(folder.resolve(entry.fileName()))).append('\n');
            }
            // Named like a staging folder, so that a process killed here leaves nothing the sweep does not take.
            staging = Files.createTempFile(
                    record.getParent(),
                    record.getFileName() + ".tmp-" + ProcessHandle.current().pid() + "-",
                    "");
            Files.writeString(staging, lines, StandardCharsets.UTF_8);
            Files.move(staging, record, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException | RuntimeException notRecorded) {
            if (staging != null) {
                try {
                    Files.deleteIfExists(staging);
                } catch (IOException ignored) {
                    // best effort: the next load checks in full again
                }
            }
        }
    }

    private static String entriesLine(List<Entry> entries) {
        StringBuilder line = new StringBuilder();
        for (Entry entry : entries) {
            line.append(entry.fileName())
                    .append(':')
                    .append(entry.size())
                    .append(':')
                    .append(entry.crc())
                    .append(' ');
        }
        return line.toString().strip();
    }

    /** A file's size, modification time and identity (device and inode), or "none" for anything but a plain file. */
    private static String stamp(Path file) throws IOException {
        BasicFileAttributes attributes =
                Files.readAttributes(file, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        return attributes.isRegularFile()
                ? attributes.size() + " " + attributes.lastModifiedTime().toInstant() + " " + attributes.fileKey()
                : "none";
    }

    private static void copyVerified(Entry entry, Path target) throws IOException {
        try (InputStream in = entry.url().openStream()) {
            Files.copy(in, target);
        }
        if (Files.size(target) != entry.size() || crc32(target) != entry.crc()) {
            throw new IOException("extracted " + entry.resource() + " does not match its jar entry (size or CRC-32)");
        }
    }

    private static long crc32(Path file) throws IOException {
        CRC32 crc = new CRC32();
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer buffer = ByteBuffer.allocateDirect(1 << 20);
            while (channel.read(buffer.clear()) > 0) {
                crc.update(buffer.flip());
            }
        }
        return crc.getValue();
    }

    private static String contentHash(List<Entry> entries) {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            for (Entry entry : entries) {
                sha.update((entry.fileName() + ":" + entry.size() + ":" + entry.crc() + "\n")
                        .getBytes(StandardCharsets.UTF_8));
            }
            return HexFormat.of().formatHex(sha.digest(), 0, 8);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JDK", e);
        }
    }

    /** Renames a bad folder out of the way first, so no other JVM can pick it up half-deleted. */
    private static void moveAsideAndDelete(Path folder) throws IOException {
        Path aside = folder.resolveSibling(
                "." + folder.getFileName() + ".stale-" + ProcessHandle.current().pid() + "-" + System.nanoTime());
        try {
            Files.move(folder, aside, StandardCopyOption.ATOMIC_MOVE);
        } catch (java.nio.file.NoSuchFileException alreadyGone) {
            return;
        }
        deleteQuietly(aside); // the name is free now; what cannot be deleted, a later process sweeps (sweepOrphans)
    }

    /**
     * Removes what processes that ended without cleaning up left in {@code folder} (killed while extracting, or while
     * running on a temporary folder, or unable to delete a folder they moved aside, or writing a check's record):
     * entries named by {@code pattern} whose process is gone and that are old enough: folders and files of this user,
     * never a link (in a shared {@code /tmp} another user could name one so). Best effort: nothing here is an error.
     */
    private static void sweepOrphans(Path folder, Pattern pattern) {
        long oldEnough = System.currentTimeMillis() - ORPHAN_AGE_MILLIS;
        String user = System.getProperty("user.name");
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(folder)) {
            for (Path entry : entries) {
                try {
                    Matcher name = pattern.matcher(entry.getFileName().toString());
                    if (name.matches()
                            && (Files.isDirectory(entry, LinkOption.NOFOLLOW_LINKS)
                                    || Files.isRegularFile(entry, LinkOption.NOFOLLOW_LINKS))
                            && Files.getOwner(entry, LinkOption.NOFOLLOW_LINKS)
                                    .getName()
                                    .equals(user)
                            && ProcessHandle.of(Long.parseLong(name.group(1))).isEmpty()
                            && Files.getLastModifiedTime(entry, LinkOption.NOFOLLOW_LINKS)
                                            .toMillis()
                                    < oldEnough) {
                        deleteQuietly(entry);
                    }
                } catch (IOException | RuntimeException skipped) {
                    // gone meanwhile, or a name too long for a process id: the next entry
                }
            }
        } catch (IOException | RuntimeException ignored) {
            // no such folder yet, or one we cannot read: nothing to sweep
        }
    }

    /** Deletes a folder of ours (files only), making it ours to list first (it may have been made unreadable). */
    private static void deleteQuietly(Path folder) {
        try {
            File top = folder.toFile();
            top.setReadable(true, true);
            top.setWritable(true, true);
            top.setExecutable(true, true);
            deleteRecursively(folder);
        } catch (IOException | RuntimeException ignored) {
            // best effort
        }
    }

    private static void deleteRecursively(Path path) throws IOException {
        if (!Files.exists(path)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(path)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }

    private static void deleteOnExit(Path temporary, Path folder, List<Entry> entries) {
        // Registered parent first: deleteOnExit runs in reverse order of registration.
        temporary.toFile().deleteOnExit();
        folder.toFile().deleteOnExit();
        for (Entry entry : entries) {
            folder.resolve(entry.fileName()).toFile().deleteOnExit();
        }
    }

    private static Properties buildProperties() {
        Properties properties = new Properties();
        try (InputStream in = NativeLibrary.class.getResourceAsStream("panorm.properties")) {
            if (in == null) {
                throw new IllegalStateException("panorm.properties is missing from panorm's jar");
            }
            properties.load(in);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return properties;
    }
}
