package dev.panorm;

/**
 * The oracle: layer normalization and its gradients exactly as defined, in double, one row at a
 * time. Short enough to check by eye; every backend is tested against it, and it is itself checked
 * against finite differences ({@link GradientCheckTest}).
 */
final class Reference {
    private Reference() {}

    /** Per-row mean and biased variance (two passes, in double). */
    record Statistics(double[] mean, double[] variance) {}

    /** dLoss/dx, dLoss/dgamma (summed over rows) and dLoss/dbeta (summed over rows). */
    record Gradients(double[] dx, double[] dgamma, double[] dbeta) {}

    static Statistics statistics(double[] x, int rows, int c) {
        double[] mean = new double[rows];
        double[] variance = new double[rows];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < c; i++) {
                mean[r] += x[r * c + i];
            }
            mean[r] /= c;
            for (int i = 0; i < c; i++) {
                double d = x[r * c + i] - mean[r];
                variance[r] += d * d;
            }
            variance[r] /= c;
        }
        return new Statistics(mean, variance);
    }

    /** RMS normalization's statistics: mean 0 and the mean square in place of the variance. */
    static Statistics rmsStatistics(double[] x, int rows, int c) {
        double[] meanSquare = new double[rows];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < c; i++) {
                meanSquare[r] += x[r * c + i] * x[r * c + i];
            }
            meanSquare[r] /= c;
        }
        return new Statistics(new double[rows], meanSquare);
    }

    /** y = x / sqrt(mean(x^2) + eps) * gamma + beta. */
    static double[] rmsForward(double[] x, int rows, int c, double[] gamma, double[] beta, double eps) {
        return forward(x, rows, c, gamma, beta, eps, rmsStatistics(x, rows, c));
    }

    /** y = (x - mean) / sqrt(var + eps) * gamma + beta with the given statistics; gamma/beta may be null. */
    static double[] forward(double[] x, int rows, int c, double[] gamma, double[] beta, double eps, Statistics s) {
        double[] y = new double[x.length];
        for (int r = 0; r < rows; r++) {
            double rstd = 1 / Math.sqrt(s.variance()[r] + eps);
            for (int i = 0; i < c; i++) {
                double v = (x[r * c + i] - s.mean()[r]) * rstd;
                y[r * c + i] = v * (gamma == null ? 1 : gamma[i]) + (beta == null ? 0 : beta[i]);
            }
        }
        return y;
    }

    /** The forward pass with each row's own statistics. */
    static double[] forward(double[] x, int rows, int c, double[] gamma, double[] beta, double eps) {
        return forward(x, rows, c, gamma, beta, eps, statistics(x, rows, c));
    }

    /** Float inputs, for comparing with the backends. */
    static double[] forward(float[] x, int rows, int c, float[] scale, float[] shift, double eps) {
        return forward(toDouble(x), rows, c, toDouble(scale), toDouble(shift), eps);
    }

    /**
     * Gradients, given dLoss/dy. With {@code xhat = (x - mean) * rstd} and {@code g = dy * gamma}:
     * when the statistics depend on x, {@code dx = rstd * (g - mean(g) - xhat * mean(g * xhat))} (the chain
     * rule through mean and variance); when they are constants ({@code global}), {@code dx = rstd * g}.
     */
    static Gradients backward(
            double[] dy, double[] x, int rows, int c, Statistics s, double[] gamma, double eps, boolean global) {
        return backward(dy, x, rows, c, s, gamma, eps, global, false);
    }

    /**
     * As above; with {@code rms} the mean is the constant 0 (statistics from {@link #rmsStatistics}), so
     * only the mean square depends on x: {@code dx = rstd * (g - xhat * mean(g * xhat))}.
     */
    static Gradients backward(
            double[] dy,
            double[] x,
            int rows,
            int c,
            Statistics s,
            double[] gamma,
            double eps,
            boolean global,
            boolean rms) {
        double[] dx = new double[x.length];
        double[] dgamma = new double[c];
        double[] dbeta = new double[c];
        for (int r = 0; r < rows; r++) {
            double rstd = 1 / Math.sqrt(s.variance()[r] + eps);
            double meanG = 0;
            double meanGXhat = 0;
            for (int i = 0; i < c; i++) {
                double xhat = (x[r * c + i] - s.mean()[r]) * rstd;
                double g = dy[r * c + i] * (gamma == null ? 1 : gamma[i]);
                meanG += g / c;
                meanGXhat += g * xhat / c;
                dgamma[i] += dy[r * c + i] * xhat;
                dbeta[i] += dy[r * c + i];
            }
            for (int i = 0; i < c; i++) {
                double xhat = (x[r * c + i] - s.mean()[r]) * rstd;
                double g = dy[r * c + i] * (gamma == null ? 1 : gamma[i]);
                dx[r * c + i] = global ? rstd * g : rstd * (g - (rms ? 0 : meanG) - xhat * meanGXhat);
            }
        }
        return new Gradients(dx, dgamma, dbeta);
    }

    static double[] toDouble(float[] values) {
        if (values == null) {
            return null;
        }
        double[] out = new double[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = values[i];
        }
        return out;
    }
}
