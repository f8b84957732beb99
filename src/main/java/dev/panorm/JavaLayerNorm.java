package dev.panorm;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;

/**
 * The pure-Java backend: scalar loops over the segments, no native code. Mean and variance are
 * accumulated in double over two passes, so rows with a large mean relative to their spread keep
 * their accuracy; four independent accumulators let the CPU overlap the additions. The backward
 * pass accumulates the scale and shift gradients in double as well.
 */
final class JavaLayerNorm implements LayerNormKernel {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final LayerNormConfig config;
    /** Double accumulators for the parameter gradients, one pair per concurrent backward call. */
    private final ArrayDeque<double[]> gradientScratch = new ArrayDeque<>();

    JavaLayerNorm(LayerNormConfig config) {
        this.config = config;
    }

    @Override
    public void forward(Pass pass, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance,
                        long rows) {
        MemorySegment x = src.segment();
        MemorySegment y = dst.segment();
        MemorySegment gamma = scale == null ? null : scale.segment();
        MemorySegment beta = shift == null ? null : shift.segment();
        long c = config.normalizedSize();
        double eps = config.eps();
        for (long row = 0, base = 0; row < rows; row++, base += c) {
            double mu;
            double var;
            if (pass.globalStatistics) {
                mu = mean.segment().getAtIndex(FLOAT, row);
                var = variance.segment().getAtIndex(FLOAT, row);
            } else {
                mu = sum(x, base, c) / c;
                var = sumOfSquaredDeviations(x, base, c, mu) / c;
                if (pass.writesStatistics) {
                    mean.segment().setAtIndex(FLOAT, row, (float) mu);
                    variance.segment().setAtIndex(FLOAT, row, (float) var);
                }
            }
            double rstd = 1.0 / Math.sqrt(var + eps);
            for (long i = 0; i < c; i++) {
                double v = (x.getAtIndex(FLOAT, base + i) - mu) * rstd;
                if (gamma != null) {
                    v *= gamma.getAtIndex(FLOAT, i);
                }
                if (beta != null) {
                    v += beta.getAtIndex(FLOAT, i);
                }
                y.setAtIndex(FLOAT, base + i, (float) v);
            }
        }
    }

    /**
     * With {@code xhat = (x - mean) * rstd} and {@code g = dy * gamma}:
     * {@code dx = rstd * (g - mean(g) - xhat * mean(g * xhat))} when the statistics depend on x, and
     * {@code dx = rstd * g} when they are constants; {@code dgamma = sum over rows of dy * xhat},
     * {@code dbeta = sum over rows of dy}.
     */
    @Override
    public void backward(Pass pass, Tensor diffDst, Tensor src, Tensor mean, Tensor variance, Tensor scale,
                         Tensor diffSrc, Tensor diffScale, Tensor diffShift, long rows) {
        MemorySegment x = src.segment();
        MemorySegment dy = diffDst.segment();
        MemorySegment dx = diffSrc.segment();
        MemorySegment gamma = scale == null ? null : scale.segment();
        int c = Math.toIntExact(config.normalizedSize());
        double eps = config.eps();
        boolean gradients = diffScale != null || diffShift != null;
        double[] scratch = gradients ? takeScratch(2 * c) : null;
        try {
            for (long row = 0, base = 0; row < rows; row++, base += c) {
                double mu = mean.segment().getAtIndex(FLOAT, row);
                double rstd = 1.0 / Math.sqrt(variance.segment().getAtIndex(FLOAT, row) + eps);
                double sumG = 0;
                double sumGXhat = 0;
                for (int i = 0; i < c; i++) {
                    double d = dy.getAtIndex(FLOAT, base + i);
                    double xhat = (x.getAtIndex(FLOAT, base + i) - mu) * rstd;
                    double g = gamma == null ? d : d * gamma.getAtIndex(FLOAT, i);
                    sumG += g;
                    sumGXhat += g * xhat;
                    if (gradients) {
                        scratch[i] += d * xhat;
                        scratch[c + i] += d;
                    }
                }
                double meanG = pass.globalStatistics ? 0 : sumG / c;
                double meanGXhat = pass.globalStatistics ? 0 : sumGXhat / c;
                for (int i = 0; i < c; i++) {
                    double d = dy.getAtIndex(FLOAT, base + i);
                    double xhat = (x.getAtIndex(FLOAT, base + i) - mu) * rstd;
                    double g = gamma == null ? d : d * gamma.getAtIndex(FLOAT, i);
                    dx.setAtIndex(FLOAT, base + i, (float) (rstd * (g - meanG - xhat * meanGXhat)));
                }
            }
            if (gradients) {
                for (int i = 0; i < c; i++) {
                    if (diffScale != null) {
                        diffScale.segment().setAtIndex(FLOAT, i, (float) scratch[i]);
                    }
                    if (diffShift != null) {
                        diffShift.segment().setAtIndex(FLOAT, i, (float) scratch[c + i]);
                    }
                }
            }
        } finally {
            if (scratch != null) {
                returnScratch(scratch);
            }
        }
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
        java.util.Arrays.fill(scratch, 0);
        return scratch;
    }

    private void returnScratch(double[] scratch) {
        synchronized (gradientScratch) {
            gradientScratch.push(scratch);
        }
    }

    private static double sum(MemorySegment x, long base, long c) {
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

    private static double sumOfSquaredDeviations(MemorySegment x, long base, long c, double mean) {
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

    @Override
    public String implementation(Pass pass, long rows) {
        return "java:scalar";
    }

    @Override
    public void close() {
        // Nothing native to release.
    }
}
