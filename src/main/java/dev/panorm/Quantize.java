package dev.panorm;

/**
 * Symmetric int8 quantization, as every kernel applies it: a row's dynamic scale is {@code max|y| / 127},
 * and {@code q = round_half_even(y * (1 / scale))} saturated to {@code [-127, 127]}. Multiplying by the
 * float reciprocal rather than dividing keeps the kernels' inner loops free of divisions; the two differ by
 * one rounding, which can move only a value within an ulp of a half-integer to the other neighbour (the
 * error bound, {@code |q * scale - y| <= scale / 2} plus rounding, holds either way). A dynamic scale of
 * 2^-128 or less has no float reciprocal, so its row divides ({@link #steps}); a static scale must have one.
 * A row of zeros, or one whose {@code max|y| / 127} underflows to 0, has scale 0 and all {@code q = 0}; a
 * row holding NaN has a NaN scale, one holding an infinity an infinite one, and their {@code q} are 0.
 */
final class Quantize {
    /** The largest magnitude of a symmetric int8 value. */
    static final float LIMIT = 127f;

    private Quantize() {}

    /** {@code max(maxAbs, |y|)}, NaN propagating. */
    static float maxAbs(float maxAbs, float y) {
        return Math.max(maxAbs, Math.abs(y));
    }

    /** A row's dynamic scale from its {@code max|y|}. */
    static float scale(float maxAbs) {
        return maxAbs / LIMIT;
    }

    /**
     * What y is multiplied by before rounding: {@code 1 / scale}, 0 for a zero scale, and infinite for a scale
     * of 2^-128 or less, whose reciprocal overflows (then {@link #steps} divides).
     */
    static float inverse(float scale) {
        return scale == 0 ? 0 : 1 / scale;
    }

    /** {@code y / scale} before rounding, as the kernels compute it: {@code y * inverse} where that is finite. */
    static float steps(float y, float scale, float inverse) {
        return inverse == Float.POSITIVE_INFINITY ? y / scale : y * inverse;
    }

    /** Whether {@code scale} may be a static scale: finite, positive, with a float reciprocal (above 2^-128). */
    static boolean isStaticScale(float scale) {
        return scale > 0 && scale < Float.POSITIVE_INFINITY && Float.isFinite(1 / scale);
    }
}
