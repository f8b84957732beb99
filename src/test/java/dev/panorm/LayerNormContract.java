package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * What every backend must do, checked against {@link Reference} within {@link Accuracy}'s tolerance
 * and against hand-computed values, each call checked to have run on the backend under test
 * ({@link Contracts#assertRanOn}). Subclassed once per backend.
 */
abstract class LayerNormContract {

    abstract Backend backend();

    /** Normalizes {@code x} as {@code [rows, c]} (or {@code shape}) and returns the output. */
    private float[] run(LayerNormConfig config, float[] x, long[] shape, float[] gamma, float[] beta) {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(config, backend())) {
            Tensor src = Tensor.ofFloats(arena, x, shape);
            Tensor dst = Tensor.allocate(arena, DataType.F32, shape);
            norm.forward(
                    src,
                    dst,
                    gamma == null ? null : Tensor.ofFloats(arena, gamma, gamma.length),
                    beta == null ? null : Tensor.ofFloats(arena, beta, beta.length));
            Contracts.assertRanOn(backend(), norm);
            return dst.toFloatArray();
        }
    }

    private void check(int rows, int c, double mean, double std, boolean scale, boolean shift, long seed) {
        check(rows, c, mean, std, scale, shift, seed, 1e-5);
    }

    private void check(int rows, int c, double mean, double std, boolean scale, boolean shift, long seed, double eps) {
        float[] x = TestData.gaussian(rows * c, mean, std, seed);
        float[] gamma = scale ? TestData.gaussian(c, 1, 0.5, seed + 1) : null;
        float[] beta = shift ? TestData.gaussian(c, 0, 1, seed + 2) : null;
        LayerNormConfig config =
                LayerNormConfig.of(c).withScale(scale).withShift(shift).withEps(eps);
        float[] y = run(config, x, new long[] {rows, c}, gamma, beta);
        Accuracy.assertForward(backend(), x, rows, c, gamma, beta, eps, y);
    }

    static Stream<Arguments> shapes() {
        return Contracts.shapes(new int[] {1, 5, 256, 3000}, new int[] {1, 7, 129}, new int[] {1, 3, 17});
    }

    @ParameterizedTest(name = "[{0}, {1}] scale={2} shift={3}")
    @MethodSource("shapes")
    void matchesReference(int rows, int c, boolean scale, boolean shift) {
        check(rows, c, 0, 1, scale, shift, 31L * rows + c);
    }

    @ParameterizedTest(name = "C={0}")
    @MethodSource("channelCounts")
    void matchesReferenceOnRowsWithLargeCommonOffset(int c) {
        // mean 1e4, std 1: float32 statistics lose digits here; the tolerance scales with kappa ~ 1e4.
        check(13, c, 1e4, 1, true, true, c);
    }

    @ParameterizedTest(name = "C={0}")
    @MethodSource("channelCounts")
    void matchesReferenceOnSmallAndLargeSpreads(int c) {
        check(9, c, 0, 1e-3, true, true, c + 1);
        check(9, c, -3, 1e3, true, true, c + 2);
    }

    @ParameterizedTest(name = "C={0}")
    @MethodSource("channelCounts")
    void matchesReferenceWithTheSmallestEpsOnTinyRows(int c) {
        // Squares of about 1e-44 are subnormal in float32; eps at float32's smallest normal keeps var + eps normal
        // (a subnormal eps, refused by LayerNormConfig, gave 800 times the bound on oneDNN and the vector kernels).
        check(5, c, 0, 1e-22, true, true, c + 3, Float.MIN_NORMAL);
        check(5, c, 0, 1e-19, true, true, c + 4, Float.MIN_NORMAL);
    }

    static Stream<Integer> channelCounts() {
        return Contracts.channelCounts();
    }

    @Test
    void normalizesEveryRowOfAThreeDimensionalTensor() {
        int c = 1000;
        long[] shape = {4, 6, c};
        float[] x = TestData.gaussian(4 * 6 * c, 2, 3, 7);
        float[] gamma = TestData.gaussian(c, 1, 1, 8);
        float[] beta = TestData.gaussian(c, 0, 1, 9);
        float[] y = run(LayerNormConfig.of(c), x, shape, gamma, beta);
        Accuracy.assertForward(backend(), x, 24, c, gamma, beta, 1e-5, y);
    }

    @Test
    void worksInPlace() {
        int rows = 33;
        int c = 768;
        float[] x = TestData.gaussian(rows * c, 0.5, 2, 11);
        float[] gamma = TestData.gaussian(c, 1, 1, 12);
        float[] beta = TestData.gaussian(c, 0, 1, 13);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend())) {
            Tensor data = Tensor.ofFloats(arena, x, rows, c);
            norm.forward(data, data, Tensor.ofFloats(arena, gamma, c), Tensor.ofFloats(arena, beta, c));
            Contracts.assertRanOn(backend(), norm);
            Accuracy.assertForward(backend(), x, rows, c, gamma, beta, 1e-5, data.toFloatArray());
        }
    }

    @Test
    void constantRowsGiveTheShiftExactly() {
        // var = 0: x - mean is exactly 0 when the mean is exact (5.0 sums exactly in float and double),
        // and eps keeps 1/sqrt(var + eps) finite, so y = beta.
        int rows = 3;
        int c = 1000;
        float[] x = new float[rows * c];
        Arrays.fill(x, 5f);
        float[] gamma = TestData.gaussian(c, 1, 1, 1);
        float[] beta = TestData.gaussian(c, 0, 1, 2);
        float[] y = run(LayerNormConfig.of(c), x, new long[] {rows, c}, gamma, beta);
        for (int i = 0; i < y.length; i++) {
            assertEquals(beta[i % c], y[i], 0f, "element " + i);
        }
    }

    @Test
    void constantRowsWhoseMeanRoundsStayWithinTolerance() {
        // 0.1f summed 1000 times is not exact in float: a tiny x - mean is amplified by 1/sqrt(eps) ~ 316.
        int c = 1000;
        float[] x = new float[2 * c];
        Arrays.fill(x, 0.1f);
        float[] gamma = TestData.gaussian(c, 1, 1, 3);
        float[] beta = TestData.gaussian(c, 0, 1, 4);
        float[] y = run(LayerNormConfig.of(c), x, new long[] {2, c}, gamma, beta);
        Accuracy.assertForward(backend(), x, 2, c, gamma, beta, 1e-5, y);
    }

    @Test
    void handComputedValues() {
        // x = [1, 3]: mean 2, biased variance 1, so x_hat = [-1, 1] / sqrt(1 + 1e-5) = [-r, r] with
        // r = 1/sqrt(1.00001) = 0.9999950000374997.
        // gamma = [2, -3], beta = [0.5, 0.25]: y = [-2r + 0.5, -3r + 0.25] = [-1.4999900000749995, -2.749985000112499].
        float[] y = run(LayerNormConfig.of(2), new float[] {1, 3}, new long[] {1, 2}, new float[] {2, -3}, new float[] {
            0.5f, 0.25f
        });
        assertArrayEquals(new float[] {(float) -1.4999900000749995, (float) -2.749985000112499}, y, Math.ulp(2.75f));

        float[] plain = run(LayerNormConfig.of(2).withoutAffine(), new float[] {-1, 1}, new long[] {1, 2}, null, null);
        assertArrayEquals(new float[] {(float) -0.9999950000374997, (float) 0.9999950000374997}, plain, Math.ulp(1f));

        // C = 1: every row is its own mean, so x - mean = 0 and y = beta whatever x and gamma are.
        float[] single = run(
                LayerNormConfig.of(1), new float[] {7, -2e6f, 0}, new long[] {3, 1}, new float[] {4}, new float[] {0.75f
                });
        assertArrayEquals(new float[] {0.75f, 0.75f, 0.75f}, single, 0f);
    }

    @Test
    void emptyBatchWritesNothing() {
        // Zero-row views at the start of buffers filled with a sentinel: a kernel that wrote anyway would show.
        float sentinel = -12345.5f;
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(8), backend())) {
            MemorySegment outputs = arena.allocate(3 * 16 * Float.BYTES, 64);
            for (long i = 0; i < 3 * 16; i++) {
                outputs.setAtIndex(ValueLayout.JAVA_FLOAT, i, sentinel);
            }
            Tensor src = Tensor.allocate(arena, DataType.F32, 0, 8);
            Tensor dst = Tensor.of(outputs.asSlice(0, 16 * Float.BYTES), DataType.F32, 0, 8);
            Tensor mean = Tensor.of(outputs.asSlice(16 * Float.BYTES, 16 * Float.BYTES), DataType.F32, 0);
            Tensor variance = Tensor.of(outputs.asSlice(32 * Float.BYTES), DataType.F32, 0);
            Tensor gamma = Tensor.ofFloats(arena, TestData.gaussian(8, 1, 1, 1), 8);
            Tensor beta = Tensor.ofFloats(arena, TestData.gaussian(8, 0, 1, 2), 8);
            norm.forward(src, dst, gamma, beta);
            norm.forwardTraining(src, dst, gamma, beta, mean, variance);
            float[] expected = new float[3 * 16];
            Arrays.fill(expected, sentinel);
            assertArrayEquals(expected, outputs.toArray(ValueLayout.JAVA_FLOAT), "a call on no rows wrote");
            assertNull(norm.lastBackend(), "no kernel runs a call on no rows");
        }
    }

    @Test
    void oneInstanceServesManyRowCountsAndBuffers() {
        // More row counts than the oneDNN plan cache holds, then the first ones again (evicted and rebuilt),
        // alternating between buffers so the memory bindings change from call to call.
        int c = 64;
        int maxRows = PlanCache.MAX_PLANS + 6;
        float[] x = TestData.gaussian(maxRows * c, 1, 2, 5);
        float[] gamma = TestData.gaussian(c, 1, 1, 6);
        float[] beta = TestData.gaussian(c, 0, 1, 7);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend())) {
            Tensor g = Tensor.ofFloats(arena, gamma, c);
            Tensor b = Tensor.ofFloats(arena, beta, c);
            Tensor[] outputs = {
                Tensor.allocate(arena, DataType.F32, maxRows, c), Tensor.allocate(arena, DataType.F32, maxRows, c)
            };
            MemorySegment all = Tensor.ofFloats(arena, x, maxRows, c).segment();
            int[] rowCounts = new int[2 * maxRows];
            for (int i = 0; i < maxRows; i++) {
                rowCounts[i] = i + 1;
                rowCounts[maxRows + i] = 1 + (i * 7) % maxRows;
            }
            for (int call = 0; call < rowCounts.length; call++) {
                int rows = rowCounts[call];
                long bytes = (long) rows * c * Float.BYTES;
                Tensor src = Tensor.of(all.asSlice(0, bytes), DataType.F32, rows, c);
                Tensor dst = Tensor.of(outputs[call % 2].segment().asSlice(0, bytes), DataType.F32, rows, c);
                norm.forward(src, dst, g, b);
                Contracts.assertRanOn(backend(), norm);
                Accuracy.assertForward(
                        backend(), Arrays.copyOf(x, rows * c), rows, c, gamma, beta, 1e-5, dst.toFloatArray());
            }
        }
    }

    @Test
    void seesNewContentsOfTheSameBuffers() {
        int rows = 4;
        int c = 768;
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withoutAffine(), backend())) {
            Tensor src = Tensor.allocate(arena, DataType.F32, rows, c);
            Tensor dst = Tensor.allocate(arena, DataType.F32, rows, c);
            for (long seed = 0; seed < 3; seed++) {
                float[] x = TestData.gaussian(rows * c, seed, 1 + seed, seed);
                MemorySegment.copy(x, 0, src.segment(), ValueLayout.JAVA_FLOAT, 0, x.length);
                norm.forward(src, dst);
                Contracts.assertRanOn(backend(), norm);
                Accuracy.assertForward(backend(), x, rows, c, null, null, 1e-5, dst.toFloatArray());
            }
        }
    }

    @Test
    void acceptsSegmentsAtAnyFloatAlignedOffset() {
        // Views into a larger buffer (a mapped file, another library's tensor) rarely start on a cache line.
        int rows = 5;
        int c = 1000;
        float[] x = TestData.gaussian(rows * c, 0, 1, 21);
        float[] gamma = TestData.gaussian(c, 1, 1, 22);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withShift(false), backend())) {
            MemorySegment buffer = arena.allocate((rows * c * 2L + c + 8) * Float.BYTES, 64);
            MemorySegment srcBytes = buffer.asSlice(4, (long) rows * c * Float.BYTES);
            MemorySegment dstBytes = buffer.asSlice(4 + srcBytes.byteSize() + 12, srcBytes.byteSize());
            MemorySegment gammaBytes = buffer.asSlice(dstBytes.byteSize() * 2 + 20, (long) c * Float.BYTES);
            MemorySegment.copy(x, 0, srcBytes, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, x.length);
            MemorySegment.copy(gamma, 0, gammaBytes, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, c);
            Tensor dst = Tensor.of(dstBytes, DataType.F32, rows, c);
            norm.forward(Tensor.of(srcBytes, DataType.F32, rows, c), dst, Tensor.of(gammaBytes, DataType.F32, c), null);
            Contracts.assertRanOn(backend(), norm);
            Accuracy.assertForward(backend(), x, rows, c, gamma, null, 1e-5, dst.toFloatArray());
        }
    }
}
