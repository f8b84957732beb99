package dev.panorm;

/**
 * Element types of a {@link Tensor}.
 *
 * <p>{@link LayerNorm} takes the three floating-point types for its data and its scale and shift, in any
 * combination, and rounds each result to its output's type to nearest, ties to even; its statistics are
 * always {@link #F32}. {@link #S8} is only the destination of the quantized forward pass
 * ({@link LayerNorm#forwardQuantized(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)}).
 *
 * <p>Guide: {@code docs/data-types.md}.
 */
public enum DataType {
    /** IEEE 754 binary32, {@code float}. */
    F32(4),
    /** bfloat16: the upper 16 bits of a binary32. */
    BF16(2),
    /** IEEE 754 binary16 (half precision). */
    F16(2),
    /**
     * Signed 8-bit integers holding symmetrically quantized values in {@code [-127, 127]}, with a float scale
     * kept beside them ({@code value = q * scale}); NumPy's {@code int8}.
     */
    S8(1);

    private final int byteSize;

    DataType(int byteSize) {
        this.byteSize = byteSize;
    }

    /** {@return whether this is one of the floating-point types: F32, BF16 or F16} */
    public boolean isFloatingPoint() {
        return this != S8;
    }

    /** {@return the size of one element in bytes} */
    public int byteSize() {
        return byteSize;
    }
}
