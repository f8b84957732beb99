package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A shared arena closed by another thread while calls run on its memory gives the caller an
 * {@link IllegalStateException} on every backend, pass and call length, never a crash: a call in flight holds the
 * arena, so {@code close()} throws until it returns, and the next call finds the arena closed. Run in a child
 * JVM ({@link ArenaRaceProbe}), because the failure this guards against kills the JVM.
 */
class ArenaRaceTest {
    private static final int ROUNDS = 8;
    /** Milliseconds after which a backend, pass and shape stops early, after three rounds. */
    private static final int BUDGET_MILLIS = 250;

    private static final Pattern LINE = Pattern.compile("(\\w+) (\\w+) (\\d+x\\d+): (\\d+)/(\\d+) rounds ended with "
            + "IllegalStateException, (\\d+) closes waited for a call.*");

    @TempDir
    Path temp;

    @Test
    void closingASharedArenaDuringCallsThrowsInTheCallerOnEveryBackend() throws Exception {
        List<String> command = List.of(
                ProcessHandle.current()
                        .info()
                        .command()
                        .orElse(Path.of(System.getProperty("java.home"), "bin", "java")
                                .toString()),
                "--enable-native-access=ALL-UNNAMED",
                "--add-modules",
                "jdk.incubator.vector",
                "-XX:ErrorFile=" + temp.resolve("hs_err_%p.log"),
                "-XX:ErrorLogTimeout=5",
                "-cp",
                TestJvm.classPath(),
                ArenaRaceProbe.class.getName(),
                String.valueOf(ROUNDS),
                String.valueOf(BUDGET_MILLIS));
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
        // Return freed blocks of 128 KiB and more to the kernel at once, so that oneDNN touching freed
        // memory faults instead of silently corrupting the heap.
        builder.environment().put("MALLOC_MMAP_THRESHOLD_", "131072");
        Process process = builder.start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(60, TimeUnit.SECONDS), "the probe JVM did not finish:\n" + output);

        try (Stream<Path> files = Files.list(temp)) {
            assertEquals(List.of(), files.map(p -> p.getFileName().toString()).toList(), "the JVM crashed:\n" + output);
        }
        assertEquals(0, process.exitValue(), output);
        int lines = 0;
        Map<String, Integer> held = new TreeMap<>();
        for (String line : output.lines().toList()) {
            Matcher match = LINE.matcher(line);
            if (match.matches()) {
                lines++;
                assertEquals(match.group(5), match.group(4), line);
                held.merge(match.group(1), Integer.parseInt(match.group(6)), Integer::sum);
            }
        }
        assertEquals(Backend.values().length * 2 * 4, lines, output); // backends x shapes x passes
        // The race took place: every backend's calls held the arena against close() (the Java kernels' through
        // OwnedMemory's downcall), so close() threw until the call in flight returned.
        for (Backend backend : Backend.values()) {
            assertTrue(held.getOrDefault(backend.name(), 0) > 0, backend + " never held the arena:\n" + output);
        }
    }
}
