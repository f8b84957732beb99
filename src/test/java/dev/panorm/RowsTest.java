package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Row offsets, through the fast paths ({@link Rows#rowStride}) and the general one, against the definition. */
class RowsTest {
    static Stream<Arguments> layouts() {
        return Stream.of(
                Arguments.of("contiguous 2-D", new long[] {5, 4}, new long[] {4, 1}, 1, 4L),
                Arguments.of("padded rows", new long[] {5, 4}, new long[] {6, 1}, 1, 6L),
                Arguments.of("contiguous 3-D", new long[] {2, 3, 4}, new long[] {12, 4, 1}, 1, 4L),
                Arguments.of("3-D, two normalized axes", new long[] {2, 3, 4}, new long[] {12, 4, 1}, 2, 12L),
                Arguments.of("3-D, padded middle axis", new long[] {2, 3, 4}, new long[] {20, 5, 1}, 1, -1L),
                Arguments.of("3-D, leading axes transposed", new long[] {2, 3, 4}, new long[] {4, 8, 1}, 1, -1L),
                Arguments.of("3-D, size-1 axis with any stride", new long[] {1, 3, 4}, new long[] {99, 4, 1}, 1, 4L),
                Arguments.of("one row", new long[] {4}, new long[] {1}, 1, 0L));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("layouts")
    void rowOffsetsFollowTheStrides(String name, long[] shape, long[] strides, int k, long expectedStride) {
        Tensor tensor = Tensor.of(MemorySegment.ofArray(new float[1000]), DataType.F32, shape, strides);
        assertEquals(expectedStride, Rows.rowStride(tensor, k));
        long rows = 1;
        for (int axis = 0; axis < shape.length - k; axis++) {
            rows *= shape[axis];
        }
        for (long row = 0; row < rows; row++) {
            long offset = 0; // the definition: row's index along each leading axis, last axis fastest
            long rest = row;
            for (int axis = shape.length - k - 1; axis >= 0; axis--) {
                offset += rest % shape[axis] * strides[axis];
                rest /= shape[axis];
            }
            assertEquals(offset, Rows.rowOffset(tensor, k, row), name + ", row " + row);
            assertTrue(expectedStride < 0 || offset == row * expectedStride, name + ", row " + row);
        }
    }
}
