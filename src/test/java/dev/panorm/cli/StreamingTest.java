package dev.panorm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panorm.DataType;
import dev.panorm.Tensor;
import dev.panorm.io.Npy;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code panorm normalize} streams a file bigger than the JVM's heap, and than its own resident set,
 * reading the input a chunk at a time into one buffer and writing into a mapped output whose pages are
 * released after each chunk: in a JVM with a 32 MiB heap, 256 MiB of input and output go through while
 * the process's peak resident memory stays below the size of the input alone.
 */
class StreamingTest {
    private static final int ROWS = 16_384;
    private static final int C = 4096; // 16384 x 4096 float32: 256 MiB in, 256 MiB out
    private static final long MIB = 1 << 20;

    @TempDir
    Path temp;

    @Test
    void aFileLargerThanTheHeapIsNormalizedWithBoundedMemory() throws Exception {
        Path in = temp.resolve("big.npy");
        Path out = temp.resolve("big-normalized.npy");
        writeInput(in);
        long inputBytes = Files.size(in);

        ChildJvm.Result result = runInSmallJvm("normalize", in.toString(), out.toString());
        assertEquals(0, result.exit(), result.output());
        assertTrue(result.output().contains("normalized " + ROWS + " rows of " + C), result.output());
        // Measured: 122 MiB peak (JVM and libraries included); 626 MiB when chunks are not released.
        long peakKib = field(result.output(), "VmHWM");
        assertTrue(
                peakKib * 1024 < inputBytes,
                "peak resident set " + peakKib / 1024 + " MiB, input " + inputBytes / MIB
                        + " MiB: the files were not streamed\n" + result.output());
        assertNormalized(in, out);
    }

    /**
     * A full disk, simulated by a file size limit (ulimit -f) on the child process: the output's space is
     * reserved before any data is written, so the run ends with a clear error and leaves no file behind,
     * where writing into an unreserved mapping would have been a SIGBUS.
     */
    @Test
    void aFullDiskIsACleanErrorAndLeavesNoFile() throws Exception {
        Path in = temp.resolve("in.npy");
        try (Arena arena = Arena.ofConfined();
                Npy.Output output = Npy.Output.create(in, new long[] {1024, 1024}, arena)) {
            output.commit();
        }
        Path out = temp.resolve("out.npy");
        ChildJvm.Result result =
                ChildJvm.run("ulimit -f 1024; ", List.of(), temp, "normalize", in.toString(), out.toString());
        assertEquals(1, result.exit(), result.output());
        assertTrue(
                result.output()
                        .contains("panorm: error: cannot write " + out + ": file too large (EFBIG), reserving"
                                + " 4194432 bytes"),
                result.output());
        try (var left = Files.list(temp)) {
            assertEquals(
                    List.of("in.npy"), left.map(p -> p.getFileName().toString()).toList(), "no partial output");
        }
    }

    /** Rows with different offsets and spreads, so that a row normalized with another's statistics shows. */
    private static void writeInput(Path in) throws IOException {
        try (Arena arena = Arena.ofConfined();
                Npy.Output output = Npy.Output.create(in, new long[] {ROWS, C}, arena)) {
            MemorySegment data = output.tensor().segment();
            SplittableRandom random = new SplittableRandom(42);
            for (int row = 0; row < ROWS; row++) {
                float offset = (row % 17) * 10 - 80;
                float spread = 1 + row % 5;
                for (int i = 0; i < C; i++) {
                    data.setAtIndex(
                            ValueLayout.JAVA_FLOAT, (long) row * C + i, offset + spread * (random.nextFloat() - 0.5f));
                }
            }
            output.commit();
        }
    }

    /** Every row against the exact normalization, computed in double. */
    private static void assertNormalized(Path in, Path out) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            Tensor x = Npy.map(in, arena);
            Tensor y = Npy.map(out, arena);
            assertEquals(DataType.F32, y.dataType());
            MemorySegment xs = x.segment();
            MemorySegment ys = y.segment();
            double worst = 0;
            for (int row = 0; row < ROWS; row++) {
                long base = (long) row * C;
                double sum = 0;
                for (int i = 0; i < C; i++) {
                    sum += xs.getAtIndex(ValueLayout.JAVA_FLOAT, base + i);
                }
                double mean = sum / C;
                double squares = 0;
                for (int i = 0; i < C; i++) {
                    double d = xs.getAtIndex(ValueLayout.JAVA_FLOAT, base + i) - mean;
                    squares += d * d;
                }
                double rstd = 1 / Math.sqrt(squares / C + 1e-5);
                for (int i = 0; i < C; i++) {
                    double expected = (xs.getAtIndex(ValueLayout.JAVA_FLOAT, base + i) - mean) * rstd;
                    worst = Math.max(worst, Math.abs(ys.getAtIndex(ValueLayout.JAVA_FLOAT, base + i) - expected));
                }
            }
            // kappa here is at most (|offset| + spread) / (spread / sqrt(12)) ~ 1000; bound 8 u kappa
            // (docs/accuracy.md).
            assertTrue(worst < 8 * 0x1p-24 * 1000, "largest error " + worst);
        }
    }

    private ChildJvm.Result runInSmallJvm(String... args) throws Exception {
        return ChildJvm.run("", List.of("-Xmx32m"), temp, args);
    }

    private static long field(String output, String name) {
        Matcher matcher = Pattern.compile(name + ": (\\d+) kB").matcher(output);
        assertTrue(matcher.find(), name + " missing from\n" + output);
        return Long.parseLong(matcher.group(1));
    }
}
