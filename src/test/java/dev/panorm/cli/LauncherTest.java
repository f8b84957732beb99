package dev.panorm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code panorm_exec_java} in {@code scripts/java-env.sh}, which {@code scripts/panorm} starts the CLI through: the
 * class-data archive that it writes on a first run and maps on later ones, on a jar of one small class.
 */
class LauncherTest {
    @TempDir
    Path temp;

    /** What the launcher runs: prints a line and exits with the status it is given, or waits to be stopped. */
    public static final class Probe {
        public static void main(String[] args) throws InterruptedException {
            System.out.println("probe ran");
            if (args[0].equals("wait")) {
                Thread.sleep(60_000);
                System.exit(0);
            }
            System.exit(Integer.parseInt(args[0]));
        }
    }

    private record Result(int exit, String output) {}

    private Path probeJar() throws IOException {
        String entry = Probe.class.getName().replace('.', '/') + ".class";
        Path jar = temp.resolve("probe.jar");
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar));
                InputStream in = Probe.class.getResourceAsStream("/" + entry)) {
            out.putNextEntry(new JarEntry(entry));
            in.transferTo(out);
        }
        return jar;
    }

    /** {@code panorm_exec_java folder key [javaOptions] -cp jar Probe exit}, with the test JVM's JDK. */
    private Result launch(Path folder, String key, Map<String, String> environment, String... javaArguments)
            throws Exception {
        Process process = start(folder, key, environment, javaArguments);
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(60, TimeUnit.SECONDS), "the launched JVM did not finish");
        return new Result(process.exitValue(), output);
    }

    private Process start(Path folder, String key, Map<String, String> environment, String... javaArguments)
            throws IOException {
        Path script = Path.of("scripts", "java-env.sh").toAbsolutePath();
        List<String> command = new ArrayList<>(
                List.of("bash", "-c", ". \"$0\"; panorm_exec_java \"$@\"", script.toString(), folder.toString(), key));
        command.addAll(List.of(javaArguments));
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
        builder.environment().put("JAVA_HOME", System.getProperty("java.home"));
        builder.environment().remove("JAVA_OPTS");
        builder.environment().remove("PANORM_CDS");
        builder.environment().putAll(environment);
        return builder.start();
    }

    /** The archive that a first run's part, {@code <archive>.part-<pid>}, is put in place as. */
    private static String archiveOf(String part) {
        return part.replaceAll("\\.part-\\d+$", "");
    }

    private static List<String> names(Path folder) throws IOException {
        try (Stream<Path> files = Files.list(folder)) {
            return files.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void aFirstRunWritesTheArchiveThatLaterRunsPutInPlaceAndMapAndANewKeyReplacesIt() throws Exception {
        Path jar = probeJar();
        Path folder = Files.createDirectories(temp.resolve("target"));
        String probe = Probe.class.getName();

        Result first = launch(folder, "jar 1", Map.of(), "-cp", jar.toString(), probe, "3");
        assertEquals(3, first.exit(), first.output());
        assertEquals("probe ran\n", first.output(), "the run's own output only, no word from the archiving");
        List<String> written = names(folder);
        assertEquals(1, written.size(), "the archive under its writer's name, nothing else: " + written);
        assertTrue(written.getFirst().matches("panorm-cds-\\d+\\.jsa\\.part-\\d+"), written.toString());

        Result mapped = launch(folder, "jar 1", Map.of(), "-Xlog:class+load", "-cp", jar.toString(), probe, "0");
        assertEquals(0, mapped.exit(), mapped.output());
        assertTrue(mapped.output().contains(probe + " source: shared objects file"), mapped.output());
        List<String> archives = names(folder);
        assertEquals(2, archives.size(), "the archive and its stamp, nothing else: " + archives);
        assertEquals(archiveOf(written.getFirst()), archives.getFirst());
        assertEquals(archives.getFirst() + ".stamp", archives.getLast());

        Result rebuilt = launch(folder, "jar 2", Map.of(), "-cp", jar.toString(), probe, "0");
        assertEquals("probe ran\n", rebuilt.output());
        launch(folder, "jar 2", Map.of(), "-cp", jar.toString(), probe, "0");
        List<String> replaced = names(folder);
        assertEquals(2, replaced.size(), replaced.toString());
        assertFalse(replaced.equals(archives), "a new key writes a new archive and removes the old one");
    }

    @Test
    void anArchiveIsPutInPlaceOnceWrittenAllAndAnUnfinishedOneRemovedOnceItsWriterIsGone() throws Exception {
        Path jar = probeJar();
        Path folder = Files.createDirectories(temp.resolve("target"));
        String probe = Probe.class.getName();
        launch(folder, "key", Map.of(), "-cp", jar.toString(), probe, "0");
        Path part = folder.resolve(names(folder).getFirst());
        String archive = archiveOf(part.getFileName().toString());
        byte[] complete = Files.readAllBytes(part);
        Files.delete(part);
        // A JVM killed while writing leaves the header, which it writes last, zero: such a part is removed unused once
        // its writer is gone, and left alone while its writer runs (this test's JVM, say).
        long dead =
                ProcessHandle.allProcesses().mapToLong(ProcessHandle::pid).max().orElseThrow() + 1000;
        byte[] unfinished = Arrays.copyOf(complete, complete.length / 2);
        Arrays.fill(unfinished, 0, 4096, (byte) 0);
        Files.write(folder.resolve(archive + ".part-" + dead), unfinished);
        Path running =
                folder.resolve(archive + ".part-" + ProcessHandle.current().pid());
        Files.write(running, unfinished);

        Result result = launch(folder, "key", Map.of(), "-Xlog:class+load", "-cp", jar.toString(), probe, "0");
        assertFalse(result.output().contains(probe + " source: shared objects file"), result.output());
        List<String> left = names(folder);
        assertEquals(2, left.size(), "the running writer's part and this run's: " + left);
        assertTrue(left.contains(running.getFileName().toString()), left.toString());

        // A complete one is put in place whatever runs under its writer's process id: in a container the launcher is
        // process 1, which always runs.
        Files.write(running, complete);
        result = launch(folder, "key", Map.of(), "-Xlog:class+load", "-cp", jar.toString(), probe, "0");
        assertTrue(result.output().contains(probe + " source: shared objects file"), result.output());
        assertEquals(List.of(archive, archive + ".stamp"), names(folder));
    }

    @Test
    void aFolderWhereTheArchiveWouldGoTurnsItOff() throws Exception {
        Path jar = probeJar();
        Path folder = Files.createDirectories(temp.resolve("target"));
        String probe = Probe.class.getName();
        launch(folder, "key", Map.of(), "-cp", jar.toString(), probe, "0");
        Path part = folder.resolve(names(folder).getFirst());
        Path taken = Files.createDirectory(
                folder.resolve(archiveOf(part.getFileName().toString())));
        Files.delete(part);
        for (int run = 0; run < 2; run++) {
            Result result = launch(folder, "key", Map.of(), "-cp", jar.toString(), probe, "4");
            assertEquals(new Result(4, "probe ran\n"), result);
        }
        assertEquals(List.of(taken.getFileName().toString()), names(folder));
        assertEquals(List.of(), names(taken), "nothing moved into a folder that is not the launcher's");
    }

    @Test
    void theJvmReplacesTheLauncherSoASignalToItStopsTheJvm() throws Exception {
        Path jar = probeJar();
        Path folder = Files.createDirectories(temp.resolve("target"));
        String probe = Probe.class.getName();
        for (int run = 0; run < 2; run++) { // the first run writes the archive, the second maps it
            Process process = start(folder, "key", Map.of(), "-cp", jar.toString(), probe, "wait");
            assertEquals("probe ran", new String(process.getInputStream().readNBytes(9), StandardCharsets.UTF_8));
            assertTrue(
                    process.info().command().orElseThrow().endsWith("/bin/java"),
                    process.info().toString());
            process.destroy(); // SIGTERM to the process the launcher was started as
            assertTrue(process.waitFor(30, TimeUnit.SECONDS), "the JVM outlived its launcher");
            assertEquals(143, process.exitValue());
        }
        assertTrue(
                names(folder).stream().anyMatch(name -> name.matches("panorm-cds-\\d+\\.jsa")),
                names(folder).toString());
    }

    @Test
    void anArchiveWrittenToSinceItWasMadeIsMadeAgainNotMapped() throws Exception {
        Path jar = probeJar();
        Path folder = Files.createDirectories(temp.resolve("target"));
        String probe = Probe.class.getName();
        launch(folder, "key", Map.of(), "-cp", jar.toString(), probe, "0");
        launch(folder, "key", Map.of(), "-cp", jar.toString(), probe, "0"); // puts it in place
        Path archive = folder.resolve(names(folder).getFirst());
        byte[] damaged = Files.readAllBytes(archive);
        for (int i = 4096; i < damaged.length; i += 65536) { // past the header, in its regions
            damaged[i] ^= (byte) 0xFF;
        }
        Files.write(archive, damaged);
        // The JVM maps an archive unchecked: one of panorm's own, damaged so, crashed it (SIGSEGV).
        Result result = launch(folder, "key", Map.of(), "-Xlog:class+load", "-cp", jar.toString(), probe, "5");
        assertEquals(5, result.exit(), result.output());
        assertTrue(result.output().contains("probe ran"), result.output());
        assertFalse(result.output().contains(probe + " source: shared objects file"), result.output());
        Result mapped = launch(folder, "key", Map.of(), "-Xlog:class+load", "-cp", jar.toString(), probe, "0");
        assertTrue(mapped.output().contains(probe + " source: shared objects file"), mapped.output());
        assertFalse(Arrays.equals(damaged, Files.readAllBytes(archive)), "written again");
    }

    @Test
    void noArchiveWhenTurnedOffOrWhenJavaOptsSetClassSharing() throws Exception {
        Path jar = probeJar();
        String probe = Probe.class.getName();
        Path off = Files.createDirectories(temp.resolve("off"));
        Result result = launch(off, "key", Map.of("PANORM_CDS", "0"), "-cp", jar.toString(), probe, "0");
        assertEquals("probe ran\n", result.output());
        assertEquals(List.of(), names(off));

        // A JVM asked to archive with an agent refuses to start (CDS dumping does not support native JVMTI agents).
        Path agent = Files.createDirectories(temp.resolve("agent"));
        result = launch(
                agent,
                "key",
                Map.of(
                        "JAVA_TOOL_OPTIONS",
                        "-agentlib:jdwp=transport=dt_socket,server=y,suspend=n,address=127.0.0.1:0"),
                "-cp",
                jar.toString(),
                probe,
                "0");
        assertEquals(0, result.exit(), result.output());
        assertTrue(result.output().contains("probe ran"), result.output());
        assertEquals(List.of(), names(agent));

        Path own = Files.createDirectories(temp.resolve("own"));
        result = launch(
                own, "key", Map.of("JAVA_OPTS", "-Xshare:off"), "-Xshare:off", "-cp", jar.toString(), probe, "0");
        assertEquals("probe ran\n", result.output());
        assertEquals(List.of(), names(own));
    }
}
