package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.util.Arrays;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Strided and multi-axis layouts on both backends. oneDNN gets C-contiguous data only: its JIT
 * layer normalization accepts any layout whose last stride is 1 but then walks rows as if dense,
 * which these tests caught returning wrong rows for padded ones. Strided views therefore run in
 * the Java kernel, on either backend, with the same results.
 */
class LayoutTest {
    private static final double EPS = 1e-5;

    /** Runs forward and forward-training on the given layouts and checks everything against the reference. */
    private static Backend check(Backend backend, LayerNormConfig config, Tensor src, Tensor dst, Arena arena) {
        int c = (int) config.normalizedSize();
        int rows = (int) (src.elementCount() / c);
        float[] x = Tensors.read(src);
        long[] normalized = config.normalizedShape();
        float[] gamma = TestData.gaussian(c, 1, 0.5, 11);
        float[] beta = TestData.gaussian(c, 0, 1, 12);
        try (LayerNorm norm = LayerNorm.create(config, backend)) {
            Tensor scale = Tensors.make(arena, DataType.F32, gamma, normalized);
            Tensor shift = Tensors.make(arena, DataType.F32, beta, normalized);
            norm.forward(src, dst, scale, shift);
            Accuracy.assertForward(backend, x, rows, c, gamma, beta, EPS, false, dst.dataType(), Tensors.read(dst));
            Backend ran = norm.lastBackend();
            long[] rowShape = Arrays.copyOf(src.shape(), src.rank() - config.normalizedAxes());
            Tensor mean = Tensor.allocate(arena, DataType.F32, rowShape);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rowShape);
            norm.forwardTraining(src, dst, scale, shift, mean, variance);
            Accuracy.assertStatistics(backend, x, rows, c, mean.toFloatArray(), variance.toFloatArray());
            return ran;
        }
    }

    /** Strided data never reaches oneDNN; the scalar backend stays scalar. */
    private static void assertStrided(Backend backend, Backend ran) {
        assertNotEquals(Backend.ONEDNN, ran, "oneDNN must not get strided data");
        if (backend == Backend.JAVA_SCALAR) {
            assertEquals(Backend.JAVA_SCALAR, ran);
        }
    }

    /** Contiguous float32 data runs where asked (AUTO: on one of its candidates). */
    private static void assertContiguous(Backend backend, Backend ran) {
        if (backend == Backend.AUTO) {
            assertTrue(ran == Backend.ONEDNN || ran == Backend.JAVA, "AUTO ran " + ran);
        } else {
            assertEquals(backend, ran);
        }
    }

    private static float[] values(long count, long seed) {
        return TestData.gaussian(Math.toIntExact(count), 0.5, 2, seed);
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void paddedRows(Backend backend) {
        try (Arena arena = Arena.ofConfined()) {
            long[] shape = {7, 100};
            Tensor src = Tensors.padded(arena, DataType.F32, values(700, 1), shape, 28);
            Tensor dst = Tensors.padded(arena, DataType.F32, new float[700], shape, 3);
            assertStrided(backend, check(backend, LayerNormConfig.of(100), src, dst, arena));
            // The padding of dst is untouched (still NaN).
            assertTrue(Float.isNaN(Elements.get(dst.segment(), DataType.F32, 100)));
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void columnWindowsOfWiderMatricesAndInPlace(Backend backend) {
        try (Arena arena = Arena.ofConfined()) {
            // Columns 40..103 of a [9, 200] matrix, normalized into columns 100..163 of another.
            Tensor wide = Tensors.make(arena, DataType.F32, values(1800, 2), 9, 200);
            Tensor other = Tensors.make(arena, DataType.F32, new float[1800], 9, 200);
            Tensor src =
                    Tensor.of(wide.segment().asSlice(40 * 4), DataType.F32, new long[] {9, 64}, new long[] {200, 1});
            Tensor dst =
                    Tensor.of(other.segment().asSlice(100 * 4), DataType.F32, new long[] {9, 64}, new long[] {200, 1});
            assertStrided(backend, check(backend, LayerNormConfig.of(64), src, dst, arena));

            float[] x = Tensors.read(src);
            try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(64).withoutAffine(), backend)) {
                norm.forward(src, src);
                Accuracy.assertForward(backend, x, 9, 64, null, null, EPS, Tensors.read(src));
                assertEquals(
                        values(1800, 2)[39],
                        Elements.get(wide.segment(), DataType.F32, 39),
                        0f,
                        "the columns beside the window are untouched");
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void everyRankFromOneToSix(Backend backend) {
        try (Arena arena = Arena.ofConfined()) {
            long[][] shapes = {{48}, {3, 48}, {2, 3, 48}, {2, 2, 3, 48}, {2, 1, 2, 3, 48}, {2, 2, 2, 2, 3, 48}};
            for (long[] shape : shapes) {
                long count = Arrays.stream(shape).reduce(1, Math::multiplyExact);
                Tensor src = Tensors.make(arena, DataType.F32, values(count, shape.length), shape);
                Tensor dst = Tensor.allocate(arena, DataType.F32, shape);
                assertContiguous(backend, check(backend, LayerNormConfig.of(48), src, dst, arena));
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void paddingInEveryBatchAxis(Backend backend) {
        try (Arena arena = Arena.ofConfined()) {
            long[] shape = {2, 2, 2, 2, 2, 8};
            long[] strides = {729, 243, 81, 27, 9, 1};
            Tensor src = Tensors.make(arena, DataType.F32, values(32 * 8, 3), shape, strides);
            Tensor dst = Tensor.allocate(arena, DataType.F32, shape);
            assertStrided(backend, check(backend, LayerNormConfig.of(8), src, dst, arena));
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void transposedBatchAxesAndStridedColumns(Backend backend) {
        try (Arena arena = Arena.ofConfined()) {
            // [B=3, T=5, C=32] stored time-major ([T, B, C] in memory).
            Tensor timeMajor =
                    Tensors.make(arena, DataType.F32, values(480, 4), new long[] {3, 5, 32}, new long[] {32, 96, 1});
            assertStrided(
                    backend,
                    check(
                            backend,
                            LayerNormConfig.of(32),
                            timeMajor,
                            Tensor.allocate(arena, DataType.F32, 3, 5, 32),
                            arena));
            // Every other element of each row.
            Tensor everyOther =
                    Tensors.make(arena, DataType.F32, values(4 * 32, 5), new long[] {4, 32}, new long[] {64, 2});
            assertStrided(
                    backend,
                    check(
                            backend,
                            LayerNormConfig.of(32),
                            everyOther,
                            Tensor.allocate(arena, DataType.F32, 4, 32),
                            arena));
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void severalNormalizedAxes(Backend backend) {
        try (Arena arena = Arena.ofConfined()) {
            // PyTorch's LayerNorm([6, 8]) on [4, 6, 8], and LayerNorm([2, 3, 4]) on [5, 2, 3, 4].
            Tensor src = Tensors.make(arena, DataType.F32, values(192, 6), 4, 6, 8);
            assertContiguous(
                    backend,
                    check(
                            backend,
                            LayerNormConfig.of(6, 8),
                            src,
                            Tensor.allocate(arena, DataType.F32, 4, 6, 8),
                            arena));
            Tensor deep = Tensors.make(arena, DataType.F32, values(120, 7), 5, 2, 3, 4);
            assertContiguous(
                    backend,
                    check(
                            backend,
                            LayerNormConfig.of(2, 3, 4),
                            deep,
                            Tensor.allocate(arena, DataType.F32, 5, 2, 3, 4),
                            arena));
            // The whole tensor as one row.
            Tensor all = Tensors.make(arena, DataType.F32, values(48, 8), 6, 8);
            assertContiguous(
                    backend,
                    check(backend, LayerNormConfig.of(6, 8), all, Tensor.allocate(arena, DataType.F32, 6, 8), arena));
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void normalizedAxesWithPaddingBetweenThemUseJava(Backend backend) {
        try (Arena arena = Arena.ofConfined()) {
            // [3, 4, 10] normalized over (4, 10), each 10-element inner row padded to 16: not one strided run.
            Tensor src = Tensors.padded(arena, DataType.BF16, values(120, 9), new long[] {3, 4, 10}, 6);
            assertStrided(
                    backend,
                    check(
                            backend,
                            LayerNormConfig.of(4, 10),
                            src,
                            Tensor.allocate(arena, DataType.F32, 3, 4, 10),
                            arena));
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void backwardOnStridedTensors(Backend backend) {
        int rows = 6;
        int c = 40;
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend)) {
            float[] x = values(rows * c, 10);
            float[] dy = TestData.gaussian(rows * c, 0, 1, 13);
            float[] gamma = TestData.gaussian(c, 1, 0.5, 14);
            Tensor src = Tensors.padded(arena, DataType.F32, x, new long[] {rows, c}, 8);
            Tensor scale = Tensors.make(arena, DataType.F32, gamma, c);
            Tensor shift = Tensor.allocate(arena, DataType.F32, c);
            Tensor mean = Tensor.allocate(arena, DataType.F32, rows);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
            norm.forwardTraining(src, Tensor.allocate(arena, DataType.F32, rows, c), scale, shift, mean, variance);
            Tensor diffDst = Tensors.padded(arena, DataType.F32, dy, new long[] {rows, c}, 24);
            Tensor diffSrc = Tensors.padded(arena, DataType.F32, new float[rows * c], new long[] {rows, c}, 1);
            Tensor diffScale = Tensor.allocate(arena, DataType.F32, c);
            Tensor diffShift = Tensor.allocate(arena, DataType.F32, c);
            norm.backward(diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift);
            assertStrided(backend, norm.lastBackend());
            Accuracy.assertBackward(
                    backend,
                    dy,
                    x,
                    rows,
                    c,
                    mean.toFloatArray(),
                    variance.toFloatArray(),
                    gamma,
                    EPS,
                    false,
                    Tensors.read(diffSrc),
                    diffScale.toFloatArray(),
                    diffShift.toFloatArray());
        }
    }
}
