package dev.panorm;

/**
 * Element types of a {@link Tensor}.
 *
 * <p>{@link LayerNorm} takes all three for its data and its scale and shift, in any combination, and
 * rounds each result to its output's type to nearest, ties to even; its statistics are always
 * {@link #F32}.
 *
 * <p>Guide: {@code docs/data-types.md}.
 */
public enum DataType {
    /** IEEE 754 binary32, {@code float}. */
    F32(4),
    /** bfloat16: the upper 16 bits of a binary32. */
    BF16(2),
    /** IEEE 754 binary16 (half precision). */
    F16(2);

    private final int byteSize;

    DataType(int byteSize) {
        this.byteSize = byteSize;
    }

    /** {@return the size of one element in bytes} */
    public int byteSize() {
        return byteSize;
    }
}
