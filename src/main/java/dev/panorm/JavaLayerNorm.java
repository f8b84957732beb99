package dev.panorm;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The pure-Java backend: scalar loops over the segments, no native code. Mean and variance are
 * accumulated in double over two passes, so rows with a large mean relative to their spread keep
 * their accuracy; four independent accumulators let the CPU overlap the additions.
 */
final class JavaLayerNorm implements LayerNormKernel {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final LayerNormConfig config;

    JavaLayerNorm(LayerNormConfig config) {
        this.config = config;
    }

    @Override
    public void forward(Tensor src, Tensor dst, Tensor scale, Tensor shift, long rows) {
        MemorySegment x = src.segment();
        MemorySegment y = dst.segment();
        MemorySegment gamma = scale == null ? null : scale.segment();
        MemorySegment beta = shift == null ? null : shift.segment();
        long c = config.normalizedSize();
        double eps = config.eps();
        for (long row = 0, base = 0; row < rows; row++, base += c) {
            double mean = sum(x, base, c) / c;
            double variance = sumOfSquaredDeviations(x, base, c, mean) / c;
            double rstd = 1.0 / Math.sqrt(variance + eps);
            for (long i = 0; i < c; i++) {
                double v = (x.getAtIndex(FLOAT, base + i) - mean) * rstd;
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
    public String implementation(long rows) {
        return "java:scalar";
    }

    @Override
    public void close() {
        // Nothing native to release.
    }
}
