package dev.panorm;

import java.util.ArrayDeque;
import java.util.Arrays;

/**
 * The fused operations in scalar Java: any data types, any strides, statistics and gradients accumulated
 * in double, as {@link ScalarKernel} does. A row's sum {@code s} is built in a float array first (so any of
 * src, residual and sum may be one tensor), then normalized from there.
 */
final class FusedScalarKernel implements FusedKernel {
    private final LayerNormConfig config;
    private final int axes;
    private final int c;
    /** Row buffers (C floats for s, 2C doubles for the gradient sums), reused so steady-state calls allocate nothing. */
    private final ArrayDeque<float[]> rowScratch = new ArrayDeque<>();

    private final ArrayDeque<double[]> gradientScratch = new ArrayDeque<>();

    FusedScalarKernel(LayerNormConfig config) {
        this.config = config;
        this.axes = config.normalizedAxes();
        this.c = (int) Math.min(config.normalizedSize(), ScalarKernel.MAX_BACKWARD_C);
    }

    private float load(Tensor tensor, long columnStride, long base, long column) {
        return Elements.get(
                tensor.segment(), tensor.dataType(), base + Rows.column(tensor, axes, columnStride, column));
    }

    private void store(Tensor tensor, long columnStride, long base, long column, float value) {
        Elements.set(
                tensor.segment(), tensor.dataType(), base + Rows.column(tensor, axes, columnStride, column), value);
    }

    private static float parameter(Tensor tensor, int i, float absent) {
        return tensor == null ? absent : Elements.get(tensor.segment(), tensor.dataType(), i);
    }

    @Override
    public Backend forward(
            Pass pass,
            Tensor src,
            Tensor residual,
            Tensor bias,
            Tensor sum,
            Tensor dst,
            Tensor scale,
            Tensor shift,
            Tensor mean,
            Tensor variance,
            Tensor dstScales,
            float dstScale,
            long rows) {
        ScalarKernel.checkFusedForwardRowLength(config.normalizedSize()); // a row's s is a Java array
        long xStride = Rows.columnStride(src, axes);
        long rStride = residual == null ? 0 : Rows.columnStride(residual, axes);
        long sStride = sum == null ? 0 : Rows.columnStride(sum, axes);
        long yStride = Rows.columnStride(dst, axes);
        boolean quantized = dst.dataType() == DataType.S8;
        double eps = config.eps();
        float[] s = takeRow();
        try {
            for (long row = 0; row < rows; row++) {
                long xBase = Rows.rowOffset(src, axes, row);
                long rBase = residual == null ? 0 : Rows.rowOffset(residual, axes, row);
                long sBase = sum == null ? 0 : Rows.rowOffset(sum, axes, row);
                long yBase = Rows.rowOffset(dst, axes, row);
                for (int i = 0; i < c; i++) {
                    float v = load(src, xStride, xBase, i);
                    if (residual != null) {
                        v += load(residual, rStride, rBase, i);
                        if (bias != null) {
                            v += Elements.get(bias.segment(), bias.dataType(), i);
                        }
                    }
                    if (sum != null) { // normalize s as stored, rounded to sum's type
                        store(sum, sStride, sBase, i, v);
                        v = load(sum, sStride, sBase, i);
                    }
                    s[i] = v;
                }
                double mu = 0;
                if (!config.rms()) {
                    for (int i = 0; i < c; i++) {
                        mu += s[i];
                    }
                    mu /= c;
                }
                double var = 0;
                for (int i = 0; i < c; i++) {
                    double d = s[i] - mu;
                    var += d * d;
                }
                var /= c;
                if (pass.writesStatistics) {
                    if (mean != null) {
                        Elements.set(mean.segment(), DataType.F32, row, (float) mu);
                    }
                    Elements.set(variance.segment(), DataType.F32, row, (float) var);
                }
                double rstd = 1 / Math.sqrt(var + eps);
                float maxAbs = 0;
                for (int i = 0; i < c; i++) {
                    float y = (float) ((s[i] - mu) * rstd * parameter(scale, i, 1f) + parameter(shift, i, 0f));
                    if (quantized) {
                        s[i] = y;
                        maxAbs = Quantize.maxAbs(maxAbs, y);
                    } else {
                        store(dst, yStride, yBase, i, y);
                    }
                }
                if (quantized) {
                    float rowScale = dstScale;
                    if (dstScales != null) {
                        rowScale = Quantize.scale(maxAbs);
                        Elements.set(dstScales.segment(), DataType.F32, row, rowScale);
                    }
                    float inverse = Quantize.inverse(rowScale);
                    for (int i = 0; i < c; i++) {
                        // Elements rounds and saturates
                        store(dst, yStride, yBase, i, Quantize.steps(s[i], rowScale, inverse));
                    }
                }
            }
        } finally {
            give(rowScratch, s);
        }
        return Backend.JAVA_SCALAR;
    }

