package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Loading scenarios, each in a fresh JVM running {@link LoaderProbe}. */
class NativeLibraryTest {
    @TempDir
    Path temp;

    private record Result(int exit, String output) {
        boolean has(String line) {
            return output.lines().anyMatch(line::equals);
        }
    }

    /** Runs the probe on the class path. */
    private static Process start(List<String> jvmOptions, Map<String, String> environment) throws IOException {
        List<String> arguments = new ArrayList<>(List.of("--enable-native-access=ALL-UNNAMED"));
        arguments.addAll(jvmOptions);
        arguments.addAll(List.of("-cp", TestJvm.classPath(), LoaderProbe.class.getName()));
        return launch(arguments, environment);
    }

    private static Process launch(List<String> arguments, Map<String, String> environment) throws IOException {
        List<String> command = new ArrayList<>(List.of(TestJvm.java()));
        command.addAll(arguments);
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
        builder.environment().remove(NativeLibrary.LIBRARY_ENV);
        builder.environment().remove(NativeLibrary.CACHE_ENV);
        builder.environment().putAll(environment);
        return builder.start();
    }

    private static Result finish(Process process) throws Exception {
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(60, TimeUnit.SECONDS), "probe JVM did not finish");
        return new Result(process.exitValue(), output);
    }

    private static Result probe(List<String> jvmOptions, Map<String, String> environment) throws Exception {
        return finish(start(jvmOptions, environment));
    }

    private Result probeWithCache(Path cache) throws Exception {
        return probe(List.of("-D" + NativeLibrary.CACHE_PROPERTY + "=" + cache), Map.of());
    }

    @Test
    void theBundledLibrariesLoadWithEverythingOnTheModulePath() throws Exception {
        // panorm's module and the org.bytedeco jars on the module path, the probe patched into panorm's
        // module, no class path and no jdk.incubator.vector: the jars are modules that can never be
        // resolved (they require JavaCPP's modules), so the loader has to find them on the module path itself.
        List<String> modulePath =
                new ArrayList<>(List.of(location(NativeLibrary.class).toString()));
        for (String entry : TestJvm.classPath().split(File.pathSeparator)) {
            String name = Path.of(entry).getFileName().toString();
            if (name.startsWith("dnnl-") || name.startsWith("opencl-")) {
                modulePath.add(entry);
            }
        }
        assertEquals(3, modulePath.size(), "the dnnl and opencl jars among " + TestJvm.classPath());
        Result result = finish(launch(
                List.of(
                        "--enable-native-access=dev.panorm",
                        "-D" + NativeLibrary.CACHE_PROPERTY + "=" + temp.resolve("cache"),
                        "--module-path",
                        String.join(File.pathSeparator, modulePath),
                        "--patch-module",
                        "dev.panorm=" + location(LoaderProbe.class),
                        "--module",
                        "dev.panorm/" + LoaderProbe.class.getName()),
                Map.of()));
        assertEquals(0, result.exit(), result.output());
        assertTrue(result.has("module=dev.panorm"), result.output());
        assertTrue(result.has("java=ok") && result.has("forward=ok"), result.output());
        assertTrue(result.output().contains("path=" + temp.resolve("cache")), result.output());
    }

    /** The class folder that {@code type} was read from (for a patched class, the patch). */
    private static Path location(Class<?> type) throws Exception {
        String resource = type.getName().replace('.', '/') + ".class";
        Path file = Path.of(type.getResource("/" + resource).toURI());
        return file.getRoot().resolve(file.subpath(0, file.getNameCount() - resource.split("/").length));
    }

    /** $HOME, as the XDG specification says, not Java's user.home (from the password database), and no relative XDG. */
    @Test
    void withNoFolderNamedTheLibrariesGoUnderHome() throws Exception {
        Path home = temp.resolve("home");
        Result result = probe(List.of(), Map.of("HOME", home.toString(), "XDG_CACHE_HOME", "relative/cache"));
        assertEquals(0, result.exit(), result.output());
        assertTrue(result.output().contains("path=" + home.resolve(".cache").resolve("panorm")), result.output());
    }

    @Test
    void aMissingOverrideIsAClearErrorAndTheJavaBackendStillWorks() throws Exception {
        Result result = probe(List.of("-D" + NativeLibrary.LIBRARY_PROPERTY + "=/nonexistent/libdnnl.so.3"), Map.of());
        assertEquals(0, result.exit(), result.output());
        assertTrue(result.has("java=ok"), result.output());
        assertTrue(result.has("onednn=unavailable"), result.output());
        assertTrue(
                result.output()
                        .contains("system property panorm.onednn.library names /nonexistent/libdnnl.so.3, "
                                + "which is not a file"),
                result.output());
    }

    @Test
    void autoWithoutOneDnnRunsJavaAndSaysWhyOnce() throws Exception {
        Result result = probe(List.of("-D" + NativeLibrary.LIBRARY_PROPERTY + "=/nonexistent/libdnnl.so.3"), Map.of());
        assertTrue(result.has("auto=ok") && result.has("auto again=ok"), result.output());
        List<String> warnings =
                result.output().lines().filter(l -> l.contains("Backend.AUTO")).toList();
        assertEquals(1, warnings.size(), result.output());
        assertTrue(
                warnings.getFirst().contains("oneDNN cannot be loaded")
                        && warnings.getFirst()
                                .contains("system property panorm.onednn.library names /nonexistent/libdnnl.so.3"),
                result.output());
    }

    @Test
    void withoutTheIncubatorModuleTheJavaBackendRunsScalarKernelsWithOneWarning() throws Exception {
        // start() runs the probe without --add-modules jdk.incubator.vector.
        Result result = probeWithCache(temp.resolve("cache"));
        assertTrue(result.has("java=ok") && result.has("java again=ok"), result.output());
        long warnings = result.output()
                .lines()
                .filter(l -> l.contains("jdk.incubator.vector is not available"))
                .count();
        assertEquals(1, warnings, result.output());
    }

    @Test
    void aFileThatIsNotALibraryIsAClearError() throws Exception {
        Path fake = Files.writeString(temp.resolve("libdnnl.so.3"), "not a library");
        Result result = probe(List.of(), Map.of(NativeLibrary.LIBRARY_ENV, fake.toString()));
        assertTrue(result.has("java=ok"), result.output());
        assertTrue(
                result.output()
                        .contains("could not load " + fake + " (from environment variable PANORM_ONEDNN_LIBRARY)"),
                result.output());
    }

    @Test
    void aLibraryThatIsNotOneDnnIsAClearErrorAndAutoRunsJava() throws Exception {
        Path zlib = Path.of("/lib/x86_64-linux-gnu/libz.so.1");
        Assumptions.assumeTrue(Files.isRegularFile(zlib), "needs a shared library that is not oneDNN: " + zlib);
        Result result = probe(List.of("-D" + NativeLibrary.LIBRARY_PROPERTY + "=" + zlib), Map.of());
        assertEquals(0, result.exit(), result.output());
        assertTrue(result.has("auto=ok") && result.has("auto again=ok"), result.output());
        assertTrue(result.has("onednn=unavailable"), result.output());
        assertTrue(
                result.has("message=" + zlib + " is not oneDNN: it has no function dnnl_version. Unset"
                        + " panorm.onednn.library / PANORM_ONEDNN_LIBRARY to use the bundled 3.8.1."),
                result.output());
    }

    @Test
    void withNativeAccessDeniedAutoRunsJavaAndSaysWhichFlagIsMissing() throws Exception {
        // What a later JDK will do by default without --enable-native-access.
        Result result = finish(launch(
                List.of("--illegal-native-access=deny", "-cp", TestJvm.classPath(), LoaderProbe.class.getName()),
                Map.of()));
        assertEquals(0, result.exit(), result.output());
        assertTrue(result.has("java=ok") && result.has("auto=ok") && result.has("auto again=ok"), result.output());
        assertTrue(result.has("java rows=ok") && result.has("auto rows=ok"), "the vector kernel: " + result.output());
        assertTrue(result.has("npy=ok"), "writing .npy files needs no native access: " + result.output());
        assertTrue(result.has("onednn=unavailable"), result.output());
        assertTrue(
                result.output()
                        .contains("native access is not enabled for panorm, so oneDNN cannot be loaded: run the"
                                + " JVM with --enable-native-access=ALL-UNNAMED"),
                result.output());
    }

    @Test
    void theEnvironmentVariableSelectsAUserProvidedLibrary() throws Exception {
        Path bundled = OneDnn.libraryPath();
        Result result = probe(List.of(), Map.of(NativeLibrary.LIBRARY_ENV, bundled.toString()));
        assertTrue(result.has("path=" + bundled), result.output());
        assertTrue(result.has("forward=ok"), result.output());
    }

    @Test
    void anUnsupportedPlatformIsNamed() throws Exception {
        Result result = probe(List.of("-Dos.arch=riscv64", "-D" + NativeLibrary.CACHE_PROPERTY + "=" + temp), Map.of());
        // The whole probe, .npy files included: a stub made for the wrong ABI crashed the JVM (exit 134).
        assertEquals(0, result.exit(), result.output());
        assertTrue(result.has("java=ok") && result.has("npy=ok"), result.output());
        assertTrue(
                result.output().contains("panorm bundles oneDNN for linux-x86_64 only; this JVM runs on Linux/riscv64"),
                result.output());
    }

    @Test
    void concurrentJvmsExtractOnceAndAgree() throws Exception {
        Path cache = temp.resolve("cache");
        List<Process> processes = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            processes.add(start(List.of("-D" + NativeLibrary.CACHE_PROPERTY + "=" + cache), Map.of()));
        }
        for (Process process : processes) {
            Result result = finish(process);
            assertTrue(result.has("forward=ok"), result.output());
            // A JVM that lost the race uses the winner's folder; it used to fall back to a private copy, saying
            // the (writable) cache folder was unusable.
            assertFalse(result.output().contains("cannot use the cache folder"), result.output());
        }
        try (Stream<Path> entries = Files.list(cache)) {
            List<String> names =
                    entries.map(p -> p.getFileName().toString()).sorted().toList();
            assertEquals(2, names.size(), "one folder and its check's record, no leftovers: " + names);
            assertEquals(".onednn-3.8.1-linux-x86_64-checked", names.getFirst());
            assertTrue(names.getLast().startsWith("onednn-3.8.1-linux-x86_64-"), names.toString());
        }
    }

    @Test
    void theRecordOfAFullCheckSparesLaterLoadsOnlyWhileTheLibrariesStayTheSameFiles() throws Exception {
        Path cache = temp.resolve("cache");
        Path library = extractedLibrary(cache);
        Path folder = library.getParent();
        Path record = cache.resolve(".onednn-3.8.1-linux-x86_64-checked");
        String recorded = Files.readString(record);
        assertTrue(recorded.contains(folder.getFileName().toString()), recorded);
        // Trusted: moved together with its record, the folder is used where the record says, unchecked (a rename keeps
        // each file's size, time and identity). Without the record, the load would extract to the hashed name again.
        Path moved = Files.move(folder, cache.resolve("onednn-3.8.1-linux-x86_64-moved"));
        Files.writeString(record, recorded.replace(folder.getFileName().toString(), "onednn-3.8.1-linux-x86_64-moved"));
        Result trusted = probeWithCache(cache);
        assertTrue(trusted.has("path=" + moved.resolve("libdnnl.so.3")), trusted.output());
        // A library touched since: the record no longer matches, and the full check runs (here: extracts again).
        Files.setLastModifiedTime(
                moved.resolve("libgomp.so.1"), FileTime.from(Instant.now().minusSeconds(60)));
        Result checked = probeWithCache(cache);
        assertTrue(checked.has("path=" + library), checked.output());
        assertEquals(
                recorded.lines().toList().subList(0, 2),
                Files.readString(record).lines().toList().subList(0, 2));
    }

    /** Extracts oneDNN into {@code cache} in a child JVM; returns the cached libdnnl. */
    private Path extractedLibrary(Path cache) throws Exception {
        assertTrue(probeWithCache(cache).has("forward=ok"));
        try (Stream<Path> entries = Files.list(cache)) {
            return entries.filter(Files::isDirectory).findFirst().orElseThrow().resolve("libdnnl.so.3");
        }
    }

    @Test
    void aCachedLibraryReplacedByALinkIsReplaced() throws Exception {
        // The loader resolves $ORIGIN through a link, so the library would not find its neighbours.
        Path cache = temp.resolve("cache");
        Path library = extractedLibrary(cache);
        Path elsewhere = Files.copy(library, temp.resolve("libdnnl.so.3"));
        Files.delete(library);
        Files.createSymbolicLink(library, elsewhere);
        Result result = probeWithCache(cache);
        assertTrue(result.has("forward=ok"), result.output());
        assertTrue(
                result.output().contains("does not match the bundled libraries; extracting it again"), result.output());
        assertTrue(Files.isRegularFile(library, LinkOption.NOFOLLOW_LINKS), "a file again, not a link");
    }

    @Test
    void aTruncatedCachedLibraryIsDetectedAndReplaced() throws Exception {
        Path cache = temp.resolve("cache");
        Path library = extractedLibrary(cache);
        long size = Files.size(library);
        try (FileChannel channel = FileChannel.open(library, StandardOpenOption.WRITE)) {
            channel.truncate(size / 2);
        }
        Result result = probeWithCache(cache);
        assertTrue(result.has("forward=ok"), result.output());
        assertTrue(
                result.output().contains("does not match the bundled libraries; extracting it again"), result.output());
        assertEquals(size, Files.size(library));
    }

    @Test
    void aTamperedCachedLibraryOfTheRightSizeIsDetectedAndReplaced() throws Exception {
        Path cache = temp.resolve("cache");
        Path library = extractedLibrary(cache);
        byte[] original = Files.readAllBytes(library);
        byte[] tampered = original.clone();
        tampered[tampered.length / 2] ^= 0x5A; // same size, one byte changed: only the CRC can tell
        Files.write(library, tampered);
        Result result = probeWithCache(cache);
        assertTrue(result.has("forward=ok"), result.output());
        assertTrue(
                result.output().contains("does not match the bundled libraries; extracting it again"), result.output());
        assertArrayEquals(original, Files.readAllBytes(library));
    }

    @Test
    void aCachePathTheLocaleCannotEncodeFallsBackToATemporaryFolder() throws Exception {
        // Many containers run without a locale: file names are then ASCII, and a path with a u-umlaut is invalid.
        Result result = probe(
                List.of(),
                Map.of(
                        "LC_ALL",
                        "C",
                        "LANG",
                        "C",
                        NativeLibrary.CACHE_ENV,
                        temp.resolve("caf\u00e9").toString()));
        assertEquals(0, result.exit(), result.output());
        assertTrue(result.has("forward=ok"), result.output());
        assertTrue(
                result.output().contains("environment variable PANORM_CACHE_DIR names a path this JVM cannot encode"),
                result.output());
        assertTrue(result.output().contains("LANG=C.UTF-8"), result.output());
    }

    @Test
    void foldersLeftByEndedProcessesAreSweptOnceOldEnough() throws Exception {
        // Process id 999999999 is above Linux's largest (2^22): no process has it. Killed JVMs leave such folders.
        Path cache = temp.resolve("cache");
        Path temporaries = Files.createDirectories(temp.resolve("tmp"));
        FileTime old = FileTime.from(Instant.now().minus(Duration.ofHours(1)));
        List<Path> orphans = List.of(
                cache.resolve(".onednn-3.8.1-linux-x86_64-0123456789abcdef.tmp-999999999-42"),
                cache.resolve(".onednn-3.8.1-linux-x86_64-0123456789abcdef.stale-999999999-42"),
                temporaries.resolve("panorm-onednn-999999999-42"));
        Path young = temporaries.resolve("panorm-onednn-999999999-43"); // perhaps another PID namespace's, extracting
        Path alive =
                temporaries.resolve("panorm-onednn-" + ProcessHandle.current().pid() + "-44");
        for (Path folder : orphans) {
            Files.writeString(Files.createDirectories(folder).resolve("libdnnl.so.3"), "part of a library");
            Files.setLastModifiedTime(folder, old);
        }
        Path partRecord = cache.resolve(".onednn-3.8.1-linux-x86_64-checked.tmp-999999999-42"); // a file
        Files.setLastModifiedTime(Files.writeString(partRecord, "libdnnl.so.3:"), old);
        Files.createDirectories(young);
        Files.setLastModifiedTime(Files.createDirectories(alive), old);
        // A link named like an orphan (anyone may make one in a shared /tmp) is never followed nor removed.
        Path target = Files.createDirectories(temp.resolve("not-panorms"));
        Path kept = Files.writeString(target.resolve("keep"), "someone else's");
        Path link = Files.createSymbolicLink(temporaries.resolve("panorm-onednn-999999999-45"), target);
        Result result = probe(
                List.of("-D" + NativeLibrary.CACHE_PROPERTY + "=" + cache, "-Djava.io.tmpdir=" + temporaries),
                Map.of());
        assertTrue(result.has("forward=ok"), result.output());
        for (Path folder : orphans) {
            assertFalse(Files.exists(folder), folder + " should have been swept");
        }
        assertFalse(Files.exists(partRecord), "a record's unfinished file should have been swept");
        assertTrue(Files.isDirectory(young) && Files.isDirectory(alive), "a young or living process's folder stays");
        assertTrue(Files.isSymbolicLink(link) && Files.exists(kept), "a link and what it points to stay");
    }

    @Test
    void anUnwritableCacheFallsBackToATemporaryFolder() throws Exception {
        // A path below a regular file can never be created, even by root.
        Path blocked = Files.writeString(temp.resolve("a-file"), "").resolve("cache");
        Result result = probeWithCache(blocked);
        assertTrue(result.has("forward=ok"), result.output());
        assertTrue(result.output().contains("cannot use the cache folder " + blocked), result.output());

        Path file = blocked.getParent();
        result = probeWithCache(file);
        assertTrue(result.has("forward=ok"), result.output());
        assertTrue(
                result.output()
                        .contains("cannot use the cache folder " + file + " (" + file + " exists and is not a folder)"),
                result.output());
    }
}
