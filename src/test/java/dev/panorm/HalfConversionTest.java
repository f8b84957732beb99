package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.function.IntUnaryOperator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The vector kernels' bfloat16 and float16 conversions against the scalar ones ({@link Elements}, {@link
 * Float#float16ToFloat}, {@link Float#floatToFloat16}): widening over all 65536 values, narrowing over
 * every half-precision value, every tie between neighbours and the floats next to each tie, plus random
 * floats. Rows of 65536 + 5 values run the vector loops and their scalar tails.
 */
class HalfConversionTest {
    private static final int C = 65536 + 5;

    @BeforeAll
    static void vectorized() {
        assumeTrue(JavaKernels.vectorized());
    }

    private static VectorKernel kernel() {
        return new VectorKernel(LayerNormConfig.of(C), 1);
    }

    /** Widens every 16-bit pattern (the first five twice, for the tail) and compares the float bits. */
    private static void checkWidening(DataType type, IntUnaryOperator expectedBits) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment halves = arena.allocate((long) C * Short.BYTES + 2); // offset 2: an unaligned row
            MemorySegment floats = arena.allocate((long) C * Float.BYTES);
            for (int i = 0; i < C; i++) {
                halves.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i + 1, (short) i);
            }
            kernel().widen(halves, Short.BYTES, type, floats, new VectorKernel.HalfRows(C));
            for (int i = 0; i < C; i++) {
                int bits = Float.floatToRawIntBits(floats.getAtIndex(ValueLayout.JAVA_FLOAT, i));
                int expected = expectedBits.applyAsInt((short) i);
                int half = i & 0xffff;
                if (Float.isNaN(Float.intBitsToFloat(expected))) { // NaN bits are the platform's: any NaN, same sign
                    assertTrue(Float.isNaN(Float.intBitsToFloat(bits)) && (bits < 0) == (expected < 0), type + " NaN");
                } else {
                    assertEquals(expected, bits, () -> type + " " + Integer.toHexString(half));
                }
            }
        }
    }

    @Test
    void widensEveryBfloat16() {
        checkWidening(DataType.BF16, h -> Float.floatToRawIntBits(Elements.bf16ToFloat((short) h)));
    }

    @Test
    void widensEveryFloat16() {
        checkWidening(DataType.F16, h -> Float.floatToRawIntBits(Float.float16ToFloat((short) h)));
    }

    /** Every half value, the ties between neighbours and the floats either side of each tie, then random floats. */
    private static int[] narrowingCases(DataType type) {
        int[] cases = new int[C * 4 * 5];
        int n = 0;
        for (int h = 0; h < 65536; h++) {
            float value = Elements.get(halfSegment((short) h), type, 0);
            float next = Elements.get(halfSegment((short) (h + 1)), type, 0);
            if (Float.isNaN(value) || Float.isNaN(next) || Float.isInfinite(value)) {
                cases[n++] = Float.floatToRawIntBits(value);
                continue;
            }
            int tie = Float.floatToRawIntBits((float) (((double) value + next) / 2));
            cases[n++] = Float.floatToRawIntBits(value);
            cases[n++] = tie;
            cases[n++] = tie - 1;
            cases[n++] = tie + 1;
        }
        SplittableRandom random = new SplittableRandom(42);
        while (n < cases.length) {
            cases[n++] = random.nextInt();
        }
        return cases;
    }

    private static MemorySegment halfSegment(short bits) {
        return MemorySegment.ofArray(new short[] {bits});
    }

    private static void checkNarrowing(DataType type) {
        int[] cases = narrowingCases(type);
        VectorKernel kernel = kernel();
        VectorKernel.HalfRows rows = new VectorKernel.HalfRows(C);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment floats = arena.allocate((long) C * Float.BYTES);
            MemorySegment halves = arena.allocate((long) C * Short.BYTES + 2);
            for (int from = 0; from < cases.length; from += C) {
                for (int i = 0; i < C; i++) {
                    floats.setAtIndex(
                            ValueLayout.JAVA_FLOAT, i, Float.intBitsToFloat(cases[(from + i) % cases.length]));
                }
                kernel.narrow(floats, halves, Short.BYTES, type, rows);
                for (int i = 0; i < C; i++) {
                    float value = floats.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                    short actual = halves.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i + 1);
                    MemorySegment expected = MemorySegment.ofArray(new short[1]);
                    Elements.set(expected, type, 0, value);
                    short wanted = expected.getAtIndex(ValueLayout.JAVA_SHORT, 0);
                    String what = type + " of " + value + " (" + Integer.toHexString(Float.floatToRawIntBits(value))
                            + "): " + Integer.toHexString(actual & 0xffff) + ", expected "
                            + Integer.toHexString(wanted & 0xffff);
                    if (Float.isNaN(value)) { // any NaN of the same sign
                        float widened = Elements.get(MemorySegment.ofArray(new short[] {actual}), type, 0);
                        assertTrue(Float.isNaN(widened) && (actual < 0) == (wanted < 0), what);
                    } else {
                        assertEquals(wanted, actual, what);
                    }
                }
            }
        }
    }

    @Test
    void narrowsToBfloat16AsTheScalarKernelDoes() {
        checkNarrowing(DataType.BF16);
    }

    @Test
    void narrowsToFloat16AsTheScalarKernelDoes() {
        checkNarrowing(DataType.F16);
    }
}
