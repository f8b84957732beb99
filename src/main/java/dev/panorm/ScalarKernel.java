package dev.panorm;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.Arrays;

/**
 * The pure-Java backend: scalar loops over the segments, no native code. Statistics are
 * accumulated in double (two passes for layer normalization), so rows with a large mean relative
 * to their spread keep their accuracy; the backward pass accumulates the parameter gradients in
 * double too. Any data type, any strides: rows are addressed through {@link Rows}, elements
 * through {@link Elements}; the common case (float32, rows with unit stride) takes a direct path.
 */
final class ScalarKernel implements Kernel {
    /**
     * The longest row the Java kernels' backward pass takes: its per-channel sums are Java arrays of 2C
     * values (and, in the vector kernels, 2 + one vector more), and a Java array holds fewer than 2^31.
     * 64 below 2^30 leaves room for any vector width.
     */
    static final long MAX_BACKWARD_C = (1L << 30) - 64;

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final LayerNormConfig config;
    private final int axes;
    private final long c;
    /** Double accumulators for the parameter gradients, one array per concurrent backward call. */
    private final ArrayDeque<double[]> gradientScratch = new ArrayDeque<>();

    ScalarKernel(LayerNormConfig config) {
        this.config = config;
        this.axes = config.normalizedAxes();
        this.c = config.normalizedSize();
    }

    /** Element {@code column} of the row starting at {@code base}, given the tensor's {@link Rows#columnStride}. */
    private float load(Tensor tensor, long stride, long base, long column) {
        return Elements.get(tensor.segment(), tensor.dataType(), base + Rows.column(tensor, axes, stride, column));
    }

    private void store(Tensor tensor, long stride, long base, long column, float value) {
        Elements.set(tensor.segment(), tensor.dataType(), base + Rows.column(tensor, axes, stride, column), value);
    }

    @Override
    public Backend forward(
            Pass pass, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance, long rows) {
        long xStride = Rows.columnStride(src, axes);
        long yStride = Rows.columnStride(dst, axes);
        MemorySegment gamma = scale == null ? null : scale.segment();
        MemorySegment beta = shift == null ? null : shift.segment();
        DataType gammaType = scale == null ? null : scale.dataType();
        DataType betaType = shift == null ? null : shift.dataType();
        double eps = config.eps();
        boolean fast =
                isDenseF32(src, xStride) && isDenseF32(dst, yStride) && isDenseF32(scale, 1) && isDenseF32(shift, 1);
        for (long row = 0; row < rows; row++) {
            long xBase = Rows.rowOffset(src, axes, row);
            long yBase = Rows.rowOffset(dst, axes, row);
            double mu;
            double var;
            if (pass.globalStatistics) {
                mu = mean == null ? 0 : Elements.get(mean.segment(), DataType.F32, row);
                var = Elements.get(variance.segment(), DataType.F32, row);
            } else {
                mu = config.rms() ? 0 : sum(src, xStride, xBase) / c;
                var = sumOfSquaredDeviations(src, xStride, xBase, mu) / c;
                if (pass.writesStatistics) {
                    if (mean != null) {
                        Elements.set(mean.segment(), DataType.F32, row, (float) mu);
                    }
                    Elements.set(variance.segment(), DataType.F32, row, (float) var);
                }
            }
            double rstd = 1.0 / Math.sqrt(var + eps);
            if (fast) {
                normalizeF32(src.segment(), xBase, dst.segment(), yBase, gamma, beta, mu, rstd);
                continue;
            }
            for (long i = 0; i < c; i++) {
                double v = (load(src, xStride, xBase, i) - mu) * rstd;
                if (gamma != null) {
                    v *= Elements.get(gamma, gammaType, i);
                }
                if (beta != null) {
                    v += Elements.get(beta, betaType, i);
                }
                store(dst, yStride, yBase, i, (float) v);
            }
        }
        return Backend.JAVA_SCALAR;
    }

