package dev.panorm.cli;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panorm.TestJvm;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs the command line ({@link StreamingProbe}) in a JVM of its own, through bash so that a test can set
 * the process's limits and umask first; a crash there cannot take the test JVM with it.
 */
final class ChildJvm {
    /** What the child did: its exit status and everything it printed. */
    record Result(int exit, String output) {}

    private ChildJvm() {}

    /** Starts the child; {@code shellPrefix} (e.g. {@code "umask 027; "}) runs in bash before it. */
    static Process start(String shellPrefix, List<String> jvmFlags, Path directory, String... args) throws IOException {
        List<String> command = new ArrayList<>(
                List.of(TestJvm.java(), "--enable-native-access=ALL-UNNAMED", "--add-modules", "jdk.incubator.vector"));
        command.addAll(jvmFlags);
        command.addAll(List.of("-cp", TestJvm.classPath(), StreamingProbe.class.getName()));
        command.addAll(List.of(args));
        StringBuilder line = new StringBuilder(shellPrefix).append("exec");
        for (String word : command) {
            line.append(" '").append(word.replace("'", "'\\''")).append('\'');
        }
        return new ProcessBuilder("bash", "-c", line.toString())
                .directory(directory.toFile())
                .redirectErrorStream(true)
                .start();
    }

    /** Runs the child to its end (at most five minutes). */
    static Result run(String shellPrefix, List<String> jvmFlags, Path directory, String... args) throws Exception {
        return finish(start(shellPrefix, jvmFlags, directory, args));
    }

    static Result finish(Process process) throws Exception {
        byte[] output = process.getInputStream().readAllBytes();
        assertTrue(process.waitFor(5, TimeUnit.MINUTES), "the child JVM did not finish");
        return new Result(process.exitValue(), new String(output, StandardCharsets.UTF_8));
    }
}
