package dev.panorm.internal.io;

import java.io.IOException;
import java.lang.ref.Cleaner;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A file written anew beside its target and renamed over it once complete, so that a failure, or a JVM stopped
 * meanwhile (Ctrl-C), never leaves a partial file under the target's name: what {@code dev.panorm.io.Npy.Output} and
 * {@code panorm bench --chart} write through. Public for the module's own packages only: this package is not exported.
 *
 * <p>On Linux the file has no name until it is complete ({@link UnnamedFiles}): a process killed meanwhile (SIGKILL,
 * the OOM killer) leaves nothing behind, nor does a folder renamed under it, and no other program can open it and
 * truncate it under a mapping. Where the file system cannot make unnamed files, it is a hidden file beside the target
 * ({@code .NAME.RANDOM.tmp}), deleted on failure and when the JVM exits normally or on a signal it handles.
 *
 * <p>As a Unix tool would: a target that is a symbolic link is written through (the file it points to is replaced,
 * the link stays); a target that exists but is not a regular file (a directory, a FIFO, a device) is refused, never
 * replaced; a new file gets mode {@code 0666 & ~umask}, a replaced one keeps its mode. Errors name the target as
 * given and the reason (directory missing, permission denied, read-only file system, disk full), never the
 * temporary file.
 */
public final class ReplacedFile implements AutoCloseable {
    /** The longest file name most Linux file systems take, in bytes. */
    private static final int MAX_NAME_BYTES = 255;

    private final Path target;
    private final Path destination;
    private final Path temporary;
    private final FileChannel channel;
    /** The unnamed file's own descriptor, which names it on commit; -1 for a named temporary file. */
    private final int descriptor;
    /** Closes {@link #descriptor} once: on commit or close, or when this file is dropped unclosed; null if named. */
    private final Cleaner.Cleanable descriptorCloser;
    /** Deletes a named temporary file when the JVM exits; null for an unnamed one, which needs nothing. */
    private final Thread cleanupOnExit;
    /** The mode the file gets on commit, where the one it is written with differs; null: none to set. */
    private final Set<PosixFilePermission> finalMode;

    private boolean done;

    private ReplacedFile(
            Path target,
            Path destination,
            Path temporary,
            FileChannel channel,
            int descriptor,
            Thread cleanupOnExit,
            Set<PosixFilePermission> finalMode) {
        this.target = target;
        this.destination = destination;
        this.temporary = temporary;
        this.channel = channel;
        this.descriptor = descriptor;
        this.descriptorCloser =
                descriptor < 0 ? null : Descriptors.CLEANER.register(this, () -> UnnamedFiles.close(descriptor));
        this.cleanupOnExit = cleanupOnExit;
        this.finalMode = finalMode;
    }

    /** The cleaner of unnamed files' descriptors, made on first use. */
    private static final class Descriptors {
        static final Cleaner CLEANER = Cleaner.create();
    }

    /**
     * Creates the temporary file beside where {@code target} really is, open for reading and writing.
     *
     * @param target where the file will appear on {@link #commit()}; a symbolic link is followed
     * @return the file; close it
     * @throws IOException naming {@code target} and the reason, if the file cannot be created, or {@code target}
     *     exists and is not a regular file
     */
    public static ReplacedFile create(Path target) throws IOException {
        return create(target, true);
    }

    /** {@link #create(Path)}, an unnamed file only if {@code unnamed} (tests take the other path too). */
    static ReplacedFile create(Path target, boolean unnamed) throws IOException {
        Path destination = destination(target);
        ReplacedFile file = unnamed ? createUnnamed(target, destination) : null;
        return file != null ? file : createNamed(target, destination);
    }

    /** {@return an unnamed file in the destination's folder, or null where none can be made} */
    private static ReplacedFile createUnnamed(Path target, Path destination) {
        int descriptor = UnnamedFiles.open(destination.getParent());
        if (descriptor < 0) {
            return null;
        }
        Path temporary = UnnamedFiles.path(descriptor);
        FileChannel channel = null;
        try {
            Set<PosixFilePermission> mode = writableUntilCommit(destination, temporary); // before it is opened again
            channel = FileChannel.open(temporary, StandardOpenOption.READ, StandardOpenOption.WRITE);
            return new ReplacedFile(target, destination, temporary, channel, descriptor, null, mode);
        } catch (IOException | RuntimeException e) { // no /proc, say: a named file instead, whose errors say why
            if (channel != null) {
                closeQuietly(channel);
            }
            UnnamedFiles.close(descriptor);
            return null;
        }
    }

