package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The oneDNN backend's precise mode: statistics from panorm's double-accumulated kernel, the part
 * of the mean that float cannot hold added back by a post-op.
 */
class PreciseStatisticsTest {

    /** The largest error against the reference of a normalization without scale or shift. */
    private static double maxError(LayerNormConfig config, Backend backend, float[] x, int rows, int c) {
        double[] expected = Reference.forward(x, rows, c, null, null, config.eps());
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(config, backend)) {
            Tensor y = Tensor.allocate(arena, DataType.F32, rows, c);
            norm.forward(Tensor.ofFloats(arena, x, rows, c), y);
            float[] actual = y.toFloatArray();
            double max = 0;
            for (int i = 0; i < actual.length; i++) {
                max = Math.max(max, Math.abs(actual[i] - expected[i]));
            }
            return max;
        }
    }

    @Test
    void illConditionedRowsAreAtLeast100TimesMoreAccurate() {
        // The case the issue measured: mean 1e4, std 0.01, C = 1024.
        int rows = 64;
        int c = 1024;
        float[] x = TestData.gaussian(rows * c, 1e4, 0.01, 42);
        LayerNormConfig plain = LayerNormConfig.of(c).withoutAffine();
        double oneDnn = maxError(plain, Backend.ONEDNN, x, rows, c);
        double precise = maxError(plain.withPreciseStatistics(true), Backend.ONEDNN, x, rows, c);
        double java = maxError(plain, Backend.JAVA, x, rows, c);
        System.out.printf(
                "mean 1e4, std 0.01, C 1024: max error oneDNN %.3g, oneDNN precise %.3g, Java %.3g%n",
                oneDnn, precise, java);
        assertTrue(precise * 100 <= oneDnn, "precise " + precise + " vs default " + oneDnn);
        float[] y = new float[rows * c];
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(plain.withPreciseStatistics(true), Backend.ONEDNN)) {
            Tensor out = Tensor.allocate(arena, DataType.F32, rows, c);
            norm.forward(Tensor.ofFloats(arena, x, rows, c), out);
            System.arraycopy(out.toFloatArray(), 0, y, 0, y.length);
        }
        Accuracy.assertForwardPrecise(x, rows, c, null, null, plain.eps(), y);
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void preciseModeWithScaleShiftAndTraining(boolean ill) {
        int rows = 9;
        int c = 300;
        float[] x = TestData.gaussian(rows * c, ill ? -5e3 : 0.5, ill ? 0.05 : 2, 3);
        float[] gamma = TestData.gaussian(c, 1, 0.5, 4);
        float[] beta = TestData.gaussian(c, 0, 1, 5);
        LayerNormConfig config = LayerNormConfig.of(c).withPreciseStatistics(true);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(config, Backend.ONEDNN)) {
            Tensor src = Tensor.ofFloats(arena, x, rows, c);
            Tensor dst = Tensor.allocate(arena, DataType.F32, rows, c);
            Tensor mean = Tensor.allocate(arena, DataType.F32, rows);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
            Tensor scale = Tensor.ofFloats(arena, gamma, c);
            Tensor shift = Tensor.ofFloats(arena, beta, c);
            norm.forwardTraining(src, dst, scale, shift, mean, variance);
            assertEquals(Backend.ONEDNN, norm.lastBackend());
            Accuracy.assertForwardPrecise(x, rows, c, gamma, beta, config.eps(), dst.toFloatArray());
            Reference.Statistics exact = Reference.statistics(Reference.toDouble(x), rows, c);
            for (int r = 0; r < rows; r++) {
                assertEquals((float) exact.mean()[r], mean.toFloatArray()[r], 0f, "the mean rounded once, from double");
                assertEquals(
                        (float) exact.variance()[r], variance.toFloatArray()[r], Math.ulp((float) exact.variance()[r]));
            }
            Tensor inference = Tensor.allocate(arena, DataType.F32, rows, c);
            norm.forward(src, inference, scale, shift);
            assertArrayEquals(dst.toFloatArray(), inference.toFloatArray(), 0f);
            assertTrue(norm.implementation(src, inference, scale, shift).contains(":"));
        }
    }
}
