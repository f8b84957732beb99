package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Forward training, backward (full and data-only) and global statistics on every backend, against
 * {@link Reference} (itself checked by finite differences) within {@link Accuracy}'s tolerances, each
 * call checked to have run on the backend under test ({@link Contracts#assertRanOn}).
 */
abstract class TrainingContract {
    private static final double EPS = 1e-5;

    abstract Backend backend();

    /** Everything one forward-training plus backward step produces. */
    private record Step(float[] y, float[] mean, float[] variance, float[] dx, float[] dgamma, float[] dbeta) {}

    private Step step(
            LayerNormConfig config,
            long[] shape,
            float[] x,
            float[] dy,
            float[] gamma,
            float[] beta,
            boolean dataOnly) {
        int c = (int) shape[shape.length - 1];
        long[] rowShape = Arrays.copyOf(shape, shape.length - 1);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(config, backend())) {
            Tensor src = Tensor.ofFloats(arena, x, shape);
            Tensor dst = Tensor.allocate(arena, DataType.F32, shape);
            Tensor scale = gamma == null ? null : Tensor.ofFloats(arena, gamma, c);
            Tensor shift = beta == null ? null : Tensor.ofFloats(arena, beta, c);
            Tensor mean = Tensor.allocate(arena, DataType.F32, rowShape);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rowShape);
            norm.forwardTraining(src, dst, scale, shift, mean, variance);
            Contracts.assertRanOn(backend(), norm);
            Tensor diffDst = Tensor.ofFloats(arena, dy, shape);
            Tensor diffSrc = Tensor.allocate(arena, DataType.F32, shape);
            Tensor diffScale = gamma == null || dataOnly ? null : Tensor.allocate(arena, DataType.F32, c);
            Tensor diffShift = beta == null || dataOnly ? null : Tensor.allocate(arena, DataType.F32, c);
            if (dataOnly) {
                norm.backwardData(diffDst, src, mean, variance, scale, diffSrc);
            } else {
                norm.backward(diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift);
            }
            Contracts.assertRanOn(backend(), norm);
            return new Step(
                    dst.toFloatArray(),
                    mean.toFloatArray(),
                    variance.toFloatArray(),
                    diffSrc.toFloatArray(),
                    diffScale == null ? null : diffScale.toFloatArray(),
                    diffShift == null ? null : diffShift.toFloatArray());
        }
    }

    private void check(
            int rows, int c, double mean, double std, boolean scale, boolean shift, boolean dataOnly, long seed) {
        float[] x = TestData.gaussian(rows * c, mean, std, seed);
        float[] dy = TestData.gaussian(rows * c, 0, 1, seed + 1);
        float[] gamma = scale ? TestData.gaussian(c, 1, 0.5, seed + 2) : null;
        float[] beta = shift ? TestData.gaussian(c, 0, 1, seed + 3) : null;
        Step step = step(
                LayerNormConfig.of(c).withEps(EPS).withScale(scale).withShift(shift),
                new long[] {rows, c},
                x,
                dy,
                gamma,
                beta,
                dataOnly);
        Accuracy.assertForward(backend(), x, rows, c, gamma, beta, EPS, step.y());
        Accuracy.assertStatistics(backend(), x, rows, c, step.mean(), step.variance());
        Accuracy.assertBackward(
                backend(),
                dy,
                x,
                rows,
                c,
                step.mean(),
                step.variance(),
                gamma,
                EPS,
                false,
                step.dx(),
                step.dgamma(),
                step.dbeta());
    }

    static Stream<Arguments> shapes() {
        return Contracts.shapes(new int[] {1, 9, 1500}, new int[] {1, 33}, new int[] {1, 5});
    }

    @ParameterizedTest(name = "[{0}, {1}] scale={2} shift={3}")
    @MethodSource("shapes")
    void backwardMatchesReference(int rows, int c, boolean scale, boolean shift) {
        check(rows, c, 0.5, 2, scale, shift, false, 17L * rows + c);
    }

    @ParameterizedTest(name = "[{0}, {1}] scale={2} shift={3}")
    @MethodSource("shapes")
    void backwardDataMatchesReference(int rows, int c, boolean scale, boolean shift) {
        check(rows, c, -1, 1, scale, shift, true, 19L * rows + c);
    }

    @ParameterizedTest(name = "C={0}")
    @MethodSource("channelCounts")
    void backwardOnRowsWithLargeCommonOffset(int c) {
        check(7, c, 1e4, 1, true, true, false, c);
    }

    static Stream<Integer> channelCounts() {
        return Contracts.channelCounts();
    }

    @Test
    void threeDimensionalTensors() {
        int c = 100;
        long[] shape = {3, 4, c};
        float[] x = TestData.gaussian(12 * c, 1, 3, 1);
        float[] dy = TestData.gaussian(12 * c, 0, 1, 2);
        float[] gamma = TestData.gaussian(c, 1, 1, 3);
        float[] beta = TestData.gaussian(c, 0, 1, 4);
        Step step = step(LayerNormConfig.of(c), shape, x, dy, gamma, beta, false);
        assertEquals(12, step.mean().length);
        Accuracy.assertStatistics(backend(), x, 12, c, step.mean(), step.variance());
        Accuracy.assertBackward(
                backend(),
                dy,
                x,
                12,
                c,
                step.mean(),
                step.variance(),
                gamma,
                EPS,
                false,
                step.dx(),
                step.dgamma(),
                step.dbeta());
    }

    @Test
    void constantRowsHaveFiniteGradients() {
        // variance 0: xhat = 0 and rstd = 1/sqrt(eps) (about 316 for eps = 1e-5), so
        // dx = rstd * (g - mean(g)) stays finite; dgamma gets nothing from such a row, dbeta gets dy.
        int rows = 2;
        int c = 64;
        float[] x = new float[rows * c];
        Arrays.fill(x, 3f);
        float[] dy = TestData.gaussian(rows * c, 0, 1, 5);
        float[] gamma = TestData.gaussian(c, 1, 1, 6);
        Step step = step(LayerNormConfig.of(c), new long[] {rows, c}, x, dy, gamma, new float[c], false);
        for (float v : step.dx()) {
            assertTrue(Float.isFinite(v));
        }
        assertArrayEquals(new float[] {0, 0}, step.variance(), 0f);
        Accuracy.assertBackward(
                backend(),
                dy,
                x,
                rows,
                c,
                step.mean(),
                step.variance(),
                gamma,
                EPS,
                false,
                step.dx(),
                step.dgamma(),
                step.dbeta());
        for (int i = 0; i < c; i++) {
            assertEquals(0, step.dgamma()[i], 0f, "dgamma[" + i + "]");
            assertEquals(dy[i] + dy[c + i], step.dbeta()[i], Math.ulp(4f), "dbeta[" + i + "]");
        }
    }

    @Test
    void handComputedGradients() {
        // x = [1, 3], eps = 1e-5: mean 2, var 1, rstd r = 1/sqrt(1.00001), xhat = [-r, r].
        // gamma = [2, -3], dy = [1, 1]: g = dy * gamma = [2, -3], mean(g) = -0.5, mean(g * xhat) = (-2r - 3r) / 2 =
        // -2.5r.
        // dx = r * (g - mean(g) - xhat * mean(g * xhat)) = r * ([2.5, -2.5] - [2.5r^2, -2.5r^2]) = [2.5r(1 - r^2),
        // -2.5r(1 - r^2)];
        // 1 - r^2 = 1e-5 / 1.00001, so dx = +-2.4999750002...e-5. dgamma = dy * xhat = [-r, r], dbeta = dy = [1, 1].
        double r = 1 / Math.sqrt(1.00001);
        double dx0 = 2.5 * r * (1e-5 / 1.00001);
        Step step = step(
                LayerNormConfig.of(2),
                new long[] {1, 2},
                new float[] {1, 3},
                new float[] {1, 1},
                new float[] {2, -3},
                new float[] {0.5f, 0.25f},
                false);
        assertArrayEquals(new float[] {2, 0}, new float[] {step.mean()[0], 0}, 0f);
        assertEquals(1, step.variance()[0], 0f);
        // dx is a difference of nearly equal terms (g - xhat * mean(g xhat)); float gives it to about 1e-6 absolute.
        assertEquals(dx0, step.dx()[0], 1e-6);
        assertEquals(-dx0, step.dx()[1], 1e-6);
        assertArrayEquals(new float[] {(float) -r, (float) r}, step.dgamma(), Math.ulp(1f));
        assertArrayEquals(new float[] {1, 1}, step.dbeta(), 0f);
    }

    @Test
    void forwardAndBackwardWithGlobalStatistics() {
        int rows = 6;
        int c = 256;
        float[] x = TestData.gaussian(rows * c, 0, 2, 7);
        float[] dy = TestData.gaussian(rows * c, 0, 1, 8);
        float[] gamma = TestData.gaussian(c, 1, 1, 9);
        float[] beta = TestData.gaussian(c, 0, 1, 10);
        // Statistics from elsewhere (e.g. running averages), deliberately not the rows' own.
        float[] means = TestData.gaussian(rows, 0.3, 0.5, 11);
        float[] variances = new float[rows];
        for (int r = 0; r < rows; r++) {
            variances[r] = 1 + r * 0.5f;
        }
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend())) {
            Tensor src = Tensor.ofFloats(arena, x, rows, c);
            Tensor dst = Tensor.allocate(arena, DataType.F32, rows, c);
            Tensor scale = Tensor.ofFloats(arena, gamma, c);
            Tensor shift = Tensor.ofFloats(arena, beta, c);
            Tensor mean = Tensor.ofFloats(arena, means, rows);
            Tensor variance = Tensor.ofFloats(arena, variances, rows);
            norm.forwardWithGlobalStatistics(src, dst, scale, shift, mean, variance);
            Contracts.assertRanOn(backend(), norm);
            Reference.Statistics given =
                    new Reference.Statistics(Reference.toDouble(means), Reference.toDouble(variances));
            double[] want = Reference.forward(
                    Reference.toDouble(x), rows, c, Reference.toDouble(gamma), Reference.toDouble(beta), EPS, given);
            float[] y = dst.toFloatArray();
            for (int i = 0; i < y.length; i++) {
                assertEquals(want[i], y[i], 1e-5 * (1 + Math.abs(want[i])), "y[" + i + "]");
            }
            assertArrayEquals(means, mean.toFloatArray(), 0f, "given statistics are only read");

            Tensor diffSrc = Tensor.allocate(arena, DataType.F32, rows, c);
            Tensor diffScale = Tensor.allocate(arena, DataType.F32, c);
            Tensor diffShift = Tensor.allocate(arena, DataType.F32, c);
            norm.backwardWithGlobalStatistics(
                    Tensor.ofFloats(arena, dy, rows, c), src, mean, variance, scale, diffSrc, diffScale, diffShift);
            Contracts.assertRanOn(backend(), norm);
            Accuracy.assertBackward(
                    backend(),
                    dy,
                    x,
                    rows,
                    c,
                    means,
                    variances,
                    gamma,
                    EPS,
                    true,
                    diffSrc.toFloatArray(),
                    diffScale.toFloatArray(),
                    diffShift.toFloatArray());

            Tensor dataOnly = Tensor.allocate(arena, DataType.F32, rows, c);
            norm.backwardDataWithGlobalStatistics(
                    Tensor.ofFloats(arena, dy, rows, c), src, mean, variance, scale, dataOnly);
            Contracts.assertRanOn(backend(), norm);
            Accuracy.assertBackward(
                    backend(), dy, x, rows, c, means, variances, gamma, EPS, true, dataOnly.toFloatArray(), null, null);
        }
    }

    @Test
    void backwardInPlaceOverwritesTheOutputGradient() {
        int rows = 5;
        int c = 768;
        float[] x = TestData.gaussian(rows * c, 0, 1, 12);
        float[] dy = TestData.gaussian(rows * c, 0, 1, 13);
        float[] gamma = TestData.gaussian(c, 1, 1, 14);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withShift(false), backend())) {
            Tensor src = Tensor.ofFloats(arena, x, rows, c);
            Tensor scale = Tensor.ofFloats(arena, gamma, c);
            Tensor mean = Tensor.allocate(arena, DataType.F32, rows);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
            norm.forwardTraining(src, Tensor.allocate(arena, DataType.F32, rows, c), scale, null, mean, variance);
            Tensor gradient = Tensor.ofFloats(arena, dy, rows, c);
            Tensor diffScale = Tensor.allocate(arena, DataType.F32, c);
            norm.backward(gradient, src, mean, variance, scale, gradient, diffScale, null);
            Contracts.assertRanOn(backend(), norm);
            Accuracy.assertBackward(
                    backend(),
                    dy,
                    x,
                    rows,
                    c,
                    mean.toFloatArray(),
                    variance.toFloatArray(),
                    gamma,
                    EPS,
                    false,
                    gradient.toFloatArray(),
                    diffScale.toFloatArray(),
                    null);
        }
    }

    @Test
    void anEmptyBatchHasZeroParameterGradients() {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(4), backend())) {
            Tensor empty = Tensor.allocate(arena, DataType.F32, 0, 4);
            Tensor stats = Tensor.allocate(arena, DataType.F32, 0);
            Tensor diffScale = Tensor.ofFloats(arena, new float[] {9, 9, 9, 9}, 4);
            Tensor diffShift = Tensor.ofFloats(arena, new float[] {9, 9, 9, 9}, 4);
            norm.backward(
                    empty,
                    empty,
                    stats,
                    stats,
                    Tensor.allocate(arena, DataType.F32, 4),
                    Tensor.allocate(arena, DataType.F32, 0, 4),
                    diffScale,
                    diffShift);
            assertArrayEquals(new float[4], diffScale.toFloatArray());
            assertArrayEquals(new float[4], diffShift.toFloatArray());
        }
    }
}