    /** One row of the backward pass in the common case (float32, unit stride); see {@link #backward}. */
    private void backwardRowF32(
            Pass pass,
            MemorySegment x,
            long xBase,
            MemorySegment dy,
            long dyBase,
            MemorySegment dx,
            long dxBase,
            MemorySegment gamma,
            double mu,
            double rstd,
            double[] scratch) {
        int n = (int) c;
        double sumG = 0;
        double sumGXhat = 0;
        for (int i = 0; i < n; i++) {
            double d = dy.getAtIndex(FLOAT, dyBase + i);
            double xhat = (x.getAtIndex(FLOAT, xBase + i) - mu) * rstd;
            double g = gamma == null ? d : d * gamma.getAtIndex(FLOAT, i);
            sumG += g;
            sumGXhat += g * xhat;
            if (scratch != null) {
                scratch[i] += d * xhat;
                scratch[n + i] += d;
            }
        }
        double meanG = pass.globalStatistics || config.rms() ? 0 : sumG / n;
        double meanGXhat = pass.globalStatistics ? 0 : sumGXhat / n;
        for (int i = 0; i < n; i++) {
            double d = dy.getAtIndex(FLOAT, dyBase + i);
            double xhat = (x.getAtIndex(FLOAT, xBase + i) - mu) * rstd;
            double g = gamma == null ? d : d * gamma.getAtIndex(FLOAT, i);
            dx.setAtIndex(FLOAT, dxBase + i, (float) (rstd * (g - meanG - xhat * meanGXhat)));
        }
    }

    /** The common case: float32 everywhere, unit stride along the row. */
    private static boolean isDenseF32(Tensor tensor, long stride) {
        return tensor == null || tensor.dataType() == DataType.F32 && stride == 1;
    }

    private void normalizeF32(
            MemorySegment x,
            long xBase,
            MemorySegment y,
            long yBase,
            MemorySegment gamma,
            MemorySegment beta,
            double mu,
            double rstd) {
        for (long i = 0; i < c; i++) {
            double v = (x.getAtIndex(FLOAT, xBase + i) - mu) * rstd;
            if (gamma != null) {
                v *= gamma.getAtIndex(FLOAT, i);
            }
            if (beta != null) {
                v += beta.getAtIndex(FLOAT, i);
            }
            y.setAtIndex(FLOAT, yBase + i, (float) v);
        }
    }

    /**
     * With {@code xhat = (x - mean) * rstd} and {@code g = dy * gamma}:
     * {@code dx = rstd * (g - mean(g) - xhat * mean(g * xhat))} for layer normalization,
     * {@code dx = rstd * (g - xhat * mean(g * xhat))} for RMS normalization (mean 0, not a function of x),
     * and {@code dx = rstd * g} when the statistics are constants;
     * {@code dgamma = sum over rows of dy * xhat}, {@code dbeta = sum over rows of dy}.
     */
    @Override
    public Backend backward(
            Pass pass,
            Tensor diffDst,
            Tensor src,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift,
            long rows) {
        checkBackwardRowLength(c);
        long xStride = Rows.columnStride(src, axes);
        long dyStride = Rows.columnStride(diffDst, axes);
        long dxStride = Rows.columnStride(diffSrc, axes);
        MemorySegment gamma = scale == null ? null : scale.segment();
        DataType gammaType = scale == null ? null : scale.dataType();
        double eps = config.eps();
        boolean gradients = diffScale != null || diffShift != null;
        int n = (int) c;
        double[] scratch = gradients ? takeScratch(2 * n) : null;
        boolean fast = isDenseF32(src, xStride)
                && isDenseF32(diffDst, dyStride)
                && isDenseF32(diffSrc, dxStride)
                && isDenseF32(scale, 1);
        try {
            for (long row = 0; row < rows; row++) {
                long xBase = Rows.rowOffset(src, axes, row);
                long dyBase = Rows.rowOffset(diffDst, axes, row);
                long dxBase = Rows.rowOffset(diffSrc, axes, row);
                double mu = mean == null ? 0 : Elements.get(mean.segment(), DataType.F32, row);
                double rstd = 1.0 / Math.sqrt(Elements.get(variance.segment(), DataType.F32, row) + eps);
                if (fast) {
                    backwardRowF32(
                            pass,
                            src.segment(),
                            xBase,
                            diffDst.segment(),
                            dyBase,
                            diffSrc.segment(),
                            dxBase,
                            gamma,
                            mu,
                            rstd,
                            scratch);
                    continue;
                }
                double sumG = 0;
                double sumGXhat = 0;
                for (int i = 0; i < n; i++) {
                    double d = load(diffDst, dyStride, dyBase, i);
                    double xhat = (load(src, xStride, xBase, i) - mu) * rstd;
                    double g = gamma == null ? d : d * Elements.get(gamma, gammaType, i);
                    sumG += g;
                    sumGXhat += g * xhat;
                    if (gradients) {
                        scratch[i] += d * xhat;
                        scratch[n + i] += d;
                    }
                }
                double meanG = pass.globalStatistics || config.rms() ? 0 : sumG / n;
                double meanGXhat = pass.globalStatistics ? 0 : sumGXhat / n;
                for (int i = 0; i < n; i++) {
                    double d = load(diffDst, dyStride, dyBase, i);
                    double xhat = (load(src, xStride, xBase, i) - mu) * rstd;
                    double g = gamma == null ? d : d * Elements.get(gamma, gammaType, i);
                    store(diffSrc, dxStride, dxBase, i, (float) (rstd * (g - meanG - xhat * meanGXhat)));
                }
            }
            if (gradients) {
                for (int i = 0; i < n; i++) {
                    if (diffScale != null) {
                        Elements.set(diffScale.segment(), diffScale.dataType(), i, (float) scratch[i]);
                    }
                    if (diffShift != null) {
                        Elements.set(diffShift.segment(), diffShift.dataType(), i, (float) scratch[n + i]);
                    }
                }
            }
        } finally {
            if (scratch != null) {
                returnScratch(scratch);
            }
        }
        return Backend.JAVA_SCALAR;
    }