    private static ReplacedFile createNamed(Path target, Path destination) throws IOException {
        while (true) {
            Path temporary = destination.resolveSibling(temporaryName(destination));
            // Registered before the file exists, so that no moment leaves it behind when the JVM is stopped.
            Thread cleanupOnExit = new Thread(() -> deleteQuietly(temporary), "panorm-file-cleanup");
            Runtime.getRuntime().addShutdownHook(cleanupOnExit);
            FileChannel channel = null;
            try {
                // No permissions given: the system applies 0666 & ~umask, as for any file a tool creates.
                channel = FileChannel.open(
                        temporary, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ, StandardOpenOption.WRITE);
                Set<PosixFilePermission> mode = writableUntilCommit(destination, temporary);
                return new ReplacedFile(target, destination, temporary, channel, -1, cleanupOnExit, mode);
            } catch (FileAlreadyExistsException taken) {
                removeHook(cleanupOnExit); // another file's name: not ours to delete
            } catch (IOException e) {
                abandon(channel, temporary, cleanupOnExit);
                throw cannotWrite(target, destination, e);
            } catch (RuntimeException e) {
                abandon(channel, temporary, cleanupOnExit);
                throw e;
            }
        }
    }

    /**
     * {@return a hidden name for a temporary file beside {@code destination}: ".NAME." and ".tmp" around up to 13
     * random characters, or a short prefix for a name near the limit} A name taken is tried again (CREATE_NEW,
     * linkat), so it need not be unguessable: no SecureRandom, which reads java.security and failed with an
     * InternalError trace under a low `ulimit -n`.
     */
    private static String temporaryName(Path destination) {
        String name = destination.getFileName().toString();
        String prefix =
                name.getBytes(StandardCharsets.UTF_8).length + 19 > MAX_NAME_BYTES ? ".panorm-" : "." + name + ".";
        return prefix + Long.toUnsignedString(ThreadLocalRandom.current().nextLong(), 36) + ".tmp";
    }

    /** Undoes a creation that failed half way. */
    private static void abandon(FileChannel channel, Path temporary, Thread cleanupOnExit) {
        if (channel != null) {
            closeQuietly(channel);
            deleteQuietly(temporary);
        }
        removeHook(cleanupOnExit);
    }

    /**
     * Replaces {@code target} with a file of {@code bytes}, as {@link #create} and {@link #commit()} do.
     *
     * @throws IOException naming {@code target} and the reason; the target is then left as it was
     */
    public static void write(Path target, byte[] bytes) throws IOException {
        try (ReplacedFile out = create(target)) {
            ByteBuffer buffer = ByteBuffer.wrap(bytes);
            try {
                while (buffer.hasRemaining()) {
                    out.channel().write(buffer);
                }
            } catch (IOException e) {
                throw out.cannotWrite(e);
            }
            out.commit();
        }
    }

    /** {@return the temporary file, open for reading and writing until {@link #commit()} or {@link #close()}} */
    public FileChannel channel() {
        return channel;
    }

    /** {@return where the file appears on {@link #commit()}, as the caller named it} */
    public Path target() {
        return target;
    }

    /**
     * {@return the temporary file's path: for an unnamed file {@code /proc/self/fd/N}, which opens it again in this
     * process only}
     */
    public Path temporary() {
        return temporary;
    }

