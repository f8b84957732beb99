package dev.panorm;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.Arrays;

/**
 * The documented tolerances (docs/accuracy.md), asserted element by element against the reference.
 *
 * <p>Float32 has unit roundoff u = 2^-24. Computing {@code x - mean} in float loses about
 * {@code u * max|x|}, and normalizing divides that by {@code sqrt(var + eps)}; so a row's error scales
 * with its condition number {@code kappa = max|x| / sqrt(var + eps)}, then with |gamma|, plus the
 * rounding of the shift. The bound per element is
 * {@code |y - y_ref| <= K * u * (kappa * max(1, |gamma_c|) + |beta_c|)},
 * with K = 8 for oneDNN and the Java Vector API kernels, which accumulate in float (largest ratios
 * measured on the test grid: 3.1 and 3.x), and K = 2 for the scalar Java kernels, whose statistics
 * are accumulated in double (largest measured: 1.0). AUTO runs one of the first two.
 *
 * <p>The training outputs follow the same reasoning, with the same K, where G is a row's
 * max |dy * gamma|, kappa its max|x| * rstd (rstd from the statistics the backend used):
 * mean: {@code K*u*max|x|}; variance: {@code K*u*(var + sqrt(var)*max|x|)};
 * dx: {@code K*u*rstd*G*(kappa + 1)}; dgamma_c: {@code K*u*sqrt(rows)*sum_r |dy_rc|*(kappa_r + 1)};
 * dbeta_c: {@code K*u*sqrt(rows)*sum_r |dy_rc|} (float sums over rows drift like a random walk).
 * Largest ratios measured on the test grid: oneDNN 2.8, Java 1.0.
 */
final class Accuracy {
    static final double UNIT_ROUNDOFF = 0x1p-24;

    private Accuracy() {}

    static double factor(Backend backend) {
        return switch (backend) {
            case ONEDNN, JAVA, AUTO -> 8;
            case JAVA_SCALAR -> 2;
        };
    }

    /** Asserts that {@code actual} is the layer normalization of {@code x} within the backend's tolerance. */
    static void assertForward(
            Backend backend, float[] x, int rows, int c, float[] gamma, float[] beta, double eps, float[] actual) {
        assertForward(backend, x, rows, c, gamma, beta, eps, false, DataType.F32, actual);
    }

    /**
     * The general case: layer or RMS normalization, output rounded to {@code outType}, which adds that
     * type's unit roundoff times |y| (2^-8 for bf16, 2^-11 for f16) to the bound.
     */
    static void assertForward(
            Backend backend,
            float[] x,
            int rows,
            int c,
            float[] gamma,
            float[] beta,
            double eps,
            boolean rms,
            DataType outType,
            float[] actual) {
        double[] xd = Reference.toDouble(x);
        double[] expected = rms
                ? Reference.rmsForward(xd, rows, c, Reference.toDouble(gamma), Reference.toDouble(beta), eps)
                : Reference.forward(xd, rows, c, Reference.toDouble(gamma), Reference.toDouble(beta), eps);
        double k = factor(backend);
        double outputRoundoff = unitRoundoff(outType);
        for (int r = 0; r < rows; r++) {
            double kappa = rms
                    ? maxAbs(x, r * c, c)
                            / Math.sqrt(Reference.rmsStatistics(Arrays.copyOfRange(xd, r * c, r * c + c), 1, c)
                                            .variance()[0]
                                    + eps)
                    : conditionNumber(x, r * c, c, eps);
            for (int i = 0; i < c; i++) {
                int at = r * c + i;
                double g = gamma == null ? 1 : Math.abs(gamma[i]);
                double b = beta == null ? 0 : Math.abs(beta[i]);
                double tolerance = k * UNIT_ROUNDOFF * (kappa * Math.max(1, g) + b)
                        + (outType == DataType.F32 ? 0 : outputRoundoff * Math.abs(expected[at]))
                        + underflow(outType);
                double error = Math.abs(actual[at] - expected[at]);
                if (!(error <= tolerance)) {
                    fail(String.format(
                            "%s: row %d, channel %d of [%d, %d]: got %s, expected %s (error %.3g > tolerance %.3g,"
                                    + " kappa %.3g)",
                            backend, r, i, rows, c, actual[at], expected[at], error, tolerance, kappa));
                }
            }
        }
    }