    /** Throws unless the Java kernels' backward pass takes rows of {@code c} elements ({@link #MAX_BACKWARD_C}). */
    static void checkBackwardRowLength(long c) {
        if (c > MAX_BACKWARD_C) {
            throw new IllegalArgumentException("the Java kernels' backward pass takes rows of at most " + MAX_BACKWARD_C
                    + " elements (its per-channel sums are Java arrays), and these have " + c
                    + "; oneDNN's backward refuses rows this long as well (from 2^29 elements)");
        }
    }

    /**
     * Throws unless the Java kernels' fused forward (residual add, int8 output) takes rows of {@code c} elements: a
     * row's sum or its y before quantization is kept in a Java array, as the backward pass's sums are.
     */
    static void checkFusedForwardRowLength(long c) {
        if (c > MAX_BACKWARD_C) {
            throw new IllegalArgumentException("the Java kernels' residual add and int8 output take rows of at most "
                    + MAX_BACKWARD_C + " elements (a row is kept in a Java array), and these have " + c
                    + "; int8 output runs only there, and oneDNN refuses rows this long as well");
        }
    }

    /**
     * Computes every row's statistics in double and stores them as float: the mean (absent for RMS) and
     * the variance (the mean square for RMS). Used by the oneDNN backend's precise mode.
     */
    void statistics(Tensor src, long rows, MemorySegment means, MemorySegment variances) {
        long stride = Rows.columnStride(src, axes);
        for (long row = 0; row < rows; row++) {
            long base = Rows.rowOffset(src, axes, row);
            double mu = config.rms() ? 0 : sum(src, stride, base) / c;
            if (means != null) {
                Elements.set(means, DataType.F32, row, (float) mu);
            }
            Elements.set(variances, DataType.F32, row, (float) (sumOfSquaredDeviations(src, stride, base, mu) / c));
        }
    }

