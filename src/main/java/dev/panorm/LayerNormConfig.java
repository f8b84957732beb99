package dev.panorm;

/**
 * What a {@link LayerNorm} computes, configured like PyTorch's {@code torch.nn.LayerNorm}.
 *
 * <p>Every row of an {@code [..., C]} tensor is normalized over its last dimension:
 * {@code y = (x - mean) / sqrt(var + eps) * scale + shift}, with the biased variance (divided by
 * {@code C}), exactly as PyTorch and oneDNN define it. {@code scale} and {@code shift} are
 * per-channel tensors of shape {@code [C]}: PyTorch's {@code weight} and {@code bias}, the paper's
 * gain and bias.
 *
 * @param normalizedSize {@code C}, the size of the last dimension; at least 1
 * @param eps added to the variance for numerical stability; finite, {@code > 0}, and still
 *     {@code > 0} when rounded to float (oneDNN takes a float)
 * @param scale whether an elementwise scale (gamma, PyTorch's {@code weight}) is applied
 * @param shift whether an elementwise shift (beta, PyTorch's {@code bias}) is added
 */
public record LayerNormConfig(long normalizedSize, double eps, boolean scale, boolean shift) {

    /** PyTorch's default {@code eps}. */
    public static final double DEFAULT_EPS = 1e-5;

    /**
     * Validates the configuration.
     *
     * @throws IllegalArgumentException if {@code normalizedSize < 1} or {@code eps} is not a positive
     *     finite number that survives rounding to float
     */
    public LayerNormConfig {
        if (normalizedSize < 1) {
            throw new IllegalArgumentException("normalizedSize must be at least 1, got " + normalizedSize);
        }
        if (!(eps > 0) || Double.isInfinite(eps) || !((float) eps > 0) || Float.isInfinite((float) eps)) {
            throw new IllegalArgumentException("eps must be a positive finite float, got " + eps);
        }
    }

    /**
     * PyTorch's defaults: {@code eps = 1e-5}, with scale and shift ({@code elementwise_affine=True, bias=True}).
     *
     * @param normalizedSize {@code C}, the size of the last dimension
     * @return the configuration
     */
    public static LayerNormConfig of(long normalizedSize) {
        return new LayerNormConfig(normalizedSize, DEFAULT_EPS, true, true);
    }

    /** This configuration with another {@code eps}. */
    public LayerNormConfig withEps(double eps) {
        return new LayerNormConfig(normalizedSize, eps, scale, shift);
    }

    /** This configuration with or without the elementwise scale. */
    public LayerNormConfig withScale(boolean scale) {
        return new LayerNormConfig(normalizedSize, eps, scale, shift);
    }

    /** This configuration with or without the elementwise shift. */
    public LayerNormConfig withShift(boolean shift) {
        return new LayerNormConfig(normalizedSize, eps, scale, shift);
    }

    /** This configuration with neither scale nor shift ({@code elementwise_affine=False}). */
    public LayerNormConfig withoutAffine() {
        return new LayerNormConfig(normalizedSize, eps, false, false);
    }
}
