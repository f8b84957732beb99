package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/** RMS normalization, forward and backward, on both backends, against the reference. */
class RmsNormTest {
    private static final double EPS = LayerNormConfig.DEFAULT_RMS_EPS;

    static Stream<Arguments> shapes() {
        List<Arguments> cases = new ArrayList<>();
        for (Backend backend : Backend.values()) {
            for (int c : new int[] {1, 2, 3, 7, 64, 768, 1000, 4096, 65536}) {
                int rows = c >= 4096 ? 5 : 97;
                for (int affine = 0; affine < 4; affine++) {
                    cases.add(Arguments.of(backend, rows, c, (affine & 1) != 0, (affine & 2) != 0));
                }
            }
        }
        return cases.stream();
    }

    @ParameterizedTest(name = "{0} [{1}, {2}] scale={3} shift={4}")
    @MethodSource("shapes")
    void forwardTrainingAndBackward(Backend backend, int rows, int c, boolean scale, boolean shift) {
        float[] x = TestData.gaussian(rows * c, 0.3, 1.5, c);
        float[] dy = TestData.gaussian(rows * c, 0, 1, c + 1);
        float[] gamma = scale ? TestData.gaussian(c, 1, 0.5, c + 2) : null;
        float[] beta = shift ? TestData.gaussian(c, 0, 1, c + 3) : null;
        LayerNormConfig config = LayerNormConfig.rms(c).withScale(scale).withShift(shift);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(config, backend)) {
            Tensor src = Tensor.ofFloats(arena, x, rows, c);
            Tensor g = scale ? Tensor.ofFloats(arena, gamma, c) : null;
            Tensor b = shift ? Tensor.ofFloats(arena, beta, c) : null;
            Tensor y = Tensor.allocate(arena, DataType.F32, rows, c);
            norm.forward(src, y, g, b);
            Accuracy.assertForward(backend, x, rows, c, gamma, beta, EPS, true, DataType.F32, y.toFloatArray());

            Tensor meanSquare = Tensor.allocate(arena, DataType.F32, rows);
            Tensor trained = Tensor.allocate(arena, DataType.F32, rows, c);
            norm.forwardTraining(src, trained, g, b, null, meanSquare);
            Accuracy.assertForward(backend, x, rows, c, gamma, beta, EPS, true, DataType.F32, trained.toFloatArray());
            double[] exact =
                    Reference.rmsStatistics(Reference.toDouble(x), rows, c).variance();
            float[] measured = meanSquare.toFloatArray();
            for (int r = 0; r < rows; r++) {
                // A sum of c positive terms: relative error at most about c * u, in practice far less.
                assertEquals(
                        exact[r],
                        measured[r],
                        Accuracy.factor(backend) * Accuracy.UNIT_ROUNDOFF * exact[r] * Math.sqrt(c),
                        "mean square of row " + r);
            }

            Tensor dx = Tensor.allocate(arena, DataType.F32, rows, c);
            Tensor dGamma = scale ? Tensor.allocate(arena, DataType.F32, c) : null;
            Tensor dBeta = shift ? Tensor.allocate(arena, DataType.F32, c) : null;
            Tensor diffDst = Tensor.ofFloats(arena, dy, rows, c);
            norm.backward(diffDst, src, null, meanSquare, g, dx, dGamma, dBeta);
            Accuracy.assertBackward(
                    backend,
                    dy,
                    x,
                    rows,
                    c,
                    null,
                    measured,
                    gamma,
                    EPS,
                    false,
                    true,
                    DataType.F32,
                    DataType.F32,
                    dx.toFloatArray(),
                    scale ? dGamma.toFloatArray() : null,
                    shift ? dBeta.toFloatArray() : null);

            Tensor dataOnly = Tensor.allocate(arena, DataType.F32, rows, c);
            norm.backwardData(diffDst, src, null, meanSquare, g, dataOnly);
            Accuracy.assertBackward(
                    backend,
                    dy,
                    x,
                    rows,
                    c,
                    null,
                    measured,
                    gamma,
                    EPS,
                    false,
                    true,
                    DataType.F32,
                    DataType.F32,
                    dataOnly.toFloatArray(),
                    null,
                    null);

            Tensor global = Tensor.allocate(arena, DataType.F32, rows, c);
            norm.backwardDataWithGlobalStatistics(diffDst, src, null, meanSquare, g, global);
            Accuracy.assertBackward(
                    backend,
                    dy,
                    x,
                    rows,
                    c,
                    null,
                    measured,
                    gamma,
                    EPS,
                    true,
                    true,
                    DataType.F32,
                    DataType.F32,
                    global.toFloatArray(),
                    null,
                    null);
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void handComputedValues(Backend backend) {
        // x = [3, 4]: mean square 12.5, so y = x / sqrt(12.5 + eps) = [0.848528..., 1.131370...] (eps = 2^-23).
        double rms = Math.sqrt(12.5 + 0x1p-23);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.rms(2).withoutAffine(), backend)) {
            Tensor x = Tensor.ofFloats(arena, new float[] {3, 4}, 1, 2);
            Tensor y = Tensor.allocate(arena, DataType.F32, 1, 2);
            norm.forward(x, y);
            assertArrayEquals(new float[] {(float) (3 / rms), (float) (4 / rms)}, y.toFloatArray(), Math.ulp(1f));
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void halfPrecisionAndSeveralAxes(Backend backend) {
        int rows = 6;
        long[] normalized = {4, 24};
        int c = 96;
        float[] x = Tensors.rounded(DataType.BF16, TestData.gaussian(rows * c, -1, 2, 5));
        float[] gamma = TestData.gaussian(c, 1, 0.5, 6);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.rms(normalized), backend)) {
            Tensor src = Tensors.make(arena, DataType.BF16, x, rows, 4, 24);
            Tensor dst = Tensor.allocate(arena, DataType.F16, rows, 4, 24);
            norm.forward(src, dst, Tensors.make(arena, DataType.F32, gamma, normalized), null);
            Accuracy.assertForward(
                    backend,
                    x,
                    rows,
                    c,
                    gamma,
                    null,
                    LayerNormConfig.DEFAULT_RMS_EPS,
                    true,
                    DataType.F16,
                    Tensors.read(dst));
        }
    }

    @Test
    void rmsHasNoMean() {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.rms(4).withoutAffine(), Backend.JAVA)) {
            Tensor x = Tensor.allocate(arena, DataType.F32, 2, 4);
            Tensor stat = Tensor.allocate(arena, DataType.F32, 2);
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> norm.forwardTraining(x, x, null, null, stat, Tensor.allocate(arena, DataType.F32, 2)));
            assertTrue(e.getMessage().contains("RMS normalization has no mean; pass null for mean"), e.getMessage());
        }
    }

    /**
     * oneDNN composes RMS backward from three primitives; in place, the first must not overwrite what the others read.
     */
    @ParameterizedTest
    @EnumSource(Backend.class)
    void inPlaceBackwardMatchesOutOfPlace(Backend backend) {
        int rows = 5;
        int c = 64;
        float[] x = TestData.gaussian(rows * c, 0.3, 1.5, 11);
        float[] dy = TestData.gaussian(rows * c, 0, 1, 12);
        LayerNormConfig config = LayerNormConfig.rms(c).withShift(false);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(config, backend)) {
            Tensor src = Tensor.ofFloats(arena, x, rows, c);
            Tensor gamma = Tensor.ofFloats(arena, TestData.gaussian(c, 1, 0.5, 13), c);
            Tensor meanSquare = Tensor.allocate(arena, DataType.F32, rows);
            norm.forwardTraining(src, Tensor.allocate(arena, DataType.F32, rows, c), gamma, null, null, meanSquare);
            Tensor dx = Tensor.allocate(arena, DataType.F32, rows, c);
            norm.backwardData(Tensor.ofFloats(arena, dy, rows, c), src, null, meanSquare, gamma, dx);
            Tensor inPlace = Tensor.ofFloats(arena, dy, rows, c);
            norm.backwardData(inPlace, src, null, meanSquare, gamma, inPlace);
            assertArrayEquals(dx.toFloatArray(), inPlace.toFloatArray());
        }
    }
}