    /**
     * Precise statistics for oneDNN: the mean and variance rounded to float, and per row the correction
     * {@code -(mean - (float) mean) * rstd} that restores what rounding the mean to float took away
     * ({@code rstd} as oneDNN computes it from the float variance). Normalizing with the float mean and
     * adding the correction equals normalizing with the exact mean, to float precision.
     */
    void preciseStatistics(
            Tensor src, long rows, MemorySegment means, MemorySegment variances, MemorySegment corrections) {
        long stride = Rows.columnStride(src, axes);
        float eps = (float) config.eps();
        for (long row = 0; row < rows; row++) {
            long base = Rows.rowOffset(src, axes, row);
            double mu = sum(src, stride, base) / c;
            float var = (float) (sumOfSquaredDeviations(src, stride, base, mu) / c);
            float roundedMean = (float) mu;
            Elements.set(means, DataType.F32, row, roundedMean);
            Elements.set(variances, DataType.F32, row, var);
            double rstd = 1 / Math.sqrt((double) (var + eps));
            Elements.set(corrections, DataType.F32, row, (float) (-(mu - roundedMean) * rstd));
        }
    }

    /** The row's sum in double, with four independent accumulators. */
    private double sum(Tensor x, long stride, long base) {
        if (isDenseF32(x, stride)) {
            return sumF32(x.segment(), base);
        }
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        long i = 0;
        for (; i + 4 <= c; i += 4) {
            s0 += load(x, stride, base, i);
            s1 += load(x, stride, base, i + 1);
            s2 += load(x, stride, base, i + 2);
            s3 += load(x, stride, base, i + 3);
        }
        for (; i < c; i++) {
            s0 += load(x, stride, base, i);
        }
        return (s0 + s1) + (s2 + s3);
    }

    private double sumOfSquaredDeviations(Tensor x, long stride, long base, double mean) {
        if (isDenseF32(x, stride)) {
            return sumOfSquaredDeviationsF32(x.segment(), base, mean);
        }
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        long i = 0;
        for (; i + 4 <= c; i += 4) {
            double d0 = load(x, stride, base, i) - mean;
            double d1 = load(x, stride, base, i + 1) - mean;
            double d2 = load(x, stride, base, i + 2) - mean;
            double d3 = load(x, stride, base, i + 3) - mean;
            s0 += d0 * d0;
            s1 += d1 * d1;
            s2 += d2 * d2;
            s3 += d3 * d3;
        }
        for (; i < c; i++) {
            double d = load(x, stride, base, i) - mean;
            s0 += d * d;
        }
        return (s0 + s1) + (s2 + s3);
    }

    private double sumF32(MemorySegment x, long base) {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        long i = 0;
        for (; i + 4 <= c; i += 4) {
            s0 += x.getAtIndex(FLOAT, base + i);
            s1 += x.getAtIndex(FLOAT, base + i + 1);
            s2 += x.getAtIndex(FLOAT, base + i + 2);
            s3 += x.getAtIndex(FLOAT, base + i + 3);
        }
        for (; i < c; i++) {
            s0 += x.getAtIndex(FLOAT, base + i);
        }
        return (s0 + s1) + (s2 + s3);
    }

    private double sumOfSquaredDeviationsF32(MemorySegment x, long base, double mean) {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        long i = 0;
        for (; i + 4 <= c; i += 4) {
            double d0 = x.getAtIndex(FLOAT, base + i) - mean;
            double d1 = x.getAtIndex(FLOAT, base + i + 1) - mean;
            double d2 = x.getAtIndex(FLOAT, base + i + 2) - mean;
            double d3 = x.getAtIndex(FLOAT, base + i + 3) - mean;
            s0 += d0 * d0;
            s1 += d1 * d1;
            s2 += d2 * d2;
            s3 += d3 * d3;
        }
        for (; i < c; i++) {
            double d = x.getAtIndex(FLOAT, base + i) - mean;
            s0 += d * d;
        }
        return (s0 + s1) + (s2 + s3);
    }

    /** A zeroed array of {@code length} doubles; reused, so that steady-state calls allocate nothing. */
    private double[] takeScratch(int length) {
        double[] scratch;
        synchronized (gradientScratch) {
            scratch = gradientScratch.poll();
        }
        if (scratch == null) {
            return new double[length];
        }
        Arrays.fill(scratch, 0);
        return scratch;
    }

    private void returnScratch(double[] scratch) {
        synchronized (gradientScratch) {
            gradientScratch.push(scratch);
        }
    }

    @Override
    public String implementation(Tensor src, Tensor dst, Tensor scale, Tensor shift, long rows) {
        return "java:scalar";
    }

    @Override
    public void close() {
        // Nothing native to release.
    }
}
