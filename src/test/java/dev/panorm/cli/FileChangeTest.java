package dev.panorm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.panorm.Tensor;
import dev.panorm.io.Npy;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * What a user meets from other processes, in child JVMs: an input truncated while {@code panorm normalize}
 * reads it (as re-running {@code np.save} on the same path does) is a one-line error with exit status 1,
 * no output, no temporary file and no crash (no hs_err file) on every backend; outputs get the mode the
 * umask gives any new file.
 */
class FileChangeTest {
    private static final int ROWS = 8192;
    private static final int C = 4096; // 128 MiB of float32

    @TempDir
    Path temp;

    @ParameterizedTest
    @ValueSource(strings = {"onednn", "java", "java-scalar", "auto"})
    void anInputTruncatedWhileItIsReadIsACleanError(String backend) throws Exception {
        Path in = temp.resolve("in.npy");
        Path out = temp.resolve("out.npy");
        for (int attempt = 1; attempt <= 3; attempt++) {
            writeInput(in);
            // Small chunks: many reads, so the truncation lands in the middle of the run.
            Process child = ChildJvm.start(
                    "",
                    List.of("-XX:ErrorFile=" + temp.resolve("hs_err_%p.log")),
                    temp,
                    "normalize",
                    in.toString(),
                    out.toString(),
                    "--backend",
                    backend,
                    "--chunk-rows",
                    "4");
            while (child.isAlive() && !temporaryOutputExists(child)) {
                Thread.onSpinWait();
            }
            try (FileChannel channel = FileChannel.open(in, StandardOpenOption.WRITE)) {
                channel.truncate(100_000);
            }
            ChildJvm.Result result = ChildJvm.finish(child);
            if (result.exit() == 0) {
                Files.delete(out); // it finished before the truncation: try again
                continue;
            }
            assertEquals(1, result.exit(), result.output());
            List<String> errors = result.output()
                    .lines()
                    .filter(line -> line.startsWith("panorm"))
                    .toList();
            assertEquals(1, errors.size(), result.output());
            assertTrue(
                    errors.getFirst().startsWith("panorm: error: " + in + " changed while it was being read ("),
                    result.output());
            try (Stream<Path> left = Files.list(temp)) {
                assertEquals(
                        List.of("in.npy"),
                        left.map(path -> path.getFileName().toString()).toList(),
                        "no output, no temporary file, no hs_err file");
            }
            return;
        }
        fail("in 3 attempts the child always finished before the input was truncated");
    }

    /**
     * Whether the child has its output open: an unnamed file (O_TMPFILE) shows only among the child's open files, as
     * {@code FOLDER/#INODE (deleted)}; a named one as {@code .out.npy.*.tmp} in the folder.
     */
    private boolean temporaryOutputExists(Process child) throws Exception {
        try (Stream<Path> descriptors = Files.list(Path.of("/proc", Long.toString(child.pid()), "fd"))) {
            if (descriptors.anyMatch(this::isUnnamedFileHere)) {
                return true;
            }
        } catch (IOException | UncheckedIOException exited) {
            // gone meanwhile: the loop sees it
        }
        try (Stream<Path> files = Files.list(temp)) {
            return files.anyMatch(path -> path.getFileName().toString().startsWith(".out.npy."));
        }
    }

    private boolean isUnnamedFileHere(Path descriptor) {
        try {
            return Files.readSymbolicLink(descriptor).toString().startsWith(temp + "/#");
        } catch (IOException closed) {
            return false;
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"022", "027", "077"})
    void outputsGetTheModeTheUmaskGivesAnyNewFile(String umask) throws Exception {
        Path in = temp.resolve("x.npy");
        try (Arena arena = Arena.ofConfined()) {
            Npy.write(in, Tensor.ofFloats(arena, new float[] {1, 2, 3, 4}, 2, 2));
        }
        Path out = temp.resolve("y.npy");
        ChildJvm.Result result = ChildJvm.run(
                "umask " + umask + "; touch plain; ", List.of(), temp, "normalize", in.toString(), out.toString());
        assertEquals(0, result.exit(), result.output());
        String expected = switch (umask) {
            case "022" -> "rw-r--r--";
            case "027" -> "rw-r-----";
            default -> "rw-------";
        };
        assertEquals(expected, PosixFilePermissions.toString(Files.getPosixFilePermissions(temp.resolve("plain"))));
        assertEquals(expected, PosixFilePermissions.toString(Files.getPosixFilePermissions(out)));
    }

    @Test
    void aReplacedOutputKeepsItsModeWhateverTheUmask() throws Exception {
        Path in = temp.resolve("x.npy");
        try (Arena arena = Arena.ofConfined()) {
            Npy.write(in, Tensor.ofFloats(arena, new float[] {1, 2, 3, 4}, 2, 2));
        }
        Path out = Files.writeString(temp.resolve("y.npy"), "old");
        Files.setPosixFilePermissions(out, PosixFilePermissions.fromString("rw-rw-r--"));
        ChildJvm.Result result =
                ChildJvm.run("umask 077; ", List.of(), temp, "normalize", in.toString(), out.toString());
        assertEquals(0, result.exit(), result.output());
        assertEquals("rw-rw-r--", PosixFilePermissions.toString(Files.getPosixFilePermissions(out)));
        assertFalse(Files.readString(out, java.nio.charset.StandardCharsets.ISO_8859_1)
                .equals("old"));
    }

    private static void writeInput(Path in) throws Exception {
        try (Arena arena = Arena.ofConfined();
                Npy.Output output = Npy.Output.create(in, new long[] {ROWS, C}, arena)) {
            var data = output.tensor().segment();
            for (long i = 0; i < (long) ROWS * C; i += 997) {
                data.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (i % 13));
            }
            output.commit();
        }
    }
}
