package dev.panorm;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * The documented tolerance (README, "Accuracy"), asserted element by element against the reference.
 *
 * <p>Float32 has unit roundoff u = 2^-24. Computing {@code x - mean} in float loses about
 * {@code u * max|x|}, and normalizing divides that by {@code sqrt(var + eps)}; so a row's error scales
 * with its condition number {@code kappa = max|x| / sqrt(var + eps)}, then with |gamma|, plus the
 * rounding of the shift. The bound per element is
 * {@code |y - y_ref| <= K * u * (kappa * max(1, |gamma_c|) + |beta_c|)},
 * with K = 8 for oneDNN (largest ratio measured on the test grid: 3.0) and K = 2 for the Java
 * backend, whose statistics are accumulated in double (largest measured: 1.0).
 */
final class Accuracy {
    static final double UNIT_ROUNDOFF = 0x1p-24;

    private Accuracy() {}

    static double factor(Backend backend) {
        return switch (backend) {
            case ONEDNN -> 8;
            case JAVA -> 2;
        };
    }

    /** Asserts that {@code actual} is the layer normalization of {@code x} within the backend's tolerance. */
    static void assertForward(Backend backend, float[] x, int rows, int c, float[] gamma, float[] beta, double eps,
                              float[] actual) {
        double[] expected = Reference.forward(x, rows, c, gamma, beta, eps);
        double k = factor(backend);
        for (int r = 0; r < rows; r++) {
            double kappa = conditionNumber(x, r * c, c, eps);
            for (int i = 0; i < c; i++) {
                int at = r * c + i;
                double g = gamma == null ? 1 : Math.abs(gamma[i]);
                double b = beta == null ? 0 : Math.abs(beta[i]);
                double tolerance = k * UNIT_ROUNDOFF * (kappa * Math.max(1, g) + b);
                double error = Math.abs(actual[at] - expected[at]);
                if (!(error <= tolerance)) {
                    fail(String.format("%s: row %d, channel %d of [%d, %d]: got %s, expected %s (error %.3g > tolerance %.3g,"
                            + " kappa %.3g)", backend, r, i, rows, c, actual[at], expected[at], error, tolerance, kappa));
                }
            }
        }
    }

    /** max|x| / sqrt(var + eps) for one row, var the exact biased variance. */
    static double conditionNumber(float[] x, int base, int c, double eps) {
        double mean = 0;
        double maxAbs = 0;
        for (int i = 0; i < c; i++) {
            mean += x[base + i];
            maxAbs = Math.max(maxAbs, Math.abs(x[base + i]));
        }
        mean /= c;
        double variance = 0;
        for (int i = 0; i < c; i++) {
            double d = x[base + i] - mean;
            variance += d * d;
        }
        variance /= c;
        return maxAbs / Math.sqrt(variance + eps);
    }
}
