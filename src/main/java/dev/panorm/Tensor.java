package dev.panorm;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

/**
 * An n-dimensional view of memory: a {@link MemorySegment} plus a shape, strides and a
 * {@link DataType}.
 *
 * <p>A tensor never owns its memory and never copies it: the segment's arena decides how long the
 * memory lives, and the tensor is only valid while that arena is open. Strides count elements,
 * not bytes, as in PyTorch; the default strides are C order (row-major), so the last dimension is
 * contiguous. Element {@code (i0, i1, ...)} lives at byte offset
 * {@code (i0*strides[0] + i1*strides[1] + ...) * dataType.byteSize()} of the segment.
 *
 * <p>The constructor checks that every element the shape and strides address lies inside the
 * segment, so an operation can never read or write past it. Tensors are immutable and
 * thread-safe; the memory they view is not synchronized.
 *
 * <p>Guide: {@code docs/api.md}; data types and strides: {@code docs/data-types.md}.
 */
public final class Tensor {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final MemorySegment segment;
    private final DataType dataType;
    private final long[] shape;
    private final long[] strides;
    private final long elementCount;
    private final long byteExtent;
    private final boolean nonOverlapping;
    private final long layoutHash;
    /** Computed once: every call checks it, some several times. */
    private final boolean contiguous;
    /** The array a writable heap segment lies in, else null: computed once, since asking allocates. */
    private final Object heapArray;
    /** How the kernels see this tensor's memory ({@link OwnedMemory}), from its arena: fixed, so computed once. */
    private final OwnedMemory.Kind memoryKind;
    /** The last view of this tensor's memory that a thread owns ({@link OwnedMemory#onThisThread}), or null. */
    private OwnedView ownedView;
    /**
     * On the heap, the copy before {@link #ownedView}, or null: a tensor's copy has a place among a call's copies,
     * and a training loop puts it at two in turn (forward and backward).
     */
    private OwnedView earlierCopy;

    private Tensor(MemorySegment segment, DataType dataType, long[] shape, long[] strides) {
        this.segment = Objects.requireNonNull(segment, "segment");
        this.dataType = Objects.requireNonNull(dataType, "dataType");
        this.shape = shape;
        this.strides = strides;
        this.elementCount = elementCount(shape);
        this.byteExtent = byteExtent(dataType, shape, strides);
        this.nonOverlapping = nonOverlapping(shape, strides);
        this.contiguous = contiguous(shape, strides, elementCount);
        this.memoryKind = OwnedMemory.kind(segment);
        this.heapArray = segment.heapBase().orElse(null);
        long hash = dataType.ordinal() + 1;
        for (int i = 0; i < shape.length; i++) {
            hash = (hash * 0x9E3779B97F4A7C15L + shape[i]) * 0xBF58476D1CE4E5B9L + strides[i];
        }
        this.layoutHash = hash ^ (hash >>> 31);
        if (byteExtent > segment.byteSize()) {
            throw new IllegalArgumentException(
                    describe() + " needs " + byteExtent + " bytes but its segment has only " + segment.byteSize());
        }
    }

    /**
     * Allocates a zero-filled, C-ordered tensor from {@code arena}, aligned to 64 bytes.
     *
     * @param arena the arena that owns the memory; the tensor is valid until it is closed
     * @param dataType the element type
     * @param shape the dimensions, each {@code >= 0}
     * @return a new tensor over freshly allocated memory
     * @throws IllegalArgumentException if a dimension is negative or the size overflows a {@code long}
     * @throws IllegalStateException if the arena is closed
     */
    public static Tensor allocate(Arena arena, DataType dataType, long... shape) {
        Objects.requireNonNull(arena, "arena");
        long[] dims = shape.clone();
        long[] strides = contiguousStrides(dims);
        return new Tensor(arena.allocate(byteExtent(dataType, dims, strides), 64), dataType, dims, strides);
    }

