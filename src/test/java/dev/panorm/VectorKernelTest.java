package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The contract, on the Java backend (the Vector API kernels: the tests run with jdk.incubator.vector). */
class VectorKernelTest extends LayerNormContract {
    @Override
    Backend backend() {
        return Backend.JAVA;
    }

    /**
     * The contract above proves the vector kernels only if they run: on the module path panorm reads
     * jdk.incubator.vector through a {@code requires static}, and without it the backend would quietly
     * fall back to its scalar kernels.
     */
    @Test
    void theVectorKernelsRun() {
        assertTrue(
                JavaKernels.vectorized(),
                "the Java backend runs its scalar kernels: is jdk.incubator.vector readable?");
    }

    /**
     * The vector kernel shifts each row by the mean of a sample (its first four vectors) and takes the
     * variance as {@code E[d^2] - E[d]^2} in one pass, unless the sample is far from the mean. Here
     * the sample holds the row's only large values: E[d]^2 is about 250 times the variance, the one-pass
     * formula would lose about 8 bits (errors near 1e-3 against a tolerance of 1e-5), so the kernel
     * must take its centred second pass. Rows 2 and 3 are the easy case, for contrast.
     */
    @Test
    void rowWhoseSampleIsFarFromItsMean() {
        int c = 65536;
        int rows = 3;
        float[] x = TestData.gaussian(rows * c, 0, 0.01, 7);
        for (int i = 0; i < 256; i++) { // the first four vectors of any species up to 2048 bits
            x[i] = 1;
        }
        float[] gamma = TestData.gaussian(c, 1, 0.5, 8);
        float[] beta = TestData.gaussian(c, 0, 0.5, 9);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend(), 1)) {
            Tensor src = Tensors.make(arena, DataType.F32, x, rows, c);
            Tensor dst = Tensor.allocate(arena, DataType.F32, rows, c);
            Tensor mean = Tensor.allocate(arena, DataType.F32, rows);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
            norm.forwardTraining(
                    src,
                    dst,
                    Tensors.make(arena, DataType.F32, gamma, c),
                    Tensors.make(arena, DataType.F32, beta, c),
                    mean,
                    variance);
            Contracts.assertRanOn(backend(), norm);
            Accuracy.assertForward(backend(), x, rows, c, gamma, beta, 1e-5, Tensors.read(dst));
            Accuracy.assertStatistics(backend(), x, rows, c, Tensors.read(mean), Tensors.read(variance));
        }
    }

    /**
     * Short rows run two at a time ({@link VectorKernel#PAIRED_ROWS_MAX_C}). Each row of a five-row call, the
     * last one left over, must equal the same row normalized alone, bit for bit, statistics included: also the
     * second row of a pair and the odd last row, whose samples are far from their means (the centred pass) while
     * their partners' are not. For bf16 this also compares the two ways a row is normalized: in place in a call of
     * five rows, widened into a float row alone ({@link VectorKernel#BF16_IN_PLACE_FROM_ROWS}); 1000 columns leave
     * a tail after the paired columns.
     */
    @ParameterizedTest
    @CsvSource({"F32, 1024", "BF16, 1024", "F16, 1024", "BF16, 1000", "F16, 1000"})
    void rowsRunTwoAtATimeAsEachAlone(DataType type, int c) {
        int rows = 5;
        float[] x = TestData.gaussian(rows * c, 0.5, 1, 11);
        for (int row : new int[] {1, 4}) {
            for (int i = 0; i < 256; i++) { // the first four vectors of any species up to 2048 bits
                x[row * c + i] = 40;
            }
        }
        float[] gamma = TestData.gaussian(c, 1, 0.5, 12);
        float[] beta = TestData.gaussian(c, 0, 0.5, 13);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend(), 1)) {
            Tensor scale = Tensors.make(arena, DataType.F32, gamma, c);
            Tensor shift = Tensors.make(arena, DataType.F32, beta, c);
            Tensor dst = Tensor.allocate(arena, type, rows, c);
            Tensor mean = Tensor.allocate(arena, DataType.F32, rows);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
            norm.forwardTraining(Tensors.make(arena, type, x, rows, c), dst, scale, shift, mean, variance);
            float[] y = Tensors.read(dst);
            for (int row = 0; row < rows; row++) {
                float[] xRow = java.util.Arrays.copyOfRange(x, row * c, (row + 1) * c);
                Tensor rowDst = Tensor.allocate(arena, type, 1, c);
                Tensor rowMean = Tensor.allocate(arena, DataType.F32, 1);
                Tensor rowVariance = Tensor.allocate(arena, DataType.F32, 1);
                norm.forwardTraining(Tensors.make(arena, type, xRow, 1, c), rowDst, scale, shift, rowMean, rowVariance);
                assertArrayEquals(
                        Tensors.read(rowDst),
                        java.util.Arrays.copyOfRange(y, row * c, (row + 1) * c),
                        0f,
                        "row " + row);
                assertArrayEquals(Tensors.read(rowMean), new float[] {Tensors.read(mean)[row]}, 0f, "mean " + row);
                assertArrayEquals(
                        Tensors.read(rowVariance), new float[] {Tensors.read(variance)[row]}, 0f, "variance " + row);
            }
            if (type == DataType.F32) {
                Accuracy.assertForward(backend(), x, rows, c, gamma, beta, 1e-5, y);
            }
        }
    }

    /**
     * Inputs and outputs from arenas of every kind in one call, forward and backward: the same bits as with all of
     * them in one confined arena (such calls run about 100 times slower: docs/benchmarks.md, "Segments of different
     * arenas in one call").
     */
    /**
     * A split call's part on another thread sees the caller's confined tensors through views confined to itself
     * (an owner thread, unlike a global view: "Segments of different arenas in one call" in docs/benchmarks.md), and
     * shared tensors as they are.
     */
    @Test
    void partsOnOtherThreadsSeeTheCallersConfinedMemoryThroughTheirOwnViews() throws Exception {
        try (Arena confined = Arena.ofConfined();
                Arena shared = Arena.ofShared()) {
            Tensor mine = Tensor.ofFloats(confined, DataType.F32, new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
            Tensor everyone = Tensor.allocate(shared, DataType.F32, 2, 3);
            assertSame(mine, VectorKernel.onThisThread(mine), "the caller's own memory as it is");
            Thread caller = Thread.currentThread();
            Object[] seen = new Object[4];
            Thread part = Thread.ofPlatform().start(() -> {
                Tensor view = VectorKernel.onThisThread(mine);
                seen[0] = view.segment().isAccessibleBy(Thread.currentThread())
                        && !view.segment().isAccessibleBy(caller);
                seen[1] = view.segment().address() == mine.segment().address()
                        && java.util.Arrays.equals(view.shape(), mine.shape());
                seen[2] = view.toFloatArray();
                seen[3] = VectorKernel.onThisThread(everyone) == everyone;
            });
            part.join();
            assertEquals(true, seen[0], "confined to the thread that runs the part");
            assertEquals(true, seen[1], "the same memory and shape");
            assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, (float[]) seen[2]);
            assertEquals(true, seen[3], "shared memory as it is");
        }
    }

    @Test
    void tensorsFromDifferentArenasGiveTheSameResults() {
        int rows = 8;
        int c = 768;
        float[] x = TestData.gaussian(rows * c, 0.5, 1, 21);
        float[] dy = TestData.gaussian(rows * c, 0, 1, 22);
        float[] gamma = TestData.gaussian(c, 1, 0.5, 23);
        float[] beta = TestData.gaussian(c, 0, 0.5, 24);
        try (Arena confined = Arena.ofConfined();
                Arena shared = Arena.ofShared();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend(), 1)) {
            float[][] results = new float[2][];
            for (int mixed = 0; mixed < 2; mixed++) {
                Arena in = confined;
                Arena out = mixed == 1 ? Arena.ofAuto() : confined;
                Arena parameters = mixed == 1 ? shared : confined;
                Tensor src = Tensors.make(in, DataType.F32, x, rows, c);
                Tensor dst = Tensor.allocate(out, DataType.F32, rows, c);
                Tensor scale = Tensors.make(parameters, DataType.F32, gamma, c);
                Tensor shift = Tensors.make(parameters, DataType.F32, beta, c);
                Tensor mean = Tensor.allocate(out, DataType.F32, rows);
                Tensor variance = Tensor.allocate(out, DataType.F32, rows);
                Tensor dx = Tensor.allocate(out, DataType.F32, rows, c);
                Tensor dGamma = Tensor.allocate(parameters, DataType.F32, c);
                Tensor dBeta = Tensor.allocate(out, DataType.F32, c);
                norm.forwardTraining(src, dst, scale, shift, mean, variance);
                norm.backward(
                        Tensors.make(in, DataType.F32, dy, rows, c), src, mean, variance, scale, dx, dGamma, dBeta);
                Contracts.assertRanOn(backend(), norm);
                results[mixed] = concat(Tensors.read(dst), Tensors.read(dx), Tensors.read(dGamma), Tensors.read(dBeta));
            }
            assertArrayEquals(results[0], results[1], 0f);
        }
    }

    private static float[] concat(float[]... parts) {
        int n = 0;
        for (float[] part : parts) {
            n += part.length;
        }
        float[] all = new float[n];
        int at = 0;
        for (float[] part : parts) {
            System.arraycopy(part, 0, all, at, part.length);
            at += part.length;
        }
        return all;
    }
}
