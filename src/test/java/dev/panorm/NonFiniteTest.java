package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;
import java.util.function.IntPredicate;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The NaN and infinity semantics docs/api.md states ("NaN and infinity"), on every backend: a non-finite
 * input poisons exactly its own row (forward) or its own row and channel (backward), nothing else, and
 * rows whose statistics overflow float32 give NaN, the shift, or the right answer, never garbage.
 */
class NonFiniteTest {
    private static final float INF = Float.POSITIVE_INFINITY;

    static Stream<Arguments> cases() {
        List<Arguments> cases = new ArrayList<>();
        for (Backend backend : Backend.values()) {
            for (int c : new int[] {1, 8, 67, 768}) {
                for (DataType type : new DataType[] {DataType.F32, DataType.BF16}) {
                    cases.add(Arguments.of(backend, c, type));
                }
            }
        }
        return cases.stream();
    }

    /** Rows 1, 3 and 5 hold a NaN, a +Inf and a -Inf at some channel; rows 0, 2, 4, 6 are ordinary. */
    private static float[] poisoned(int c) {
        float[] x = TestData.gaussian(7 * c, 0.5, 2, c);
        x[c + c / 2] = Float.NaN;
        x[3 * c + c - 1] = INF;
        x[5 * c] = -INF;
        return x;
    }

    private static boolean poisonedRow(int row) {
        return row % 2 == 1;
    }