    /**
     * Views an existing segment as a C-ordered tensor, without copying. The segment may be larger
     * than the tensor; the tensor starts at its first byte.
     *
     * @param segment native or heap memory, e.g. a memory-mapped file or a buffer owned by another library (heap
     *     memory for every backend but {@link Backend#ONEDNN}: the Java kernels copy a heap tensor to native memory
     *     and back on every call, see docs/performance.md)
     * @param dataType the element type
     * @param shape the dimensions, each {@code >= 0}
     * @return a view of {@code segment}
     * @throws IllegalArgumentException if a dimension is negative, the size overflows a {@code long}, or the
     *     segment is too small for the shape
     */
    public static Tensor of(MemorySegment segment, DataType dataType, long... shape) {
        long[] dims = shape.clone();
        return new Tensor(segment, dataType, dims, contiguousStrides(dims));
    }

    /**
     * Views an existing segment with explicit strides (in elements), without copying.
     *
     * @param segment the memory
     * @param dataType the element type
     * @param shape the dimensions, each {@code >= 0}
     * @param strides the distance in elements between neighbours along each dimension, each {@code >= 0}
     * @return a view of {@code segment}
     * @throws IllegalArgumentException if the ranks differ or an addressed element lies outside the segment
     */
    public static Tensor of(MemorySegment segment, DataType dataType, long[] shape, long[] strides) {
        return new Tensor(segment, dataType, shape.clone(), strides.clone());
    }

    /**
     * Allocates a float32 tensor from {@code arena} and copies {@code values} into it.
     *
     * @param arena the arena that owns the memory
     * @param values the elements in C order; their number must equal the product of {@code shape}
     * @param shape the dimensions
     * @return a new tensor holding a copy of {@code values}
     * @throws IllegalArgumentException if the number of values differs from the product of {@code shape}
     */
    public static Tensor ofFloats(Arena arena, float[] values, long... shape) {
        return ofFloats(arena, DataType.F32, values, shape);
    }

    /**
     * Allocates a C-ordered tensor of any data type from {@code arena} and stores {@code values} in it,
     * each rounded to that type as {@link #copyFrom(float[])} does.
     *
     * @param arena the arena that owns the memory
     * @param dataType the element type
     * @param values the elements in C order; their number must equal the product of {@code shape}
     * @param shape the dimensions
     * @return a new tensor holding {@code values}, rounded to {@code dataType}
     * @throws IllegalArgumentException if the number of values differs from the product of {@code shape}
     */
    public static Tensor ofFloats(Arena arena, DataType dataType, float[] values, long... shape) {
        if (elementCount(shape) != values.length) {
            throw new IllegalArgumentException(
                    values.length + " values do not fill shape " + Arrays.toString(shape) + " (" + dataType + ")");
        }
        return allocate(arena, dataType, shape).copyFrom(values);
    }

    /**
     * Rows {@code first} to {@code first + count - 1} of this tensor seen as a matrix of rows: the view (no
     * copy) of shape {@code [count, d(n-k), ..., d(n-1)]} where the last {@code trailingAxes} axes form a
     * row and the leading axes, flattened in C order, index the rows. How a pipeline walks a tensor, such
     * as a memory-mapped file, a chunk at a time.
     *
     * @param trailingAxes the number k of axes that form a row, {@code 1 <= k <= rank()}
     * @param first the first row
     * @param count the number of rows, {@code >= 0}
     * @return a view of the rows
     * @throws IllegalArgumentException if the rows are out of range, or the leading axes cannot be flattened
     *     into one evenly strided axis (as they can in C order, padded rows included)
     */
    public Tensor rows(int trailingAxes, long first, long count) {
        if (trailingAxes < 1 || trailingAxes > shape.length) {
            throw new IllegalArgumentException(
                    "trailingAxes must be between 1 and the rank " + shape.length + ", got " + trailingAxes);
        }
        int leading = shape.length - trailingAxes;
        long rows = 1;
        for (int axis = 0; axis < leading; axis++) {
            rows *= shape[axis];
        }
        if (first < 0 || count < 0 || first > rows - count) {
            throw new IllegalArgumentException(
                    "rows " + first + " to " + (first + count) + " are outside the " + rows + " rows of " + describe());
        }
        long rowStride = 0; // the stride of the innermost leading axis that has more than one index
        long span = -1; // what the next outer such axis's stride must be to continue it evenly
        for (int axis = leading - 1; axis >= 0; axis--) {
            if (shape[axis] == 1) {
                continue; // a single index: its stride never multiplies anything
            }
            if (span < 0) {
                rowStride = strides[axis];
            } else if (strides[axis] != span) {
                throw new IllegalArgumentException("the leading axes of " + describe()
                        + " are not evenly strided, so its rows cannot be viewed as one axis");
            }
            span = strides[axis] * shape[axis];
        }
        long[] rowShape = new long[trailingAxes + 1];
        long[] rowStrides = new long[trailingAxes + 1];
        rowShape[0] = count;
        rowStrides[0] = rowStride;
        System.arraycopy(shape, leading, rowShape, 1, trailingAxes);
        System.arraycopy(strides, leading, rowStrides, 1, trailingAxes);
        // Within the tensor's extent where it has elements; without any, its strides may be anything.
        long offset = count == 0 || elementCount == 0 ? 0 : first * rowStride * dataType.byteSize();
        return new Tensor(segment.asSlice(Math.min(offset, segment.byteSize())), dataType, rowShape, rowStrides);
    }