    /**
     * The forward pass with given (global) statistics, {@code mean} null for RMS normalization: against the
     * reference fed with the same float statistics, with the bound's condition number taken from what float
     * rounds here, {@code x - mean}: {@code kappa = max(max|x|, |mean|) / sqrt(var + eps)}.
     */
    static void assertForwardGlobal(
            Backend backend,
            float[] x,
            int rows,
            int c,
            float[] mean,
            float[] variance,
            float[] gamma,
            float[] beta,
            double eps,
            DataType outType,
            float[] actual) {
        Reference.Statistics given = new Reference.Statistics(
                mean == null ? new double[rows] : Reference.toDouble(mean), Reference.toDouble(variance));
        double[] expected = Reference.forward(
                Reference.toDouble(x), rows, c, Reference.toDouble(gamma), Reference.toDouble(beta), eps, given);
        double k = factor(backend);
        for (int r = 0; r < rows; r++) {
            double kappa =
                    Math.max(maxAbs(x, r * c, c), Math.abs(given.mean()[r])) / Math.sqrt(given.variance()[r] + eps);
            for (int i = 0; i < c; i++) {
                int at = r * c + i;
                double g = gamma == null ? 1 : Math.abs(gamma[i]);
                double b = beta == null ? 0 : Math.abs(beta[i]);
                assertWithin(
                        backend,
                        outType,
                        "y[" + r + ", " + i + "] with given statistics",
                        actual[at],
                        expected[at],
                        k * UNIT_ROUNDOFF * (kappa * Math.max(1, g) + b)
                                + rounding(outType, expected[at])
                                + underflow(outType));
            }
        }
    }