    @ParameterizedTest(name = "{0} C={1} {2}")
    @MethodSource("cases")
    void aNonFiniteInputMakesItsRowNaNAndLeavesOtherRowsAlone(Backend backend, int c, DataType type) {
        int rows = 7;
        float[] x = Tensors.rounded(type, poisoned(c));
        float[] gamma = TestData.gaussian(c, 1, 0.3, c + 1);
        float[] beta = TestData.gaussian(c, 0, 1, c + 2);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend)) {
            Tensor src = Tensors.make(arena, type, x, rows, c);
            Tensor dst = Tensor.allocate(arena, type, rows, c);
            Tensor mean = Tensor.allocate(arena, DataType.F32, rows);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
            norm.forwardTraining(
                    src, dst, Tensor.ofFloats(arena, gamma, c), Tensor.ofFloats(arena, beta, c), mean, variance);

            float[] y = Tensors.read(dst);
            float[] means = mean.toFloatArray();
            float[] variances = variance.toFloatArray();
            for (int r = 0; r < rows; r++) {
                float[] row = Arrays.copyOfRange(y, r * c, r * c + c);
                if (poisonedRow(r)) {
                    for (float value : row) {
                        assertTrue(
                                Float.isNaN(value),
                                "row " + r + " holds a non-finite input: every output is NaN, got " + value);
                    }
                    assertFalse(Float.isFinite(means[r]), "mean of row " + r + " is NaN or infinite, got " + means[r]);
                    assertTrue(Float.isNaN(variances[r]), "variance of row " + r + " is NaN, got " + variances[r]);
                } else {
                    Accuracy.assertForward(
                            backend,
                            Arrays.copyOfRange(x, r * c, r * c + c),
                            1,
                            c,
                            gamma,
                            beta,
                            LayerNormConfig.DEFAULT_EPS,
                            false,
                            type,
                            row);
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} C={1} {2}")
    @MethodSource("cases")
    void aNonFiniteGradientPoisonsItsRowAndTheChannelsItTouches(Backend backend, int c, DataType type) {
        int rows = 7;
        float[] x = Tensors.rounded(type, TestData.gaussian(rows * c, 0.5, 2, c));
        float[] dy = Tensors.rounded(type, poisoned(c));
        float[] gamma = TestData.gaussian(c, 1, 0.3, c + 1);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend)) {
            Tensor src = Tensors.make(arena, type, x, rows, c);
            Tensor scale = Tensor.ofFloats(arena, gamma, c);
            Tensor shift = Tensor.allocate(arena, DataType.F32, c);
            Tensor mean = Tensor.allocate(arena, DataType.F32, rows);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
            norm.forwardTraining(src, Tensor.allocate(arena, type, rows, c), scale, shift, mean, variance);
            Tensor dx = Tensor.allocate(arena, type, rows, c);
            Tensor dGamma = Tensor.allocate(arena, DataType.F32, c);
            Tensor dBeta = Tensor.allocate(arena, DataType.F32, c);
            norm.backward(Tensors.make(arena, type, dy, rows, c), src, mean, variance, scale, dx, dGamma, dBeta);

            float[] gradients = Tensors.read(dx);
            for (int r = 0; r < rows; r++) {
                for (int i = 0; i < c; i++) {
                    // An infinite dy spreads through the row's mean terms as +-Inf or NaN (Inf - Inf).
                    float value = gradients[r * c + i];
                    assertEquals(poisonedRow(r), !Float.isFinite(value), "dx[" + r + ", " + i + "] = " + value);
                }
            }
            float[] dGammas = dGamma.toFloatArray();
            float[] dBetas = dBeta.toFloatArray();
            for (int i = 0; i < c; i++) {
                boolean touched =
                        !Float.isFinite(dy[c + i]) || !Float.isFinite(dy[3 * c + i]) || !Float.isFinite(dy[5 * c + i]);
                assertEquals(touched, !Float.isFinite(dGammas[i]), "dGamma[" + i + "] = " + dGammas[i]);
                assertEquals(touched, !Float.isFinite(dBetas[i]), "dBeta[" + i + "] = " + dBetas[i]);
            }
        }
    }

    @ParameterizedTest(name = "{0} C={1} {2}")
    @MethodSource("cases")
    void backwardThroughARowWhoseInputWasNaNGivesThatRowNaNGradients(Backend backend, int c, DataType type) {
        int rows = 7;
        assertNaNRowsOfBackward(
                backend,
                c,
                type,
                rows,
                poisoned(c),
                TestData.gaussian(rows * c, 0, 1, c + 3),
                variance -> {},
                NonFiniteTest::poisonedRow);
    }

    /**
     * Statistics handed back to backward are the forward pass's, used as given, not checked: a variance
     * below -eps (which no forward pass writes) makes its row NaN like any other non-finite value.
     */
    @ParameterizedTest(name = "{0} C={1} {2}")
    @MethodSource("cases")
    void backwardUsesTheBatchStatisticsItIsGivenUnchecked(Backend backend, int c, DataType type) {
        int rows = 5;
        assertNaNRowsOfBackward(
                backend,
                c,
                type,
                rows,
                TestData.gaussian(rows * c, 0, 1, c + 4),
                TestData.gaussian(rows * c, 0, 1, c + 5),
                variance -> variance.segment().setAtIndex(ValueLayout.JAVA_FLOAT, 3, -1f),
                row -> row == 3);
    }

    /**
     * Runs forwardTraining on {@code x} and backwardData with {@code dy} and the statistics it wrote (the
     * variance changed by {@code edit} first), and asserts that exactly the rows {@code nanRow} picks have NaN
     * gradients.
     */
    private static void assertNaNRowsOfBackward(
            Backend backend,
            int c,
            DataType type,
            int rows,
            float[] x,
            float[] dy,
            Consumer<Tensor> edit,
            IntPredicate nanRow) {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withoutAffine(), backend)) {
            Tensor src = Tensors.make(arena, type, Tensors.rounded(type, x), rows, c);
            Tensor mean = Tensor.allocate(arena, DataType.F32, rows);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
            norm.forwardTraining(src, Tensor.allocate(arena, type, rows, c), null, null, mean, variance);
            edit.accept(variance);
            Tensor dx = Tensor.allocate(arena, type, rows, c);
            norm.backwardData(
                    Tensors.make(arena, type, Tensors.rounded(type, dy), rows, c), src, mean, variance, null, dx);

            float[] gradients = Tensors.read(dx);
            for (int r = 0; r < rows; r++) {
                for (int i = 0; i < c; i++) {
                    float value = gradients[r * c + i];
                    assertEquals(nanRow.test(r), Float.isNaN(value), "dx[" + r + ", " + i + "] = " + value);
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} C={1} {2}")
    @MethodSource("cases")
    void rowsWhoseStatisticsOverflowFloatGiveNaNTheShiftOrTheRightAnswer(Backend backend, int c, DataType type) {
        if (c == 1) {
            return; // one element: the deviation is 0 whatever its size
        }
        float[] x = new float[2 * c];
        for (int i = 0; i < c; i++) {
            x[i] = i % 2 == 0 ? 3e38f : -3e38f; // the sum of squares overflows float
            x[c + i] = i == 0 ? 1e30f : i; // a square of 1e60
        }
        x = Tensors.rounded(type, x);
        float[] beta = TestData.gaussian(c, 0, 1, c + 2);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withScale(false), backend)) {
            Tensor dst = Tensor.allocate(arena, DataType.F32, 2, c);
            norm.forward(Tensors.make(arena, type, x, 2, c), dst, null, Tensor.ofFloats(arena, beta, c));
            float[] y = dst.toFloatArray();
            double[] expected = Reference.forward(x, 2, c, null, beta, LayerNormConfig.DEFAULT_EPS);
            for (int i = 0; i < y.length; i++) {
                boolean right = Math.abs(y[i] - expected[i]) <= 1e-5 * (1 + Math.abs(expected[i]));
                boolean acceptable = backend == Backend.JAVA_SCALAR
                        ? right // it accumulates in double
                        : right || Float.isNaN(y[i]) || y[i] == beta[i % c];
                assertTrue(
                        acceptable,
                        backend + " element " + i + ": got " + y[i] + ", expected " + expected[i]
                                + ", NaN or the shift " + beta[i % c]);
            }
        }
    }

    @ParameterizedTest(name = "{0} C={1} {2}")
    @MethodSource("cases")
    void rmsNormGivesNaNAtAnInfinityAndTheShiftBesideIt(Backend backend, int c, DataType type) {
        int rows = 7;
        float[] x = Tensors.rounded(type, poisoned(c));
        float[] beta = TestData.gaussian(c, 0, 1, c + 2);
        LayerNormConfig config = LayerNormConfig.rms(c).withScale(false).withShift(true);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(config, backend)) {
            Tensor dst = Tensor.allocate(arena, DataType.F32, rows, c);
            norm.forward(Tensors.make(arena, type, x, rows, c), dst, null, Tensor.ofFloats(arena, beta, c));
            float[] y = dst.toFloatArray();
            // x / sqrt(mean(x^2) + eps): a NaN poisons the mean square, an infinity makes it infinite.
            for (int r : new int[] {1, 3, 5}) {
                boolean nanRow = r == 1;
                for (int i = 0; i < c; i++) {
                    int at = r * c + i;
                    if (nanRow || Float.isInfinite(x[at])) {
                        assertTrue(Float.isNaN(y[at]), "y[" + r + ", " + i + "] = " + y[at]);
                    } else {
                        assertEquals(beta[i], y[at], "y[" + r + ", " + i + "]: a finite value over an infinite RMS");
                    }
                }
            }
        }
    }
}