    /** As {@link ScalarKernel#backward}, with {@code diffSum} added to each row's {@code dx}. */
    @Override
    public Backend backward(
            Tensor diffDst,
            Tensor diffSum,
            Tensor sum,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift,
            long rows) {
        ScalarKernel.checkBackwardRowLength(config.normalizedSize());
        long sStride = Rows.columnStride(sum, axes);
        long dyStride = Rows.columnStride(diffDst, axes);
        long dsStride = diffSum == null ? 0 : Rows.columnStride(diffSum, axes);
        long dxStride = Rows.columnStride(diffSrc, axes);
        double eps = config.eps();
        boolean gradients = diffScale != null || diffShift != null;
        double[] sums = gradients ? takeSums() : null;
        try {
            for (long row = 0; row < rows; row++) {
                long sBase = Rows.rowOffset(sum, axes, row);
                long dyBase = Rows.rowOffset(diffDst, axes, row);
                long dsBase = diffSum == null ? 0 : Rows.rowOffset(diffSum, axes, row);
                long dxBase = Rows.rowOffset(diffSrc, axes, row);
                double mu = mean == null ? 0 : Elements.get(mean.segment(), DataType.F32, row);
                double rstd = 1 / Math.sqrt(Elements.get(variance.segment(), DataType.F32, row) + eps);
                double sumG = 0;
                double sumGXhat = 0;
                for (int i = 0; i < c; i++) {
                    double d = load(diffDst, dyStride, dyBase, i);
                    double xhat = (load(sum, sStride, sBase, i) - mu) * rstd;
                    double g = d * parameter(scale, i, 1f);
                    sumG += g;
                    sumGXhat += g * xhat;
                    if (gradients) {
                        sums[i] += d * xhat;
                        sums[c + i] += d;
                    }
                }
                double meanG = config.rms() ? 0 : sumG / c;
                double meanGXhat = sumGXhat / c;
                for (int i = 0; i < c; i++) {
                    double d = load(diffDst, dyStride, dyBase, i);
                    double xhat = (load(sum, sStride, sBase, i) - mu) * rstd;
                    double g = d * parameter(scale, i, 1f);
                    double dx = rstd * (g - meanG - xhat * meanGXhat);
                    if (diffSum != null) { // read before diffSrc, which may be diffSum, is written
                        dx += load(diffSum, dsStride, dsBase, i);
                    }
                    store(diffSrc, dxStride, dxBase, i, (float) dx);
                }
            }
            for (int i = 0; gradients && i < c; i++) {
                if (diffScale != null) {
                    Elements.set(diffScale.segment(), diffScale.dataType(), i, (float) sums[i]);
                }
                if (diffShift != null) {
                    Elements.set(diffShift.segment(), diffShift.dataType(), i, (float) sums[c + i]);
                }
            }
        } finally {
            if (sums != null) {
                give(gradientScratch, sums);
            }
        }
        return Backend.JAVA_SCALAR;
    }

    /** C floats for a row's s; reused across calls. */
    private float[] takeRow() {
        float[] buffer;
        synchronized (rowScratch) {
            buffer = rowScratch.poll();
        }
        return buffer != null ? buffer : new float[c];
    }

    /** 2C zeroed doubles for the dgamma and dbeta sums; reused across calls. */
    private double[] takeSums() {
        double[] buffer;
        synchronized (gradientScratch) {
            buffer = gradientScratch.poll();
        }
        if (buffer == null) {
            return new double[2 * c];
        }
        Arrays.fill(buffer, 0);
        return buffer;
    }

    private static <T> void give(ArrayDeque<T> pool, T buffer) {
        synchronized (pool) {
            pool.push(buffer);
        }
    }
}