    /** {@return the memory this tensor views, starting at its first element} */
    public MemorySegment segment() {
        return segment;
    }

    /** {@return the element type} */
    public DataType dataType() {
        return dataType;
    }

    /** {@return the number of dimensions} */
    public int rank() {
        return shape.length;
    }

    /** {@return a copy of the dimensions} */
    public long[] shape() {
        return shape.clone();
    }

    /**
     * One dimension.
     *
     * @param axis the axis; negative values count from the end, as in PyTorch ({@code -1} is the last)
     * @return the size of that dimension
     * @throws IndexOutOfBoundsException if {@code axis} is not in {@code [-rank, rank)}
     */
    public long dim(int axis) {
        return shape[normalizeAxis(axis)];
    }

    /** {@return a copy of the strides, in elements} */
    public long[] strides() {
        return strides.clone();
    }

    /**
     * One stride, in elements.
     *
     * @param axis the axis; negative values count from the end
     * @return the distance in elements between neighbours along that axis
     * @throws IndexOutOfBoundsException if {@code axis} is not in {@code [-rank, rank)}
     */
    public long stride(int axis) {
        return strides[normalizeAxis(axis)];
    }

    /** {@return the number of elements: the product of the shape} */
    public long elementCount() {
        return elementCount;
    }

    /**
     * {@return the number of bytes from the first element to the end of the last one; 0 when there are no
     * elements}
     */
    public long byteExtent() {
        return byteExtent;
    }

    /**
     * {@return whether the strides are C order, so the elements occupy one dense block} Strides of axes
     * of size 1 do not matter, and a tensor without elements is contiguous.
     */
    public boolean isContiguous() {
        return contiguous;
    }

