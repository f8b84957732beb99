package dev.panorm.arrow;

import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Objects;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.ValueVector;
import org.apache.arrow.vector.ZeroVector;
import org.apache.arrow.vector.complex.FixedSizeListVector;

/**
 * Layer normalization of the embeddings in an Arrow {@link FixedSizeListVector} of float32 (Arrow type
 * {@code FixedSizeList<Float32>[C]}, one embedding per row), computed on the vector's own buffers: the
 * {@link LayerNorm} reads and writes Arrow's memory directly, nothing is copied.
 *
 * <p>The vector's list size must be the {@link LayerNorm}'s normalized size {@code C}; its values are viewed
 * as a C-ordered tensor {@code [rows, normalizedShape...]}. Every buffer is checked before any native code
 * touches it: it must be live (not released) and hold every byte its value count implies, so a wrong size
 * fails here and never reads or writes past an Arrow buffer.
 *
 * <p>Nulls: a null row (list validity bit 0) stays null in the output, and so do its values: validity 0 over
 * value bytes set to 0 (the row is computed with the others and then cleared, so the output never depends on
 * what lay under a null), which Arrow's {@code get} refuses to read as it refuses any null. A null value inside
 * a non-null row has no meaningful normalization and is refused with an {@link IllegalArgumentException} naming
 * the row, before anything is written.
 *
 * <p>Failures change nothing: wrong types, sizes or value counts throw {@link IllegalArgumentException},
 * released buffers and closed allocators {@link IllegalStateException}. Arrow reports a closed allocator
 * only when Java assertions are enabled ({@code -ea}); without them a closed allocator's vectors hold no
 * live buffers anyway (closing it releases them or fails), and released buffers are always refused.
 *
 * <p>Do not close or release the vectors while a call runs: like a shared arena, Arrow's memory can be
 * freed under a running call from another thread, which no check can catch.
 *
 * <p>Guide: {@code docs/arrow.md}.
 */
// Arrow's types in these signatures: panorm requires Arrow static, not transitive (see module-info.java).
@SuppressWarnings("exports")
public final class ArrowLayerNorm {
    /** Arrow's validity bitmaps are little-endian: bit i is bit {@code i % 8} of byte {@code i / 8}. */
    private static final ValueLayout.OfLong BITS = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private ArrowLayerNorm() {}

    /**
     * Normalizes every non-null embedding of {@code vector} in place.
     *
     * @param norm the layer normalization; its normalized size must be the vector's list size
     * @param vector a {@link FixedSizeListVector} whose child is a {@link Float4Vector}
     * @param scale float32 {@code [C]} if the configuration has a scale, else {@code null}
     * @param shift float32 {@code [C]} if the configuration has a shift, else {@code null}
     * @throws IllegalArgumentException if the vector is not {@code FixedSizeList<Float32>[C]}, a non-null row
     *     holds a null value, or {@code scale}/{@code shift} do not fit
     * @throws IllegalStateException if a buffer has been released or an allocator closed, or {@code norm} is closed
     */
    public static void normalizeInPlace(LayerNorm norm, ValueVector vector, Tensor scale, Tensor shift) {
        normalizeInto(norm, vector, vector, scale, shift);
    }

    /**
     * Normalizes every non-null embedding of {@code input} into {@code output}, row by row, and gives
     * {@code output} the null rows of {@code input}. {@code output} may be {@code input} itself (in place);
     * otherwise their memory must not overlap.
     *
     * @param norm the layer normalization; its normalized size must be the vectors' list size
     * @param input a {@link FixedSizeListVector} whose child is a {@link Float4Vector}; read
     * @param output the same type and value count as {@code input}, allocated (e.g. by
     *     {@link FixedSizeListVector#setValueCount}); written
     * @param scale float32 {@code [C]} if the configuration has a scale, else {@code null}
     * @param shift float32 {@code [C]} if the configuration has a shift, else {@code null}
     * @throws IllegalArgumentException if a vector is not {@code FixedSizeList<Float32>[C]}, the value counts
     *     differ, a non-null row of {@code input} holds a null value, or {@code scale}/{@code shift} do not fit
     * @throws IllegalStateException if a buffer has been released or an allocator closed, or {@code norm} is closed
     */
    public static void normalizeInto(
            LayerNorm norm, ValueVector input, ValueVector output, Tensor scale, Tensor shift) {
        Objects.requireNonNull(norm, "norm");
        Embeddings in = Embeddings.of("input", input, norm);
        Embeddings out = input == output ? in : Embeddings.of("output", output, norm);
        if (out.rows != in.rows) {
            throw new IllegalArgumentException(out.name + " has " + out.rows + " rows, " + in.name + " has " + in.rows
                    + "; call output.setValueCount(" + in.rows + ") first");
        }
        in.checkNoNullValueInValidRows();
        // The input is only read: a read-only view makes sure of it. In place, dst must be src itself.
        Tensor dst = out.tensor();
        Tensor src = out == in ? dst : Tensor.of(in.data.asReadOnly(), DataType.F32, in.shape);
        norm.forward(src, dst, scale, shift);
        out.copyNullsFrom(in);
    }

