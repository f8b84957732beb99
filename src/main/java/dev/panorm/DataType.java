package dev.panorm;

/**
 * Element types of a {@link Tensor}.
 *
 * <p>Which operations accept which types is stated on each operation; the foundation's layer
 * normalization takes {@link #F32} only.
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

    /** The size of one element in bytes. */
    public int byteSize() {
        return byteSize;
    }
}
