package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.util.Locale;
import org.junit.jupiter.api.Test;

/**
 * Measures each mode's error on well- and ill-conditioned rows, prints the table docs/accuracy.md
 * quotes, and asserts the documented bounds. Reproduce with
 * {@code scripts/mvn test -Dtest=AccuracyReportTest}.
 */
class AccuracyReportTest {
    private static final double[][] DISTRIBUTIONS = {{0, 1}, {1e4, 1}, {1e4, 0.01}, {0, 1e-3}, {100, 10}, {-3, 1e3}};
    private static final int[] CHANNELS = {1, 2, 3, 7, 64, 768, 1000, 4096, 65536};

    private record Mode(String name, Backend backend, boolean precise) {}

    private static final Mode[] MODES = {
        new Mode("oneDNN", Backend.ONEDNN, false),
        new Mode("oneDNN precise", Backend.ONEDNN, true),
        new Mode("Java", Backend.JAVA, false)
    };

    @Test
    void errorsStayWithinTheDocumentedBounds() {
        System.out.println(
                "| mean | std | C | mode | max error | max error / (u * (kappa * max(1,|gamma|) + |beta|)) |");
        System.out.println("|---|---|---|---|---|---|");
        for (double[] distribution : DISTRIBUTIONS) {
            for (int c : CHANNELS) {
                int rows = Math.max(1, Math.min(200, 200_000 / c));
                float[] x = TestData.gaussian(rows * c, distribution[0], distribution[1], c);
                float[] gamma = TestData.gaussian(c, 0, 2, c + 1);
                float[] beta = TestData.gaussian(c, 0, 1, c + 2);
                double[] expected = Reference.forward(x, rows, c, gamma, beta, 1e-5);
                Reference.Statistics exact = Reference.statistics(Reference.toDouble(x), rows, c);
                for (Mode mode : MODES) {
                    float[] y = run(mode, x, rows, c, gamma, beta);
                    double maxError = 0;
                    double maxRatio = 0;
                    for (int r = 0; r < rows; r++) {
                        // kappa as the bound uses it: the precise mode's is the centred row's.
                        double kappa = mode.precise()
                                ? centredKappa(x, r, c, exact)
                                : Accuracy.conditionNumber(x, r * c, c, 1e-5);
                        for (int i = 0; i < c; i++) {
                            double error = Math.abs(y[r * c + i] - expected[r * c + i]);
                            double unit = Accuracy.UNIT_ROUNDOFF
                                    * (kappa * Math.max(1, Math.abs(gamma[i])) + Math.abs(beta[i]));
                            maxError = Math.max(maxError, error);
                            maxRatio = Math.max(maxRatio, error / unit);
                        }
                    }
                    System.out.printf(
                            Locale.ROOT,
                            "| %g | %g | %d | %s | %.2e | %.2f |%n",
                            distribution[0],
                            distribution[1],
                            c,
                            mode.name(),
                            maxError,
                            maxRatio);
                    assertTrue(maxRatio <= Accuracy.factor(mode.backend()), mode.name() + " exceeds K at C=" + c);
                }
            }
        }
    }

    private static double centredKappa(float[] x, int row, int c, Reference.Statistics exact) {
        double spread = 0;
        for (int i = 0; i < c; i++) {
            spread = Math.max(spread, Math.abs(x[row * c + i] - exact.mean()[row]));
        }
        return spread / Math.sqrt(exact.variance()[row] + 1e-5);
    }

    private static float[] run(Mode mode, float[] x, int rows, int c, float[] gamma, float[] beta) {
        LayerNormConfig config = LayerNormConfig.of(c).withPreciseStatistics(mode.precise());
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(config, mode.backend())) {
            Tensor dst = Tensor.allocate(arena, DataType.F32, rows, c);
            norm.forward(
                    Tensor.ofFloats(arena, x, rows, c),
                    dst,
                    Tensor.ofFloats(arena, gamma, c),
                    Tensor.ofFloats(arena, beta, c));
            return dst.toFloatArray();
        }
    }
}
