package dev.panorm;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/** Builds tensors of any data type and layout from logical (C-order) values, and reads them back. */
final class Tensors {
    /** The types a norm's data and parameters may have (S8 is only a quantized output). */
    static final DataType[] FLOAT_TYPES = {DataType.F32, DataType.BF16, DataType.F16};

    private Tensors() {}

    /**
     * A tensor of {@code shape} with {@code strides} (elements), holding {@code values} in C order,
     * each rounded to {@code type}. Elements the strides skip hold NaN, so reading padding would show.
     */
    static Tensor make(Arena arena, DataType type, float[] values, long[] shape, long[] strides) {
        long last = 0;
        for (int i = 0; i < shape.length; i++) {
            last += (shape[i] - 1) * strides[i];
        }
        long count = values.length == 0 ? 0 : last + 1;
        MemorySegment segment = arena.allocate(Math.max(1, count) * type.byteSize(), 64);
        for (long i = 0; i < count; i++) {
            Elements.set(segment, type, i, Float.NaN);
        }
        return Tensor.of(segment, type, shape, strides).copyFrom(values);
    }

    /** A C-ordered tensor of {@code type} holding {@code values}, rounded to the type. */
    static Tensor make(Arena arena, DataType type, float[] values, long... shape) {
        return make(arena, type, values, shape, Tensor.contiguousStrides(shape));
    }

    /** A C-ordered tensor of zeros of {@code type} in a Java array of the type's width, as the Java backends take. */
    static Tensor onHeap(DataType type, long... shape) {
        int n = Math.toIntExact(Arrays.stream(shape).reduce(1, Math::multiplyExact));
        MemorySegment heap = switch (type) {
            case F32 -> MemorySegment.ofArray(new float[n]);
            case S8 -> MemorySegment.ofArray(new byte[n]);
            default -> MemorySegment.ofArray(new short[n]);
        };
        return Tensor.of(heap, type, shape);
    }

    /** {@link #make} in {@code arena}, or {@link #onHeap} holding {@code values} when {@code arena} is null. */
    static Tensor makeOrOnHeap(Arena arena, DataType type, float[] values, long... shape) {
        return arena != null
                ? make(arena, type, values, shape)
                : onHeap(type, shape).copyFrom(values);
    }

    /** A tensor of {@code shape} whose rows (the last axis) are followed by {@code padding} unused elements. */
    static Tensor padded(Arena arena, DataType type, float[] values, long[] shape, long padding) {
        long[] strides = new long[shape.length];
        long stride = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            strides[i] = stride;
            stride *= shape[i] + (i == shape.length - 1 ? padding : 0);
        }
        return make(arena, type, values, shape, strides);
    }

    /** The tensor's elements in C order, as float. */
    static float[] read(Tensor tensor) {
        return tensor.toFloatArray();
    }

    /** {@code values} rounded to {@code type}: what a tensor of that type holds. */
    static float[] rounded(DataType type, float[] values) {
        try (Arena arena = Arena.ofConfined()) {
            return Tensor.ofFloats(arena, type, values, values.length).toFloatArray();
        }
    }
}
