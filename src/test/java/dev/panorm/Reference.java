package dev.panorm;

/**
 * The oracle: layer normalization exactly as defined, in double, two passes, one row at a time.
 * Short enough to check by eye; every backend is tested against it.
 */
final class Reference {
    private Reference() {}

    /**
     * Normalizes {@code rows} rows of {@code c} values each.
     *
     * @param scale per-channel gain, or {@code null} for none
     * @param shift per-channel bias, or {@code null} for none
     * @return the outputs in double, before rounding to float
     */
    static double[] forward(float[] x, int rows, int c, float[] scale, float[] shift, double eps) {
        double[] y = new double[x.length];
        for (int r = 0; r < rows; r++) {
            int base = r * c;
            double mean = 0;
            for (int i = 0; i < c; i++) {
                mean += x[base + i];
            }
            mean /= c;
            double variance = 0;
            for (int i = 0; i < c; i++) {
                double d = x[base + i] - mean;
                variance += d * d;
            }
            variance /= c;
            double rstd = 1 / Math.sqrt(variance + eps);
            for (int i = 0; i < c; i++) {
                double v = (x[base + i] - mean) * rstd;
                if (scale != null) {
                    v *= scale[i];
                }
                if (shift != null) {
                    v += shift[i];
                }
                y[base + i] = v;
            }
        }
        return y;
    }
}
