package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * {@link Tensor#toFloatArray()}, {@link Tensor#copyFrom(float[])} and {@link Tensor#ofFloats}: float[]
 * to and from tensors of every data type and layout, rounding to nearest, ties to even.
 */
class TensorConversionTest {
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;

    /** The 16-bit pattern {@code value} becomes when stored in a one-element tensor of {@code type}. */
    private static int bits(DataType type, float value) {
        try (Arena arena = Arena.ofConfined()) {
            return Tensor.ofFloats(arena, type, new float[] {value}, 1)
                            .segment()
                            .get(SHORT, 0)
                    & 0xffff;
        }
    }

    /** What a one-element tensor of {@code type} holding {@code value} reads back as. */
    private static float stored(DataType type, float value) {
        try (Arena arena = Arena.ofConfined()) {
            return Tensor.ofFloats(arena, type, new float[] {value}, 1).toFloatArray()[0];
        }
    }

    @Test
    void bfloat16RoundsToNearestEvenAsIeeePrescribes() {
        assertEquals(1.0f, stored(DataType.BF16, 1 + 0x1p-8f), "1 + 2^-8 is a tie: to the even neighbour 1");
        assertEquals(1 + 0x1p-7f, stored(DataType.BF16, 1 + 0x3p-9f), "1 + 3*2^-9 is above the tie: up");
        assertEquals(1 + 0x1p-6f, stored(DataType.BF16, 1 + 0x3p-8f), "1 + 3*2^-8 is a tie: up to the even 1 + 2^-6");
        assertEquals(1.0f, stored(DataType.BF16, 1 + 0x1p-8f - 0x1p-23f), "below the tie: down");
        assertEquals(-2.0f, stored(DataType.BF16, -2.0f));
        assertEquals(0x8000, bits(DataType.BF16, -0.0f), "-0 keeps its sign");
        assertEquals(0x7f80, bits(DataType.BF16, Float.POSITIVE_INFINITY));
        assertEquals(0xff80, bits(DataType.BF16, Float.NEGATIVE_INFINITY));
        assertEquals(
                0x7f7f, bits(DataType.BF16, Float.intBitsToFloat(0x7f7f7fff)), "just below max + half an ulp: max");
        assertEquals(0x7f80, bits(DataType.BF16, Float.intBitsToFloat(0x7f7f8000)), "max + half an ulp overflows");
        assertEquals(0x7f80, bits(DataType.BF16, Float.MAX_VALUE), "overflow gives infinity");
        assertEquals(0xff80, bits(DataType.BF16, -Float.MAX_VALUE));
        assertEquals(0x0001, bits(DataType.BF16, 0x1p-133f), "bfloat16's smallest subnormal");
        assertEquals(0x0000, bits(DataType.BF16, Float.MIN_VALUE), "far below it: zero");
        assertTrue(Float.isNaN(stored(DataType.BF16, Float.NaN)));
        assertTrue(
                Float.isNaN(stored(DataType.BF16, Float.intBitsToFloat(0x7f800001))),
                "a NaN whose payload lies in the low 16 bits stays NaN, not infinity");
        assertTrue(
                Float.isNaN(stored(DataType.BF16, Float.intBitsToFloat(0xffffffff))),
                "a negative NaN with all bits set");
    }

    @Test
    void float16RoundsToNearestEvenWithSubnormalsAndOverflow() {
        assertEquals(1.0f, stored(DataType.F16, 1 + 0x1p-11f), "1 + 2^-11 is a tie: to the even neighbour 1");
        assertEquals(1 + 0x1p-10f, stored(DataType.F16, 1 + 0x3p-12f), "above the tie: up");
        assertEquals(1 + 0x1p-9f, stored(DataType.F16, 1 + 0x3p-11f), "a tie: up to the even 1 + 2^-9");
        assertEquals(65504f, stored(DataType.F16, 65504f), "the largest float16");
        assertEquals(65504f, stored(DataType.F16, 65519.996f), "below max + half an ulp: max");
        assertEquals(Float.POSITIVE_INFINITY, stored(DataType.F16, 65520f), "max + half an ulp overflows");
        assertEquals(Float.NEGATIVE_INFINITY, stored(DataType.F16, -Float.MAX_VALUE));
        assertEquals(0x7c00, bits(DataType.F16, Float.POSITIVE_INFINITY));
        assertEquals(0x8000, bits(DataType.F16, -0.0f), "-0 keeps its sign");
        assertEquals(0x0001, bits(DataType.F16, 0x1p-24f), "the smallest subnormal");
        assertEquals(0x0001, bits(DataType.F16, 0x3p-26f), "above half of it: up to it");
        assertEquals(0x0000, bits(DataType.F16, 0x1p-25f), "half of it is a tie: to the even zero");
        assertEquals(0x0002, bits(DataType.F16, 0x3p-25f), "1.5 subnormal steps is a tie: to the even 2");
        assertEquals(0x03ff, bits(DataType.F16, 0x1p-14f - 0x1p-24f), "the largest subnormal");
        assertEquals(0x0400, bits(DataType.F16, 0x1p-14f), "the smallest normal");
        assertTrue(Float.isNaN(stored(DataType.F16, Float.NaN)));
        assertTrue(Float.isNaN(stored(DataType.F16, Float.intBitsToFloat(0x7f800001))), "a NaN with a low payload");
    }

    @Test
    void bfloat16AgreesWithTheNearestNeighbourOnRandomFloats() {
        SplittableRandom random = new SplittableRandom(12);
        float[] values = new float[200_000];
        for (int i = 0; i < values.length; i++) {
            int bits = random.nextInt();
            values[i] = i % 4 == 0
                    ? Float.intBitsToFloat(bits) // any pattern, NaNs and extremes included
                    : Float.intBitsToFloat((bits & 0xffff0000) | (i % 2 == 0 ? 0x8000 : bits & 0xffff)); // many ties
        }
        try (Arena arena = Arena.ofConfined()) {
            Tensor tensor = Tensor.ofFloats(arena, DataType.BF16, values, values.length);
            for (int i = 0; i < values.length; i++) {
                int expected = nearestBf16(values[i]);
                int actual = tensor.segment().getAtIndex(SHORT, i) & 0xffff;
                if (expected < 0) {
                    assertTrue((actual & 0x7f80) == 0x7f80 && (actual & 0x7f) != 0, "NaN stays NaN: " + values[i]);
                } else {
                    float value = values[i];
                    assertEquals(expected, actual, () -> "bits " + Integer.toHexString(Float.floatToRawIntBits(value)));
                }
            }
        }
    }

    /**
     * The bfloat16 nearest to {@code value}, ties to the even one, chosen by comparing distances in
     * double between the two bfloat16 neighbours (the one past the largest finite value counts as
     * 2^128, which rounds to infinity); -1 for NaN.
     */
    private static int nearestBf16(float value) {
        if (Float.isNaN(value)) {
            return -1;
        }
        int sign = Float.floatToRawIntBits(value) >>> 16 & 0x8000;
        float magnitude = Math.abs(value);
        int below = Float.floatToRawIntBits(magnitude) >>> 16;
        if (Float.isInfinite(magnitude) || Float.intBitsToFloat(below << 16) == magnitude) {
            return sign | below;
        }
        double low = Float.intBitsToFloat(below << 16);
        double high = below + 1 == 0x7f80 ? 0x1p128 : Float.intBitsToFloat((below + 1) << 16);
        double toLow = magnitude - low;
        double toHigh = high - magnitude;
        int nearest = toLow < toHigh || (toLow == toHigh && (below & 1) == 0) ? below : below + 1;
        return sign | nearest;
    }

    @ParameterizedTest
    @EnumSource(
            value = DataType.class,
            names = {"BF16", "F16"})
    void everyHalfPrecisionValueSurvivesARoundTrip(DataType type) {
        try (Arena arena = Arena.ofConfined()) {
            Tensor all = Tensor.allocate(arena, type, 65536);
            for (int bits = 0; bits < 65536; bits++) {
                all.segment().setAtIndex(SHORT, bits, (short) bits);
            }
            float[] widened = all.toFloatArray();
            Tensor back = Tensor.allocate(arena, type, 65536).copyFrom(widened);
            for (int bits = 0; bits < 65536; bits++) {
                int actual = back.segment().getAtIndex(SHORT, bits) & 0xffff;
                if (Float.isNaN(widened[bits])) {
                    assertTrue(Float.isNaN(Elements.get(back.segment(), type, bits)), "NaN stays NaN");
                } else {
                    assertEquals(bits, actual, "every finite value, both zeros and both infinities keep their bits");
                }
            }
            float[] expected = {1.0f, -2.0f, 0.0f};
            assertArrayEquals(
                    expected, Tensor.ofFloats(arena, type, expected, 3).toFloatArray(), "exact values stay");
        }
    }

    @Test
    void toFloatArrayWidensTheStoredBitsExactly() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor bf16 = Tensor.allocate(arena, DataType.BF16, 5);
            short[] bf16Bits = {0x3f80, (short) 0xc000, 0x0001, 0x7f7f, (short) 0xff80};
            MemorySegment.copy(bf16Bits, 0, bf16.segment(), SHORT, 0, bf16Bits.length);
            assertArrayEquals(
                    new float[] {1, -2, 0x1p-133f, Float.intBitsToFloat(0x7f7f0000), Float.NEGATIVE_INFINITY},
                    bf16.toFloatArray());

            Tensor f16 = Tensor.allocate(arena, DataType.F16, 5);
            short[] f16Bits = {0x3c00, (short) 0xc000, 0x0001, 0x7bff, (short) 0xfc00};
            MemorySegment.copy(f16Bits, 0, f16.segment(), SHORT, 0, f16Bits.length);
            assertArrayEquals(new float[] {1, -2, 0x1p-24f, 65504, Float.NEGATIVE_INFINITY}, f16.toFloatArray());
        }
    }

    @ParameterizedTest
    @EnumSource(
            value = DataType.class,
            names = {"F32", "BF16", "F16"})
    void stridedTensorsAreReadAndWrittenInCOrderWithoutTouchingTheGaps(DataType type) {
        try (Arena arena = Arena.ofConfined()) {
            // [2, 3, 4] transposed to axis order (2, 0, 1) in memory, each of its 4 planes padded by 5 elements.
            long[] shape = {2, 3, 4};
            long[] strides = {3, 1, 11};
            long elements = 3 * 11 + 6; // the last element is at 3 + 2 + 3 * 11
            MemorySegment memory = arena.allocate(elements * type.byteSize());
            for (long i = 0; i < elements; i++) {
                Elements.set(memory, type, i, 1000); // sentinel
            }
            Tensor tensor = Tensor.of(memory, type, shape, strides);
            float[] values = new float[24];
            for (int i = 0; i < values.length; i++) {
                values[i] = i - 11.5f; // exact in every type
            }
            tensor.copyFrom(values);
            assertArrayEquals(values, tensor.toFloatArray());
            int written = 0;
            for (int i = 0; i < 2; i++) {
                for (int j = 0; j < 3; j++) {
                    for (int k = 0; k < 4; k++) {
                        assertEquals(values[(i * 3 + j) * 4 + k], Elements.get(memory, type, i * 3 + j + k * 11L));
                        written++;
                    }
                }
            }
            long sentinels = 0;
            for (long i = 0; i < elements; i++) {
                sentinels += Elements.get(memory, type, i) == 1000 ? 1 : 0;
            }
            assertEquals(elements - written, sentinels, "the gaps between rows are untouched");
        }
    }

    @Test
    void heapSegmentsWork() {
        short[] storage = new short[4];
        Tensor tensor =
                Tensor.of(MemorySegment.ofArray(storage), DataType.BF16, 2, 2).copyFrom(new float[] {1, 2, 3, 4});
        assertEquals(0x3f80, storage[0]);
        assertArrayEquals(new float[] {1, 2, 3, 4}, tensor.toFloatArray());
    }

    @Test
    void refusesWhatCannotBeWrittenBeforeWritingAnything() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor tensor = Tensor.allocate(arena, DataType.BF16, 2, 3);
            var wrongLength = assertThrows(IllegalArgumentException.class, () -> tensor.copyFrom(new float[5]));
            assertEquals("5 values do not fill BF16[2, 3], which has 6 elements", wrongLength.getMessage());

            Tensor readOnly = Tensor.of(tensor.segment().asReadOnly(), DataType.BF16, 2, 3);
            var refused = assertThrows(IllegalArgumentException.class, () -> readOnly.copyFrom(new float[6]));
            assertTrue(
                    refused.getMessage().contains("BF16[2, 3]")
                            && refused.getMessage().contains("read-only"),
                    refused.getMessage());

            Tensor broadcast = Tensor.of(tensor.segment(), DataType.BF16, new long[] {2, 3}, new long[] {0, 1});
            float[] ones = {1, 1, 1, 1, 1, 1};
            var overlapping = assertThrows(IllegalArgumentException.class, () -> broadcast.copyFrom(ones));
            assertTrue(overlapping.getMessage().contains("several indices on one element"), overlapping.getMessage());
            assertArrayEquals(new float[6], tensor.toFloatArray(), "nothing was written");

            var wrongShape = assertThrows(
                    IllegalArgumentException.class, () -> Tensor.ofFloats(arena, DataType.F16, new float[3], 2, 2));
            assertEquals("3 values do not fill shape [2, 2] (F16)", wrongShape.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Tensor.ofFloats(arena, new float[3], 2, 2));
        }
    }

    @Test
    void aClosedArenaIsAnIllegalState() {
        Tensor tensor;
        try (Arena arena = Arena.ofConfined()) {
            tensor = Tensor.allocate(arena, DataType.F16, 3);
        }
        assertThrows(IllegalStateException.class, tensor::toFloatArray);
        assertThrows(IllegalStateException.class, () -> tensor.copyFrom(new float[3]));
    }

    @Test
    void emptyTensorsConvertToEmptyArrays() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor empty = Tensor.ofFloats(arena, DataType.BF16, new float[0], 4, 0);
            assertEquals(0, empty.toFloatArray().length);
            assertEquals(DataType.BF16, empty.dataType());
        }
    }
}
