package dev.panorm;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Measures each backend's error on well- and ill-conditioned rows, prints the table the README
 * quotes, and asserts the documented bound. Reproduce with
 * {@code scripts/mvn test -Dtest=AccuracyReportTest}.
 */
class AccuracyReportTest {
    private static final double[][] DISTRIBUTIONS = {{0, 1}, {1e4, 1}, {1e4, 0.01}, {0, 1e-3}, {100, 10}, {-3, 1e3}};
    private static final int[] CHANNELS = {1, 2, 3, 7, 64, 768, 1000, 4096, 65536};

    @Test
    void errorsStayWithinTheDocumentedBound() {
        System.out.println("| mean | std | C | backend | max error | max error / (u * (kappa * max(1,|gamma|) + |beta|)) |");
        System.out.println("|---|---|---|---|---|---|");
        for (double[] distribution : DISTRIBUTIONS) {
            for (int c : CHANNELS) {
                int rows = Math.max(1, Math.min(200, 200_000 / c));
                float[] x = TestData.gaussian(rows * c, distribution[0], distribution[1], c);
                float[] gamma = TestData.gaussian(c, 0, 2, c + 1);
                float[] beta = TestData.gaussian(c, 0, 1, c + 2);
                double[] expected = Reference.forward(x, rows, c, gamma, beta, 1e-5);
                for (Backend backend : Backend.values()) {
                    float[] y = run(backend, x, rows, c, gamma, beta);
                    double maxError = 0;
                    double maxRatio = 0;
                    for (int r = 0; r < rows; r++) {
                        double kappa = Accuracy.conditionNumber(x, r * c, c, 1e-5);
                        for (int i = 0; i < c; i++) {
                            double error = Math.abs(y[r * c + i] - expected[r * c + i]);
                            double unit = Accuracy.UNIT_ROUNDOFF * (kappa * Math.max(1, Math.abs(gamma[i])) + Math.abs(beta[i]));
                            maxError = Math.max(maxError, error);
                            maxRatio = Math.max(maxRatio, error / unit);
                        }
                    }
                    System.out.printf(Locale.ROOT, "| %g | %g | %d | %s | %.2e | %.2f |%n", distribution[0], distribution[1],
                            c, backend, maxError, maxRatio);
                    assertTrue(maxRatio <= Accuracy.factor(backend), backend + " exceeds K at C=" + c);
                }
            }
        }
    }

    private static float[] run(Backend backend, float[] x, int rows, int c, float[] gamma, float[] beta) {
        try (Arena arena = Arena.ofConfined(); LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend)) {
            Tensor dst = Tensor.allocate(arena, DataType.F32, rows, c);
            norm.forward(Tensor.ofFloats(arena, x, rows, c), dst, Tensor.ofFloats(arena, gamma, c),
                    Tensor.ofFloats(arena, beta, c));
            return dst.toFloatArray();
        }
    }
}