    /**
     * Normalizes every non-null embedding of {@code input} into a new vector from {@code allocator}, with the
     * same field (name, type, metadata) and null rows as {@code input}.
     *
     * @param norm the layer normalization; its normalized size must be the vector's list size
     * @param input a {@link FixedSizeListVector} whose child is a {@link Float4Vector}; read
     * @param allocator where the new vector's buffers come from
     * @param scale float32 {@code [C]} if the configuration has a scale, else {@code null}
     * @param shift float32 {@code [C]} if the configuration has a shift, else {@code null}
     * @return the normalized embeddings; the caller closes it
     * @throws IllegalArgumentException as {@link #normalizeInto}
     * @throws IllegalStateException as {@link #normalizeInto}, or if {@code allocator} is closed
     */
    public static FixedSizeListVector normalizeIntoNew(
            LayerNorm norm, ValueVector input, BufferAllocator allocator, Tensor scale, Tensor shift) {
        Objects.requireNonNull(norm, "norm");
        Embeddings in = Embeddings.of("input", input, norm);
        checkOpen("the new vector would come from allocator", allocator);
        FixedSizeListVector output = (FixedSizeListVector) in.list.getField().createVector(allocator);
        try {
            output.setValueCount(Math.toIntExact(in.rows));
            normalizeInto(norm, input, output, scale, shift);
            return output;
        } catch (Throwable e) {
            output.close();
            throw e;
        }
    }

    /** The checked parts of one vector: its values as a segment of exactly the bytes its rows need. */
    private static final class Embeddings {
        final String name;
        final FixedSizeListVector list;
        final long rows;
        final long size;
        final long[] shape;
        final MemorySegment data;
        final MemorySegment rowValidity;
        final MemorySegment valueValidity;

        private Embeddings(
                String name,
                FixedSizeListVector list,
                long rows,
                long size,
                long[] shape,
                MemorySegment data,
                MemorySegment rowValidity,
                MemorySegment valueValidity) {
            this.name = name;
            this.list = list;
            this.rows = rows;
            this.size = size;
            this.shape = shape;
            this.data = data;
            this.rowValidity = rowValidity;
            this.valueValidity = valueValidity;
        }

        /**
         * Checks that {@code vector} is {@code FixedSizeList<Float32>[C]} with live buffers large enough for its rows.
         */
        static Embeddings of(String role, ValueVector vector, LayerNorm norm) {
            Objects.requireNonNull(vector, role);
            String name = role + " '" + vector.getName() + "'";
            if (!(vector instanceof FixedSizeListVector list)) {
                throw new IllegalArgumentException(
                        name + " is a " + vector.getClass().getSimpleName() + " of type "
                                + vector.getField().getType() + "; panorm normalizes a FixedSizeListVector of float32"
                                + " (FixedSizeList<Float32>[C], one embedding per row)");
            }
            if (!(list.getDataVector() instanceof Float4Vector values)) {
                String child = list.getDataVector() instanceof ZeroVector
                        ? "no child vector"
                        : "values of type " + list.getDataVector().getField().getType() + " ("
                                + list.getDataVector().getClass().getSimpleName() + ")";
                throw new IllegalArgumentException(
                        name + " has " + child + "; panorm needs float32 values (a Float4Vector child)");
            }
            long size = norm.config().normalizedSize();
            if (list.getListSize() != size) {
                throw new IllegalArgumentException(name + " holds lists of " + list.getListSize() + " values, but the "
                        + "LayerNorm normalizes " + size + " (normalizedSize of " + norm.config() + ")");
            }
            long rows = list.getValueCount();
            long count = rows * size;
            if (values.getValueCount() < count) {
                throw new IllegalArgumentException(name + " has " + rows + " rows of " + size + " values but its child"
                        + " holds only " + values.getValueCount() + " values");
            }
            long[] normalizedShape = norm.config().normalizedShape();
            long[] shape = new long[normalizedShape.length + 1];
            shape[0] = rows;
            System.arraycopy(normalizedShape, 0, shape, 1, normalizedShape.length);
            return new Embeddings(
                    name,
                    list,
                    rows,
                    size,
                    shape,
                    segment("the values buffer of " + name, values.getDataBuffer(), count * Float.BYTES),
                    segment("the validity buffer of " + name, list.getValidityBuffer(), bitmapBytes(rows)),
                    segment("the values' validity buffer of " + name, values.getValidityBuffer(), bitmapBytes(count)));
        }

