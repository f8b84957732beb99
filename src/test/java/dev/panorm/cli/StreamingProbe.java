package dev.panorm.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Runs the command line in a JVM of its own (started by {@link StreamingTest} with a small heap), then
 * prints the process's peak resident memory from {@code /proc/self/status}.
 */
public final class StreamingProbe {
    private StreamingProbe() {}

    public static void main(String[] args) throws IOException {
        int exit = Main.run(args, System.out, System.err);
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmHWM:")) {
                System.out.println(line.replaceAll("\\s+", " "));
            }
        }
        System.exit(exit);
    }
}
