package dev.panorm;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Reading and writing elements of any {@link DataType} as float. Half-precision values widen
 * exactly; results narrow with round-to-nearest-even, NaN staying NaN (int8 saturates, see {@link #toS8}).
 */
final class Elements {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;

    private Elements() {}

    /** Element {@code index} (counted in elements, not bytes) of {@code segment}, as float. */
    static float get(MemorySegment segment, DataType type, long index) {
        return switch (type) {
            case F32 -> segment.getAtIndex(FLOAT, index);
            case BF16 -> bf16ToFloat(segment.getAtIndex(SHORT, index));
            case F16 -> Float.float16ToFloat(segment.getAtIndex(SHORT, index));
            case S8 -> segment.get(ValueLayout.JAVA_BYTE, index);
        };
    }

    /** Stores {@code value} as element {@code index} of {@code segment}, rounded to {@code type}. */
    static void set(MemorySegment segment, DataType type, long index, float value) {
        switch (type) {
            case F32 -> segment.setAtIndex(FLOAT, index, value);
            case BF16 -> segment.setAtIndex(SHORT, index, floatToBf16(value));
            case F16 -> segment.setAtIndex(SHORT, index, Float.floatToFloat16(value));
            case S8 -> segment.set(ValueLayout.JAVA_BYTE, index, toS8(value));
        }
    }

    /**
     * Rounds to the nearest integer, ties to even, saturated to {@code [-127, 127]} (the symmetric int8 range,
     * without -128); NaN becomes 0.
     */
    static byte toS8(float value) {
        return (byte) (int) Math.rint(Math.max(-127f, Math.min(127f, value)));
    }

    /** bfloat16 is the upper half of a binary32: widening is a shift. */
    static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** Rounds to the nearest bfloat16, ties to even; NaN stays a (quiet) NaN, infinities stay infinite. */
    static short floatToBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if (Float.isNaN(value)) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        int roundingBias = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + roundingBias) >>> 16);
    }
}
