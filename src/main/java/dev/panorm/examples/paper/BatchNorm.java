package dev.panorm.examples.paper;

import java.util.List;

/**
 * Batch normalization (Ioffe and Szegedy, 2015) in plain Java, the baseline of the paper's Figure 6: in
 * training, each column is normalized with the mean and variance over the batch's rows; at test time with
 * running averages of them (PyTorch's {@code BatchNorm1d}: momentum 0.1, eps 1e-5, running variance
 * unbiased). With {@code unbiased} the batch itself is normalized with the unbiased variance too, as the
 * paper does for its batch size of 4.
 */
final class BatchNorm implements Norm {
    static final double EPS = 1e-5;
    static final double MOMENTUM = 0.1;

    private final int width;
    private final boolean unbiased;
    private final Param gamma;
    private final Param beta;
    final float[] runningMean;
    final float[] runningVariance;
    private float[] xHat = new float[0];
    private final float[] inverseStd;

    BatchNorm(int width, boolean unbiased) {
        this.width = width;
        this.unbiased = unbiased;
        this.gamma = Param.filled("bn.gamma", width, 1);
        this.beta = new Param("bn.beta", width);
        this.runningMean = new float[width];
        this.runningVariance = new float[width];
        java.util.Arrays.fill(runningVariance, 1);
        this.inverseStd = new float[width];
    }

    @Override
    public void forward(float[] x, float[] y, int rows, boolean training) {
        float[] g = gamma.value();
        float[] b = beta.value();
        if (!training) {
            for (int r = 0; r < rows; r++) {
                for (int j = 0; j < width; j++) {
                    double inv = 1 / Math.sqrt(runningVariance[j] + EPS);
                    y[r * width + j] = (float) (g[j] * (x[r * width + j] - runningMean[j]) * inv + b[j]);
                }
            }
            return;
        }
        if (rows < 2) {
            throw new IllegalArgumentException("batch normalization needs at least 2 rows in training, got " + rows);
        }
        double[] mean = new double[width];
        double[] squares = new double[width];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < width; j++) {
                mean[j] += x[r * width + j];
            }
        }
        for (int j = 0; j < width; j++) {
            mean[j] /= rows;
        }
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < width; j++) {
                double d = x[r * width + j] - mean[j];
                squares[j] += d * d;
            }
        }
        if (xHat.length < rows * width) {
            xHat = new float[rows * width];
        }
        for (int j = 0; j < width; j++) {
            double variance = squares[j] / (unbiased ? rows - 1 : rows);
            inverseStd[j] = (float) (1 / Math.sqrt(variance + EPS));
            runningMean[j] = (float) ((1 - MOMENTUM) * runningMean[j] + MOMENTUM * mean[j]);
            runningVariance[j] = (float) ((1 - MOMENTUM) * runningVariance[j] + MOMENTUM * squares[j] / (rows - 1));
        }
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < width; j++) {
                float h = (float) ((x[r * width + j] - mean[j]) * inverseStd[j]);
                xHat[r * width + j] = h;
                y[r * width + j] = g[j] * h + b[j];
            }
        }
    }

    /**
     * With {@code d} the variance's divisor (rows, or rows - 1 when unbiased) and {@code dh = gamma dy}:
     * {@code dx = inverseStd (dh - mean(dh) - xHat sum(dh xHat) / d)}; the mean's own gradient through the
     * variance vanishes because the deviations sum to zero.
     */
    @Override
    public void backward(float[] dy, float[] dx, int rows) {
        float[] g = gamma.value();
        double[] sumDy = new double[width];
        double[] sumDyXHat = new double[width];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < width; j++) {
                sumDy[j] += dy[r * width + j];
                sumDyXHat[j] += dy[r * width + j] * xHat[r * width + j];
            }
        }
        int divisor = unbiased ? rows - 1 : rows;
        for (int j = 0; j < width; j++) {
            gamma.grad()[j] += (float) sumDyXHat[j];
            beta.grad()[j] += (float) sumDy[j];
        }
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < width; j++) {
                double dh = g[j] * dy[r * width + j];
                dx[r * width + j] = (float) (inverseStd[j]
                        * (dh - g[j] * sumDy[j] / rows - xHat[r * width + j] * g[j] * sumDyXHat[j] / divisor));
            }
        }
    }

    @Override
    public List<Param> params() {
        return List.of(gamma, beta);
    }
}
