package dev.panorm;

import java.util.Arrays;
import java.util.Objects;

/**
 * What a {@link LayerNorm} computes, configured like PyTorch's {@code torch.nn.LayerNorm} (or
 * {@code torch.nn.RMSNorm}). Immutable; the {@code with...} methods return modified copies.
 *
 * <p>Layer normalization: every row is normalized over the last {@code k} axes (the
 * {@code normalizedShape}, {@code C} elements in all):
 * {@code y = (x - mean) / sqrt(var + eps) * scale + shift}, with the biased variance (divided by
 * {@code C}), exactly as PyTorch and oneDNN define it. {@code scale} and {@code shift} have the
 * normalized shape: PyTorch's {@code weight} and {@code bias}, the paper's gain and bias.
 *
 * <p>RMS normalization ({@link #rms(long...)}): {@code y = x / sqrt(mean(x^2) + eps) * scale + shift}.
 *
 * <p>Guide: {@code docs/api.md}; RMSNorm: {@code docs/rmsnorm.md}; precise statistics: {@code docs/accuracy.md}.
 */
public final class LayerNormConfig {
    /** PyTorch's default {@code eps} for {@code LayerNorm}. */
    public static final double DEFAULT_EPS = 1e-5;
    /**
     * PyTorch's default {@code eps} for {@code RMSNorm} on float32 data: {@code torch.finfo(torch.float32).eps},
     * 2^-23.
     */
    public static final double DEFAULT_RMS_EPS = 0x1p-23;

    private final long[] normalizedShape;
    private final long normalizedSize;
    private final double eps;
    private final boolean scale;
    private final boolean shift;
    private final boolean rms;
    private final boolean preciseStatistics;

    private LayerNormConfig(
            long[] normalizedShape, double eps, boolean scale, boolean shift, boolean rms, boolean preciseStatistics) {
        if (normalizedShape.length == 0) {
            throw new IllegalArgumentException("normalizedShape must have at least one axis");
        }
        long size = 1;
        for (long dim : normalizedShape) {
            if (dim < 1) {
                throw new IllegalArgumentException("normalizedShape " + Arrays.toString(normalizedShape)
                        + " must have every axis at least 1, got " + dim);
            }
            try {
                size = Math.multiplyExact(size, dim);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException(
                        "normalizedShape " + Arrays.toString(normalizedShape) + " is too large");
            }
        }
        if (!(eps > 0) || Double.isInfinite(eps)) {
            throw new IllegalArgumentException("eps must be a positive finite number, got " + eps);
        }
        if (!(eps >= Float.MIN_NORMAL && eps <= Float.MAX_VALUE)) {
            // The kernels add eps in float32: a value that rounds to infinity there is not the eps asked for, and
            // below the smallest normal var + eps can be subnormal, with too few bits for accuracy.md's bound (eps
            // 1e-44 on a row of 64 values of about 1e-22: 800 times the bound on oneDNN and the vector kernels).
            throw new IllegalArgumentException("eps must lie within float32's normal range (" + Float.MIN_NORMAL
                    + " to " + Float.MAX_VALUE + ") because the kernels add it to the variance in float32, got " + eps);
        }
        this.normalizedShape = normalizedShape;
        this.normalizedSize = size;
        this.eps = eps;
        this.scale = scale;
        this.shift = shift;
        this.rms = rms;
        this.preciseStatistics = preciseStatistics;
    }

    /**
     * Layer normalization with PyTorch's defaults: {@code eps = 1e-5}, with scale and shift
     * ({@code nn.LayerNorm(normalized_shape)}, {@code elementwise_affine=True, bias=True}).
     *
     * @param normalizedShape the trailing axes to normalize over, e.g. {@code 768} or {@code 16, 16}
     * @return the configuration
     * @throws IllegalArgumentException if there is no axis, an axis is smaller than 1, or their product
     *     overflows a {@code long}
     */
    public static LayerNormConfig of(long... normalizedShape) {
        return new LayerNormConfig(copyOf(normalizedShape), DEFAULT_EPS, true, true, false, false);
    }

    /**
     * RMS normalization with PyTorch's defaults ({@code nn.RMSNorm(normalized_shape)} on float32):
     * {@code eps = 2^-23}, with scale, without shift.
     *
     * @param normalizedShape the trailing axes to normalize over
     * @return the configuration
     * @throws IllegalArgumentException if there is no axis, an axis is smaller than 1, or their product
     *     overflows a {@code long}
     */
    public static LayerNormConfig rms(long... normalizedShape) {
        return new LayerNormConfig(copyOf(normalizedShape), DEFAULT_RMS_EPS, true, false, true, false);
    }

    /** The caller's shape, copied so that later changes to the array do not reach the configuration. */
    private static long[] copyOf(long[] normalizedShape) {
        return Objects.requireNonNull(normalizedShape, "normalizedShape").clone();
    }