    /**
     * Flushes the file to disk and renames it over the target (over the file a symbolic link points to, leaving the
     * link). Data written through a mapping must be forced by the caller first.
     *
     * @throws IOException if flushing or renaming fails, naming the target and the reason; the target is then
     *     left as it was
     */
    public void commit() throws IOException {
        if (done) {
            throw new IllegalStateException("already committed or closed");
        }
        try {
            channel.force(true);
            channel.close();
            if (finalMode != null) {
                Files.setPosixFilePermissions(temporary, finalMode);
            }
            if (descriptor < 0) {
                Files.move(temporary, destination, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } else {
                name();
            }
        } catch (IOException e) {
            throw cannotWrite(e);
        }
        finish();
    }

    /**
     * Names the unnamed file: as the destination where that does not exist; else under a hidden name beside it, then
     * renamed over it, which replaces it atomically (linkat never replaces). Only a process killed (SIGKILL) between
     * the two leaves that hidden name behind; a shutdown hook removes it on the signals the JVM handles.
     */
    private void name() throws IOException {
        int error = Files.exists(destination, LinkOption.NOFOLLOW_LINKS)
                ? UnnamedFiles.EEXIST
                : UnnamedFiles.link(descriptor, destination);
        if (error == 0) {
            return;
        }
        while (error == UnnamedFiles.EEXIST) {
            Path named = destination.resolveSibling(temporaryName(destination));
            Thread cleanup = new Thread(() -> deleteQuietly(named), "panorm-file-cleanup"); // Ctrl-C meanwhile
            Runtime.getRuntime().addShutdownHook(cleanup);
            error = UnnamedFiles.link(descriptor, named);
            try {
                if (error == 0) {
                    Files.move(named, destination, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
                    return;
                }
            } catch (IOException | RuntimeException e) {
                deleteQuietly(named);
                throw e;
            } finally {
                removeHook(cleanup);
            }
        }
        throw switch (error) {
            case 2 -> new NoSuchFileException(destination.toString()); // ENOENT: the folder was moved or removed
            case 13, 1 -> new AccessDeniedException(destination.toString()); // EACCES, EPERM
            default -> new FileSystemException(destination.toString(), null, UnnamedFiles.describe(error));
        };
    }

    /** Deletes the temporary file unless {@link #commit()} succeeded. */
    @Override
    public void close() {
        if (!done) {
            closeQuietly(channel);
            if (descriptor < 0) {
                deleteQuietly(temporary);
            }
            finish();
        }
    }

    /** {@return an error that names the target as the user gave it and the reason, not the temporary file} */
    public IOException cannotWrite(IOException e) {
        return cannotWrite(target, destination, e);
    }

    private static IOException cannotWrite(Path target, Path destination, IOException e) {
        if (e.getMessage() != null && e.getMessage().startsWith("cannot write ")) {
            return e;
        }
        Path directory = destination.getParent();
        String reason = switch (e) {
            case NoSuchFileException missing
            when !Files.isDirectory(directory) -> "directory " + directory + " does not exist";
            case AccessDeniedException denied -> "permission denied (directory " + directory + ")";
            case FileSystemException system when system.getReason() != null -> system.getReason();
            case FileSystemException system -> "no new file can be made in directory " + directory;
            // FileChannel.map says only "Map failed", with an OutOfMemoryError as the cause when mmap's ENOMEM
            // (address space limited, as under `ulimit -v`) was the reason.
            default ->
                e.getCause() instanceof OutOfMemoryError
                        ? e.getMessage()
                                + ": out of memory or address space for the mapping (a limit such as ulimit -v?)"
                        : e.getMessage();
        };
        return new IOException("cannot write " + target + ": " + reason, e);
    }

    /**
     * Where a write to {@code target} lands: the end of its chain of symbolic links, absolute.
     *
     * @throws IOException if that exists and is not a regular file, or the links loop
     */
    public static Path destination(Path target) throws IOException {
        Path path = endOfLinks(target);
        if (path == null) {
            throw new IOException("cannot write " + target + ": too many levels of symbolic links");
        }
        if (Files.exists(path) && !Files.isRegularFile(path)) {
            throw new IOException("cannot write " + target + ": "
                    + (path.equals(target.toAbsolutePath()) ? "it" : path)
                    + " is " + kind(path) + ", not a regular file; panorm writes a new file and renames it into"
                    + " place, so it never replaces one that is not regular");
        }
        return path;
    }

    /**
     * {@return the end of {@code path}'s chain of symbolic links, absolute, where a write to it lands; null if the
     * links loop (more than 40, as Linux allows)}
     */
    public static Path endOfLinks(Path path) throws IOException {
        Path end = path.toAbsolutePath();
        for (int links = 0; Files.isSymbolicLink(end); links++) {
            if (links == 40) {
                return null;
            }
            end = end.resolveSibling(Files.readSymbolicLink(end));
        }
        return end;
    }

    /** {@return what a file that is not regular is, in words: "a directory", "a FIFO (named pipe)", ...} */
    public static String kind(Path path) {
        if (Files.isDirectory(path)) {
            return "a directory";
        }
        try {
            return switch ((int) Files.getAttribute(path, "unix:mode") & 0170000) {
                case 0010000 -> "a FIFO (named pipe)";
                case 0020000 -> "a character device";
                case 0060000 -> "a block device";
                case 0140000 -> "a socket";
                default -> "a special file";
            };
        } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
            return "a special file";
        }
    }

    /**
     * Gives the new file the owner's read and write while it is written (a mode such as 0444, or a umask such as 0277,
     * would keep it from being opened again, as the mapping and the space reservation do), and returns the mode it gets
     * on commit: a replaced file keeps its own, a new one keeps the one the system gave it ({@code 0666 & ~umask}).
     *
     * @return that mode, or null where it needs no change or the file system has no POSIX permissions
     */
    private static Set<PosixFilePermission> writableUntilCommit(Path destination, Path temporary) throws IOException {
        try {
            Set<PosixFilePermission> given = Files.getPosixFilePermissions(temporary);
            Set<PosixFilePermission> mode =
                    Files.exists(destination) ? Files.getPosixFilePermissions(destination) : given;
            Set<PosixFilePermission> writing =
                    EnumSet.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE);
            writing.addAll(mode);
            if (!writing.equals(given)) {
                Files.setPosixFilePermissions(temporary, writing);
            }
            return writing.equals(mode) ? null : mode;
        } catch (UnsupportedOperationException notPosix) {
            return null;
        }
    }

    private void finish() {
        done = true;
        if (descriptorCloser != null) {
            descriptorCloser.clean(); // an unnamed file not committed is freed with its descriptor
        } else {
            removeHook(cleanupOnExit);
        }
    }

    private static void removeHook(Thread hook) {
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException shuttingDown) {
            // The hook runs anyway; it finds nothing to delete after a commit.
        }
    }

    private static void closeQuietly(FileChannel channel) {
        try {
            channel.close();
        } catch (IOException ignored) {
            // Nothing was committed; the file is deleted next.
        }
    }

    private static void deleteQuietly(Path path) {
        try {
            Files.deleteIfExists(path);
        } catch (IOException ignored) {
            // Best effort: the file has a hidden temporary name.
        }
    }
}