        /** The values as a writable tensor {@code [rows, normalizedShape...]}. */
        Tensor tensor() {
            return Tensor.of(data, DataType.F32, shape);
        }

        /** Refuses a null value in a non-null row: an embedding with a missing component cannot be normalized. */
        void checkNoNullValueInValidRows() {
            for (long row = 0; row < rows; row++) {
                if (bit(rowValidity, row)) {
                    long at = firstUnset(valueValidity, row * size, (row + 1) * size);
                    if (at >= 0) {
                        throw new IllegalArgumentException(name + " row " + row + " is not null but its value "
                                + (at - row * size) + " is; fill or drop the missing values, or make the row null");
                    }
                }
            }
        }

        /**
         * Gives this vector the null rows of {@code source}: a null row gets validity 0 for itself and its
         * values, and values 0; a non-null row validity 1 for itself and its values. Runs of equal rows are
         * written at once.
         */
        void copyNullsFrom(Embeddings source) {
            long row = 0;
            while (row < rows) {
                boolean valid = bit(source.rowValidity, row);
                long end = row + 1;
                while (end < rows && bit(source.rowValidity, end) == valid) {
                    end++;
                }
                setBits(rowValidity, row, end, valid);
                setBits(valueValidity, row * size, end * size, valid);
                if (!valid) {
                    data.asSlice(row * size * Float.BYTES, (end - row) * size * Float.BYTES)
                            .fill((byte) 0);
                }
                row = end;
            }
        }
    }

    /**
     * A segment over the first {@code bytes} of {@code buffer}, after checking that the buffer is live and
     * that many bytes long: what keeps native code inside Arrow's memory.
     */
    private static MemorySegment segment(String what, ArrowBuf buffer, long bytes) {
        if (bytes == 0) {
            return MemorySegment.NULL;
        }
        if (buffer.refCnt() == 0) {
            throw new IllegalStateException(what + " has been released (was the vector or its allocator closed?)");
        }
        if (buffer.capacity() < bytes) {
            throw new IllegalArgumentException(
                    what + " holds " + buffer.capacity() + " bytes, but the vector's" + " value count needs " + bytes);
        }
        checkOpen(what + " belongs to allocator", buffer.getReferenceManager().getAllocator());
        return MemorySegment.ofAddress(buffer.memoryAddress()).reinterpret(bytes);
    }

    /** Arrow's own check, which it makes only with assertions enabled; ours names what is closed. */
    private static void checkOpen(String what, BufferAllocator allocator) {
        Objects.requireNonNull(allocator, what);
        try {
            allocator.assertOpen();
        } catch (IllegalStateException e) {
            throw new IllegalStateException(what + " '" + allocator.getName() + "', which is closed", e);
        }
    }

    private static long bitmapBytes(long bits) {
        return (bits + 7) / 8;
    }

    private static boolean bit(MemorySegment bitmap, long index) {
        return (bitmap.get(ValueLayout.JAVA_BYTE, index >>> 3) & (1 << (index & 7))) != 0;
    }

    /** The first index in {@code [from, to)} whose bit is 0, or -1; 64 bits at a time where it can. */
    private static long firstUnset(MemorySegment bitmap, long from, long to) {
        long i = from;
        while (i < to) {
            if ((i & 63) == 0 && i + 64 <= to && bitmap.get(BITS, i >>> 3) == -1L) {
                i += 64;
            } else if (!bit(bitmap, i)) {
                return i;
            } else {
                i++;
            }
        }
        return -1;
    }

    /** Sets bits {@code [from, to)} to {@code value}: whole bytes at once, the partial ones bit by bit. */
    private static void setBits(MemorySegment bitmap, long from, long to, boolean value) {
        long i = from;
        for (; i < to && (i & 7) != 0; i++) {
            setBit(bitmap, i, value);
        }
        long wholeBytes = (to - i) >>> 3;
        bitmap.asSlice(i >>> 3, wholeBytes).fill(value ? (byte) -1 : 0);
        for (i += wholeBytes << 3; i < to; i++) {
            setBit(bitmap, i, value);
        }
    }

    private static void setBit(MemorySegment bitmap, long index, boolean value) {
        byte old = bitmap.get(ValueLayout.JAVA_BYTE, index >>> 3);
        int mask = 1 << (index & 7);
        bitmap.set(ValueLayout.JAVA_BYTE, index >>> 3, (byte) (value ? old | mask : old & ~mask));
    }
}