    private static boolean contiguous(long[] shape, long[] strides, long elementCount) {
        long expected = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            if (shape[i] != 1 && strides[i] != expected) {
                return elementCount == 0;
            }
            expected *= shape[i];
        }
        return true;
    }

    /**
     * Whether this tensor has the given shape.
     *
     * @param other the dimensions to compare with
     * @return whether the rank and every dimension are equal
     */
    public boolean hasShape(long... other) {
        return Arrays.equals(shape, other);
    }

    /**
     * {@return whether every index addresses a different element, as an output tensor needs} Checked with
     * a sufficient condition (each stride, taken in increasing order, spans all the elements of the
     * smaller ones), so an exotic interleaving that never collides may still be reported as overlapping.
     */
    public boolean isNonOverlapping() {
        return nonOverlapping;
    }

    /** Whether this tensor has the shape of {@code data} without its last {@code axes} axes: one element per row. */
    boolean isRowShapeOf(Tensor data, int axes) {
        if (shape.length != data.shape.length - axes) {
            return false;
        }
        for (int i = 0; i < shape.length; i++) {
            if (shape[i] != data.shape[i]) {
                return false;
            }
        }
        return true;
    }

    /** A view of a tensor's memory that {@code owner} owns; one object, so that threads read both or neither. */
    record OwnedView(Thread owner, Tensor view) {}

    OwnedMemory.Kind memoryKind() {
        return memoryKind;
    }

    /** The array this tensor's segment lies in, if it is a writable heap segment; else null. */
    Object heapArray() {
        return heapArray;
    }

    OwnedView ownedView() {
        return ownedView;
    }

    void ownedView(OwnedView view) {
        ownedView = view;
    }

    OwnedView earlierCopy() {
        return earlierCopy;
    }

    void earlierCopy(OwnedView copy) {
        earlierCopy = copy;
    }

    /**
     * {@code tensor}'s data type, shape and strides over no memory that anyone owns (null for null): a layout, for
     * what must not keep the tensor's memory reachable. Never read or written.
     */
    static Tensor layout(Tensor tensor) {
        return tensor == null
                ? null
                : new Tensor(
                        MemorySegment.NULL.reinterpret(tensor.byteExtent),
                        tensor.dataType,
                        tensor.shape,
                        tensor.strides);
    }

    /** The shape itself, not a copy: for panorm's own checks, never to be modified. */
    long[] shapeArray() {
        return shape;
    }

    /** The strides themselves, not a copy: for panorm's own checks, never to be modified. */
    long[] stridesArray() {
        return strides;
    }

    /** A hash of data type, shape and strides: equal layouts hash alike, so a lookup can compare one long first. */
    long layoutHash() {
        return layoutHash;
    }

    /** Whether {@code other} has the same data type, shape and strides. */
    boolean hasSameLayout(Tensor other) {
        return dataType == other.dataType && Arrays.equals(shape, other.shape) && Arrays.equals(strides, other.strides);
    }

    /**
     * Whether {@code other} has the same shape as this tensor.
     *
     * @param other another tensor; its data type and strides do not matter
     * @return whether the rank and every dimension are equal
     */
    public boolean hasSameShape(Tensor other) {
        return Arrays.equals(shape, other.shape);
    }

    /**
     * Copies the elements into a new array, in C order, whatever the strides. bfloat16 and float16
     * values widen to float exactly, except that a signalling NaN comes back quiet.
     *
     * @return the elements
     * @throws IllegalStateException if there are more than {@code Integer.MAX_VALUE - 8} elements, or the
     *     segment's arena is closed
     * @throws WrongThreadException if the segment's arena is confined to another thread
     */
    public float[] toFloatArray() {
        if (elementCount > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException(describe() + " has too many elements for a Java array");
        }
        float[] out = new float[(int) elementCount];
        if (contiguous && dataType == DataType.F32) {
            MemorySegment.copy(segment, FLOAT, 0, out, 0, out.length);
        } else {
            forEachElement((i, offset) -> out[i] = Elements.get(segment, dataType, offset));
        }
        return out;
    }

    /**
     * Stores {@code values} into the elements, in C order, whatever the strides: the inverse of
     * {@link #toFloatArray()}. Each value is rounded to the data type to nearest, ties to even, as
     * {@link LayerNorm} rounds its results: {@link Float#floatToFloat16} for float16, the same rule on
     * the upper 16 bits for bfloat16. As IEEE 754 prescribes, a value from the largest finite one plus
     * half an ulp up becomes infinite (65520 for float16), NaN stays NaN (quiet), and float16 keeps its
     * subnormals (down to 2^-24). int8 rounds the same way and saturates to [-127, 127], as quantized
     * outputs do: infinities and values beyond become -127 or 127, NaN becomes 0.
     *
     * @param values the elements in C order, one per element
     * @return this tensor
     * @throws IllegalArgumentException if the number of values differs from {@link #elementCount()}, the
     *     segment is read-only, or several indices address one element (see {@link #isNonOverlapping()})
     * @throws IllegalStateException if the segment's arena is closed
     * @throws WrongThreadException if the segment's arena is confined to another thread
     */
    public Tensor copyFrom(float[] values) {
        if (values.length != elementCount) {
            throw new IllegalArgumentException(
                    values.length + " values do not fill " + describe() + ", which has " + elementCount + " elements");
        }
        if (segment.isReadOnly()) {
            throw new IllegalArgumentException(describe() + " views a read-only segment and cannot be written");
        }
        if (!nonOverlapping) {
            throw new IllegalArgumentException(
                    describe() + " has several indices on one element and cannot be written");
        }
        if (contiguous && dataType == DataType.F32) {
            MemorySegment.copy(values, 0, segment, FLOAT, 0, values.length);
        } else {
            forEachElement((i, offset) -> Elements.set(segment, dataType, offset, values[i]));
        }
        return this;
    }

    /** Receives an element's position in C order and its offset in the segment, in elements. */
    private interface ElementVisitor {
        void visit(int position, long offset);
    }

    /** Visits every element in C order; the caller has checked that their number fits an int. */
    private void forEachElement(ElementVisitor visitor) {
        long[] index = new long[shape.length];
        long offset = 0;
        for (int i = 0; i < elementCount; i++) {
            visitor.visit(i, offset);
            for (int d = shape.length - 1; d >= 0; d--) { // the next index, like an odometer
                offset += strides[d];
                if (++index[d] < shape[d]) {
                    break;
                }
                offset -= strides[d] * shape[d];
                index[d] = 0;
            }
        }
    }

    /** Describes data type, shape and strides, such as {@code F32[32, 768]}. */
    @Override
    public String toString() {
        return describe();
    }

    String describe() {
        String text = dataType + Arrays.toString(shape);
        return Arrays.equals(strides, contiguousStrides(shape)) ? text : text + " strides " + Arrays.toString(strides);
    }

    private int normalizeAxis(int axis) {
        int normalized = axis < 0 ? axis + shape.length : axis;
        if (normalized < 0 || normalized >= shape.length) {
            throw new IndexOutOfBoundsException("axis " + axis + " out of range for rank " + shape.length);
        }
        return normalized;
    }

    /**
     * The product of the shape (0 where a dimension is, whatever the others'); throws if a dimension is negative or
     * the product overflows.
     */
    private static long elementCount(long[] shape) {
        boolean empty = false;
        for (long dim : shape) {
            if (dim < 0) {
                throw new IllegalArgumentException("negative dimension " + dim + " in shape " + Arrays.toString(shape));
            }
            empty |= dim == 0;
        }
        if (empty) {
            return 0;
        }
        long count = 1;
        for (long dim : shape) {
            try {
                count = Math.multiplyExact(count, dim);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " has more than 2^63 elements");
            }
        }
        return count;
    }

    /** Bytes from the first addressed element to the end of the last one; validates the strides. */
    private static long byteExtent(DataType dataType, long[] shape, long[] strides) {
        if (strides.length != shape.length) {
            throw new IllegalArgumentException("strides " + Arrays.toString(strides)
                    + " do not match the rank of shape " + Arrays.toString(shape));
        }
        for (long stride : strides) { // also where there are no elements: a view of them may have some axes' strides
            if (stride < 0) {
                throw new IllegalArgumentException(
                        "negative stride " + stride + " in strides " + Arrays.toString(strides));
            }
        }
        if (elementCount(shape) == 0) {
            return 0;
        }
        long lastElement = 0;
        try {
            for (int i = 0; i < shape.length; i++) {
                lastElement = Math.addExact(lastElement, Math.multiplyExact(shape[i] - 1, strides[i]));
            }
            return Math.multiplyExact(
                    Math.addExact(lastElement, 1), dataType.byteSize()); // int8: no product to overflow
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " with strides "
                    + Arrays.toString(strides) + " addresses more than 2^63 bytes");
        }
    }

    private static boolean nonOverlapping(long[] shape, long[] strides) {
        if (elementCount(shape) == 0) {
            return true;
        }
        Integer[] order = new Integer[shape.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Long.compare(strides[a], strides[b]));
        long span = 1; // elements covered by the axes taken so far
        for (int axis : order) {
            if (shape[axis] <= 1) {
                continue;
            }
            if (strides[axis] < span) {
                return false;
            }
            span = strides[axis] * shape[axis];
        }
        return true;
    }

    static long[] contiguousStrides(long[] shape) {
        long[] strides = new long[shape.length];
        long stride = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            strides[i] = stride;
            stride *= Math.max(shape[i], 1);
        }
        return strides;
    }
}