    /** {@return a copy of the normalized shape} */
    public long[] normalizedShape() {
        return normalizedShape.clone();
    }

    /** {@return the number of trailing axes normalized over, {@code k}} */
    public int normalizedAxes() {
        return normalizedShape.length;
    }

    /** {@return {@code C}, the number of elements normalized together: the product of the normalized shape} */
    public long normalizedSize() {
        return normalizedSize;
    }

    /** {@return the constant added to the variance (or mean square) inside the square root} */
    public double eps() {
        return eps;
    }

    /** {@return whether an elementwise scale (gamma, PyTorch's {@code weight}) is applied} */
    public boolean scale() {
        return scale;
    }

    /** {@return whether an elementwise shift (beta, PyTorch's {@code bias}) is added} */
    public boolean shift() {
        return shift;
    }

    /** {@return whether this is RMS normalization rather than layer normalization} */
    public boolean rms() {
        return rms;
    }

    /**
     * {@return whether the oneDNN backend computes the statistics with panorm's accurate
     * (double-accumulated) kernel and hands them to oneDNN, instead of letting oneDNN compute them in
     * float} The Java backend always does. See {@code docs/accuracy.md} for the measured
     * difference.
     */
    public boolean preciseStatistics() {
        return preciseStatistics;
    }

    /**
     * This configuration with another {@code eps}.
     *
     * @param eps added to the variance inside the square root; within float32's normal range ({@code 2^-126} to
     *     {@link Float#MAX_VALUE}), as the kernels add it in float32
     * @return the modified copy
     * @throws IllegalArgumentException if {@code eps} is not such a number
     */
    public LayerNormConfig withEps(double eps) {
        return new LayerNormConfig(normalizedShape, eps, scale, shift, rms, preciseStatistics);
    }

    /**
     * This configuration with or without the elementwise scale.
     *
     * @param scale whether to multiply by gamma, a tensor of the normalized shape passed to every call
     * @return the modified copy
     */
    public LayerNormConfig withScale(boolean scale) {
        return new LayerNormConfig(normalizedShape, eps, scale, shift, rms, preciseStatistics);
    }

    /**
     * This configuration with or without the elementwise shift.
     *
     * @param shift whether to add beta, a tensor of the normalized shape passed to every call
     * @return the modified copy
     */
    public LayerNormConfig withShift(boolean shift) {
        return new LayerNormConfig(normalizedShape, eps, scale, shift, rms, preciseStatistics);
    }

    /** {@return this configuration with neither scale nor shift ({@code elementwise_affine=False})} */
    public LayerNormConfig withoutAffine() {
        return new LayerNormConfig(normalizedShape, eps, false, false, rms, preciseStatistics);
    }

    /**
     * This configuration with or without precise statistics on the oneDNN backend.
     *
     * @param preciseStatistics whether oneDNN gets statistics computed in double by panorm, at the cost of
     *     an extra pass over the data; see {@link #preciseStatistics()}
     * @return the modified copy
     */
    public LayerNormConfig withPreciseStatistics(boolean preciseStatistics) {
        return new LayerNormConfig(normalizedShape, eps, scale, shift, rms, preciseStatistics);
    }

    /** Whether {@code tensor}'s trailing axes are this configuration's normalized shape. */
    boolean endsWithNormalizedShape(Tensor tensor) {
        long[] shape = tensor.shapeArray();
        int offset = shape.length - normalizedShape.length;
        if (offset < 0) {
            return false;
        }
        for (int i = 0; i < normalizedShape.length; i++) {
            if (shape[offset + i] != normalizedShape[i]) {
                return false;
            }
        }
        return true;
    }

    /** Whether {@code tensor} has exactly the normalized shape. */
    boolean isNormalizedShape(Tensor tensor) {
        return Arrays.equals(tensor.shapeArray(), normalizedShape);
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof LayerNormConfig that
                && Arrays.equals(normalizedShape, that.normalizedShape)
                && Double.compare(eps, that.eps) == 0
                && scale == that.scale
                && shift == that.shift
                && rms == that.rms
                && preciseStatistics == that.preciseStatistics;
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(normalizedShape) * 31
                + Double.hashCode(eps) * 16
                + (scale ? 8 : 0)
                + (shift ? 4 : 0)
                + (rms ? 2 : 0)
                + (preciseStatistics ? 1 : 0);
    }

    /**
     * Describes the configuration, such as
     * {@code LayerNormConfig[normalizedShape=[768], eps=1.0E-5, scale=true, shift=true]}; an RMS configuration
     * is an {@code RMSNormConfig[...]}, and {@code preciseStatistics=true} is added when it is set.
     */
    @Override
    public String toString() {
        return (rms ? "RMSNormConfig" : "LayerNormConfig") + "[normalizedShape=" + Arrays.toString(normalizedShape)
                + ", eps=" + eps + ", scale=" + scale + ", shift=" + shift
                + (preciseStatistics ? ", preciseStatistics=true" : "") + "]";
    }
}
