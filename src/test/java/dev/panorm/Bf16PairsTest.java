package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link Bf16Pairs}: the paired order of per-column values, and NaN. Its rounding drops {@link
 * Elements#floatToBf16}'s test for NaN, which is sound only while no NaN reaching it has bits in the lower half of
 * its payload; these tests feed it NaNs that have them in the scale and shift (statistics that the caller
 * supplies must be finite).
 */
class Bf16PairsTest {
    private static final int LANES = VectorKernel.LANES;
    /** Quiet and signalling NaNs whose payloads have their lower half set: rounded naively, -0 and infinity. */
    private static final int[] NAN_BITS = {0x7fff_ffff, 0x7f80_0001, 0xffbf_ffff};

    @ParameterizedTest
    @ValueSource(ints = {1, 31, 32, 33, 3 * 64 + 5, 1000})
    void pairedOrderRoundTrips(int c) {
        float[] columns = new float[c];
        for (int i = 0; i < c; i++) {
            columns[i] = i;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment memory = arena.allocate((long) c * Float.BYTES);
            MemorySegment.copy(columns, 0, memory, ValueLayout.JAVA_FLOAT, 0, c);
            float[] work = new float[c];
            Bf16Pairs.toPairs(memory, work, c);
            if (c >= 2 * LANES) { // the first block: its even columns, then its odd ones
                for (int j = 0; j < LANES; j++) {
                    assertEquals(2 * j, work[j], "even column " + j);
                    assertEquals(2 * j + 1, work[LANES + j], "odd column " + j);
                }
            }
            Bf16Pairs.fromPairs(work, 0, c);
            assertArrayEquals(columns, work);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 2})
    void nanScaleOrShiftGivesNaN(int which) {
        int c = 4 * LANES + 3; // paired columns and a tail
        float nan = Float.intBitsToFloat(NAN_BITS[which]);
        float[] gamma = filled(c, 1.5f);
        float[] beta = filled(c, 0.25f);
        gamma[1] = nan; // an odd column
        beta[2 * LANES] = nan; // an even one in the second block
        gamma[c - 1] = nan; // the tail
        float[] x = TestData.gaussian(2 * c, 0, 1, 5);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), Backend.JAVA, 1)) {
            Tensor dst = Tensor.allocate(arena, DataType.BF16, 2, c);
            norm.forward(
                    Tensor.ofFloats(arena, DataType.BF16, x, 2, c),
                    dst,
                    Tensor.ofFloats(arena, gamma, c),
                    Tensor.ofFloats(arena, beta, c));
            for (int row = 0; row < 2; row++) {
                for (int i = 0; i < c; i++) {
                    boolean poisoned = i == 1 || i == 2 * LANES || i == c - 1;
                    assertEquals(poisoned, isNaN(dst, row * c + i), "y[" + row + ", " + i + "] NaN");
                    if (poisoned) {
                        assertEquals(quietUpperHalf(NAN_BITS[which]), bits(dst, row * c + i), "its bits");
                    }
                }
            }
            // Backward: a NaN in the scale reaches every dx of the row through sum(dy * gamma).
            Tensor src = Tensor.ofFloats(arena, DataType.BF16, x, 2, c);
            Tensor mean = Tensor.allocate(arena, DataType.F32, 2);
            Tensor variance = Tensor.allocate(arena, DataType.F32, 2);
            norm.forwardTraining(
                    src,
                    Tensor.allocate(arena, DataType.BF16, 2, c),
                    Tensor.ofFloats(arena, filled(c, 1), c),
                    Tensor.ofFloats(arena, filled(c, 0), c),
                    mean,
                    variance);
            Tensor dx = Tensor.allocate(arena, DataType.BF16, 2, c);
            norm.backwardData(src, src, mean, variance, Tensor.ofFloats(arena, gamma, c), dx);
            for (int i = 0; i < 2 * c; i++) {
                assertTrue(isNaN(dx, i), "dx[" + i + "] is NaN");
            }
        }
    }

    private static float[] filled(int n, float value) {
        float[] values = new float[n];
        java.util.Arrays.fill(values, value);
        return values;
    }

    private static int bits(Tensor bf16, int index) {
        return Short.toUnsignedInt(bf16.segment().getAtIndex(ValueLayout.JAVA_SHORT, index));
    }

    private static boolean isNaN(Tensor bf16, int index) {
        int bits = bits(bf16, index);
        return (bits & 0x7f80) == 0x7f80 && (bits & 0x7f) != 0;
    }

    /** What {@link Elements#floatToBf16} makes of a NaN: its upper half, made quiet. */
    private static int quietUpperHalf(int nanBits) {
        assertTrue(Float.isNaN(Float.intBitsToFloat(nanBits)));
        return (nanBits >>> 16) | 0x40;
    }
}
