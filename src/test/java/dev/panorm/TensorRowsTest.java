package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** {@link Tensor#rows}: views of consecutive rows, without copies, for any layout whose rows flatten. */
class TensorRowsTest {
    @Test
    void rowsOfACOrderTensorAreViewsOfItsMemory() {
        try (Arena arena = Arena.ofConfined()) {
            float[] values = new float[2 * 3 * 4];
            for (int i = 0; i < values.length; i++) {
                values[i] = i;
            }
            Tensor tensor = Tensor.ofFloats(arena, values, 2, 3, 4);
            Tensor rows = tensor.rows(1, 2, 3); // rows 2, 3, 4 of the 6 rows of 4
            assertArrayEquals(new long[] {3, 4}, rows.shape());
            assertArrayEquals(Arrays.copyOfRange(values, 8, 20), rows.toFloatArray());
            assertEquals(
                    tensor.segment().address() + 8 * Float.BYTES, rows.segment().address(), "a view, not a copy");

            Tensor planes = tensor.rows(2, 1, 1); // the second [3, 4] plane
            assertArrayEquals(new long[] {1, 3, 4}, planes.shape());
            assertArrayEquals(Arrays.copyOfRange(values, 12, 24), planes.toFloatArray());
            assertEquals(0, tensor.rows(1, 6, 0).elementCount());
        }
    }

    @Test
    void paddedRowsAndUnitAxesFlattenTransposedOnesDoNot() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor padded =
                    Tensor.of(arena.allocate(4L * 5 * 10), DataType.F32, new long[] {5, 1, 8}, new long[] {10, 999, 1});
            Tensor rows = padded.rows(1, 1, 3);
            assertArrayEquals(new long[] {10, 1}, rows.strides());
            Tensor transposed =
                    Tensor.of(arena.allocate(4L * 24), DataType.F32, new long[] {2, 3, 4}, new long[] {4, 8, 1});
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> transposed.rows(1, 0, 1));
            assertTrue(e.getMessage().contains("not evenly strided"), e.getMessage());
            assertEquals(2, transposed.rows(2, 0, 2).dim(0), "as [2, (3, 4)] its planes are fine");
        }
    }

    @Test
    void outOfRangeRowsAndAxesAreRefused() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor tensor = Tensor.allocate(arena, DataType.BF16, 6, 4);
            assertEquals(
                    "rows 5 to 7 are outside the 6 rows of BF16[6, 4]",
                    assertThrows(IllegalArgumentException.class, () -> tensor.rows(1, 5, 2))
                            .getMessage());
            assertThrows(IllegalArgumentException.class, () -> tensor.rows(1, -1, 1));
            assertThrows(IllegalArgumentException.class, () -> tensor.rows(0, 0, 1));
            assertThrows(IllegalArgumentException.class, () -> tensor.rows(3, 0, 1));
        }
    }
}