    /** The unit roundoff of a type: half the distance from 1 to the next value. */
    static double unitRoundoff(DataType type) {
        return switch (type) {
            case F32 -> 0x1p-24;
            case BF16 -> 0x1p-8;
            case F16 -> 0x1p-11;
            case S8 -> throw new IllegalArgumentException("int8 has no unit roundoff; see FusedContract");
        };
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

    /**
     * The bound of the oneDNN backend's precise mode: oneDNN's K, but with the condition number of the
     * centred row, {@code max|x - mean| / sqrt(var + eps)} (about 3 to 5 for Gaussian rows, whatever
     * their mean), because the mean's rounding to float no longer enters.
     */
    static void assertForwardPrecise(
            float[] x, int rows, int c, float[] gamma, float[] beta, double eps, float[] actual) {
        double[] expected = Reference.forward(x, rows, c, gamma, beta, eps);
        Reference.Statistics exact = Reference.statistics(Reference.toDouble(x), rows, c);
        double k = factor(Backend.ONEDNN);
        for (int r = 0; r < rows; r++) {
            double spread = 0;
            for (int i = 0; i < c; i++) {
                spread = Math.max(spread, Math.abs(x[r * c + i] - exact.mean()[r]));
            }
            double kappa = spread / Math.sqrt(exact.variance()[r] + eps);
            for (int i = 0; i < c; i++) {
                int at = r * c + i;
                double g = gamma == null ? 1 : Math.abs(gamma[i]);
                double b = beta == null ? 0 : Math.abs(beta[i]);
                assertWithin(
                        Backend.ONEDNN,
                        "precise y[" + r + ", " + i + "]",
                        actual[at],
                        expected[at],
                        k * UNIT_ROUNDOFF * (kappa * Math.max(1, g) + b));
            }
        }
    }

    /** Asserts forward-training statistics against the exact per-row mean and variance. */
    static void assertStatistics(Backend backend, float[] x, int rows, int c, float[] mean, float[] variance) {
        Reference.Statistics exact = Reference.statistics(Reference.toDouble(x), rows, c);
        double k = factor(backend);
        for (int r = 0; r < rows; r++) {
            double maxAbs = maxAbs(x, r * c, c);
            double var = exact.variance()[r];
            assertWithin(backend, "mean[" + r + "]", mean[r], exact.mean()[r], k * UNIT_ROUNDOFF * maxAbs);
            assertWithin(
                    backend,
                    "variance[" + r + "]",
                    variance[r],
                    var,
                    k * UNIT_ROUNDOFF * (var + Math.sqrt(var) * maxAbs));
        }
    }

    /**
     * Asserts backward outputs against the reference fed with the same float statistics the backend
     * used; {@code dgamma}/{@code dbeta} may be null when not computed.
     */
    static void assertBackward(
            Backend backend,
            float[] dy,
            float[] x,
            int rows,
            int c,
            float[] mean,
            float[] variance,
            float[] gamma,
            double eps,
            boolean global,
            float[] dx,
            float[] dgamma,
            float[] dbeta) {
        assertBackward(
                backend,
                dy,
                x,
                rows,
                c,
                mean,
                variance,
                gamma,
                eps,
                global,
                false,
                DataType.F32,
                DataType.F32,
                dx,
                dgamma,
                dbeta);
    }

    /**
     * The general case: {@code mean} null for RMS normalization; {@code dxType} and {@code gradientType}
     * add their unit roundoff times the exact value to the bounds, as for the forward output.
     */
    static void assertBackward(
            Backend backend,
            float[] dy,
            float[] x,
            int rows,
            int c,
            float[] mean,
            float[] variance,
            float[] gamma,
            double eps,
            boolean global,
            boolean rms,
            DataType dxType,
            DataType gradientType,
            float[] dx,
            float[] dgamma,
            float[] dbeta) {
        assertBackward(
                backend,
                dy,
                x,
                rows,
                c,
                mean,
                variance,
                gamma,
                eps,
                global,
                rms,
                dxType,
                gradientType,
                null,
                dx,
                dgamma,
                dbeta);
    }

    /**
     * As above, with {@code diffSum} (null: none) added to dx, as {@link LayerNorm#backwardResidual} adds it: dx is the
     * reference's plus diffSum, within the bound above plus two float32 roundings (the norm's gradient and the sum);
     * dx's own type rounds the result, and on {@link Backend#ONEDNN} and {@link Backend#AUTO}, which may run oneDNN's
     * composition, that gradient too: the composition rounds it to dx's type before adding diffSum, as PyTorch's
     * autograd does, whichever backend ran the norm's part (docs/accuracy.md, "Fused operations").
     */
    static void assertBackward(
            Backend backend,
            float[] dy,
            float[] x,
            int rows,
            int c,
            float[] mean,
            float[] variance,
            float[] gamma,
            double eps,
            boolean global,
            boolean rms,
            DataType dxType,
            DataType gradientType,
            float[] diffSum,
            float[] dx,
            float[] dgamma,
            float[] dbeta) {
        Reference.Statistics used = new Reference.Statistics(
                mean == null ? new double[rows] : Reference.toDouble(mean), Reference.toDouble(variance));
        Reference.Gradients want = Reference.backward(
                Reference.toDouble(dy),
                Reference.toDouble(x),
                rows,
                c,
                used,
                Reference.toDouble(gamma),
                eps,
                global,
                rms);
        double k = factor(backend);
        double[] gammaBound = new double[c];
        double[] betaBound = new double[c];
        for (int r = 0; r < rows; r++) {
            double rstd = 1 / Math.sqrt((double) variance[r] + eps);
            double kappa = maxAbs(x, r * c, c) * rstd;
            double g = 0;
            for (int i = 0; i < c; i++) {
                g = Math.max(g, Math.abs(dy[r * c + i] * (gamma == null ? 1 : gamma[i])));
            }
            for (int i = 0; i < c; i++) {
                int at = r * c + i;
                double expected = want.dx()[at] + (diffSum == null ? 0 : diffSum[at]);
                double added = diffSum == null
                        ? 0
                        : 2 * UNIT_ROUNDOFF * (Math.abs(want.dx()[at]) + Math.abs(expected))
                                + (backend == Backend.ONEDNN || backend == Backend.AUTO
                                        ? rounding(dxType, want.dx()[at])
                                        : 0);
                assertWithin(
                        backend,
                        dxType,
                        "dx[" + r + ", " + i + "]",
                        dx[at],
                        expected,
                        k * UNIT_ROUNDOFF * rstd * g * (kappa + 1)
                                + rounding(dxType, expected)
                                + added
                                + underflow(dxType));
                gammaBound[i] += Math.abs(dy[at]) * (kappa + 1);
                betaBound[i] += Math.abs(dy[at]);
            }
        }
        double sumLength = Math.sqrt(Math.max(1, rows)); // float sums over rows drift like a random walk
        for (int i = 0; i < c; i++) {
            if (dgamma != null) {
                assertWithin(
                        backend,
                        gradientType,
                        "dgamma[" + i + "]",
                        dgamma[i],
                        want.dgamma()[i],
                        k * UNIT_ROUNDOFF * sumLength * gammaBound[i]
                                + rounding(gradientType, want.dgamma()[i])
                                + underflow(gradientType));
            }
            if (dbeta != null) {
                assertWithin(
                        backend,
                        gradientType,
                        "dbeta[" + i + "]",
                        dbeta[i],
                        want.dbeta()[i],
                        k * UNIT_ROUNDOFF * sumLength * betaBound[i]
                                + rounding(gradientType, want.dbeta()[i])
                                + underflow(gradientType));
            }
        }
    }

    /**
     * Below a type's smallest normal number relative bounds end: a float kernel may flush a subnormal
     * result, or an intermediate product, to zero. So results are also allowed that absolute error.
     */
    static double underflow(DataType type) {
        return switch (type) {
            case F32, BF16 -> 0x1p-126;
            case F16 -> 0x1p-14;
            case S8 -> throw new IllegalArgumentException("int8 has no underflow; see FusedContract");
        };
    }

    /** The extra error of storing {@code value} in {@code type} rather than float32. */
    private static double rounding(DataType type, double value) {
        return type == DataType.F32 ? 0 : unitRoundoff(type) * Math.abs(value);
    }

    /** As below, where a value beyond {@code type}'s range may also round to the infinity of its sign. */
    private static void assertWithin(
            Backend backend, DataType type, String what, double actual, double expected, double tolerance) {
        if (Double.isInfinite(actual)
                && Math.signum(actual) == Math.signum(expected)
                && Math.abs(expected) + tolerance >= largest(type)) {
            return;
        }
        assertWithin(backend, what, actual, expected, tolerance);
    }

    /** The largest finite value of a type. */
    static double largest(DataType type) {
        return switch (type) {
            case F32 -> Float.MAX_VALUE;
            case BF16 -> 0x1.fep127;
            case F16 -> 65504;
            case S8 -> 127;
        };
    }

    private static void assertWithin(Backend backend, String what, double actual, double expected, double tolerance) {
        double error = Math.abs(actual - expected);
        if (!(error <= tolerance)) {
            fail(String.format(
                    "%s: %s is %s, expected %s (error %.3g > tolerance %.3g)",
                    backend, what, actual, expected, error, tolerance));
        }
    }

    private static double maxAbs(float[] x, int base, int c) {
        double max = 0;
        for (int i = 0; i < c; i++) {
            max = Math.max(max, Math.abs(x[base + i]));
        }
        return max;
    }
}
