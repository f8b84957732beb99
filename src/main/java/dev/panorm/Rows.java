package dev.panorm;

/**
 * A tensor seen as rows: its leading axes index the rows, its last {@code k} axes (the normalized
 * shape) the {@code C} elements of a row. Offsets count elements. Every method works on the
 * tensor's own arrays, so the hot path allocates nothing.
 */
final class Rows {
    private Rows() {}

    /** The element offset of row {@code row}'s first element. */
    static long rowOffset(Tensor tensor, int k, long row) {
        long stride = rowStride(tensor, k);
        if (stride >= 0) { // the common case, without the general case's two long divisions per axis
            return row * stride;
        }
        long[] shape = tensor.shapeArray();
        long[] strides = tensor.stridesArray();
        long offset = 0;
        for (int axis = shape.length - k - 1; axis >= 0 && row != 0; axis--) {
            offset += (row % shape[axis]) * strides[axis];
            row /= shape[axis];
        }
        return offset;
    }

    /**
     * The offset of row {@code row}'s first element, given the tensor's {@link #rowStride} (or -1): the general
     * layout's {@link #rowOffset} is a call the common layouts never make.
     */
    static long row(Tensor tensor, int k, long rowStride, long row) {
        return rowStride >= 0 ? row * rowStride : rowOffset(tensor, k, row);
    }

    /**
     * The distance in elements from one row to the next when every row is that far from the previous
     * (one leading axis, or a contiguous tensor), or -1 when the rows follow a more general pattern.
     * Kernels compute it once per call, so their rows loops call nothing.
     */
    static long rowStride(Tensor tensor, int k) {
        long[] shape = tensor.shapeArray();
        int outerAxes = shape.length - k;
        if (outerAxes <= 0) {
            return 0; // a single row
        }
        if (outerAxes == 1) {
            return tensor.stridesArray()[0];
        }
        if (!tensor.isContiguous()) {
            return -1;
        }
        long rowLength = 1;
        for (int axis = outerAxes; axis < shape.length; axis++) {
            rowLength *= shape[axis];
        }
        return rowLength;
    }

    /**
     * The stride between consecutive elements of a row when the normalized axes form one evenly
     * strided run, or -1 when they do not (for example a padded inner axis of a multi-axis row).
     */
    static long columnStride(Tensor tensor, int k) {
        long[] shape = tensor.shapeArray();
        long[] strides = tensor.stridesArray();
        long stride = -1;
        long expected = -1;
        for (int axis = shape.length - 1; axis >= shape.length - k; axis--) {
            if (shape[axis] == 1) {
                continue;
            }
            if (stride < 0) {
                stride = strides[axis];
            } else if (strides[axis] != expected) {
                return -1;
            }
            expected = strides[axis] * shape[axis];
        }
        return stride < 0 ? 1 : stride;
    }

    /** The offset of element {@code column} within a row, for any layout of the normalized axes. */
    static long columnOffset(Tensor tensor, int k, long column) {
        long[] shape = tensor.shapeArray();
        long[] strides = tensor.stridesArray();
        long offset = 0;
        for (int axis = shape.length - 1; axis >= shape.length - k && column != 0; axis--) {
            offset += (column % shape[axis]) * strides[axis];
            column /= shape[axis];
        }
        return offset;
    }

    /** The offset of element {@code column} of a row, given the row's {@link #columnStride} (or -1). */
    static long column(Tensor tensor, int k, long columnStride, long column) {
        return columnStride >= 0 ? column * columnStride : columnOffset(tensor, k, column);
    }
}
