package dev.panorm.bench;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The tensors of one benchmark: a {@code rows x C} input of one data type and every other role of the
 * three passes (scale, shift and statistics float32), filled with seeded data, statistics consistent
 * with the input. Off-heap, 64-byte aligned, in a shared arena (JMH may set up on another thread than it measures on)
 * or, for drivers that run on one thread, a confined one: the Java kernels take a shared arena's memory through views
 * and a downcall that cost about 0.1 us per call (docs/benchmarks.md, "One kind of memory for every loop"). The operation ({@code op}) is layer
 * normalization ({@code layer}), RMS normalization ({@code rms}: no shift, no mean) or layer
 * normalization with precise statistics ({@code precise}).
 */
final class Fixture implements AutoCloseable {
    final long rows;
    final long channels;
    final DataType type;
    final String op;
    final Arena arena;
    final Tensor src, dst, scale, shift, mean, variance, diffDst, diffSrc, diffScale, diffShift;

    Fixture(String shape, String dataType) {
        this(shape, dataType, "layer");
    }

    Fixture(String shape, String dataType, String op) {
        this(shape, dataType, op, Arena.ofShared());
    }

    /** In {@code arena}, which {@link #close()} closes. */
    Fixture(String shape, String dataType, String op, Arena arena) {
        this.arena = arena;
        if (!List.of("layer", "rms", "precise").contains(op)) {
            throw new IllegalArgumentException("op is layer, rms or precise, got " + op);
        }
        this.op = op;
        long[] dims = parseShape(shape);
        rows = dims[0];
        channels = dims[1];
        type = switch (dataType) {
            case "f32" -> DataType.F32;
            case "bf16" -> DataType.BF16;
            case "f16" -> DataType.F16;
            default -> throw new IllegalArgumentException("dtype is f32, bf16 or f16, got " + dataType);
        };
        src = Tensor.allocate(arena, type, rows, channels);
        dst = Tensor.allocate(arena, type, rows, channels);
        diffDst = Tensor.allocate(arena, type, rows, channels);
        diffSrc = Tensor.allocate(arena, type, rows, channels);
        scale = Tensor.allocate(arena, DataType.F32, channels);
        boolean rms = op.equals("rms");
        shift = rms ? null : Tensor.allocate(arena, DataType.F32, channels);
        diffScale = Tensor.allocate(arena, DataType.F32, channels);
        diffShift = rms ? null : Tensor.allocate(arena, DataType.F32, channels);
        mean = rms ? null : Tensor.allocate(arena, DataType.F32, rows);
        variance = Tensor.allocate(arena, DataType.F32, rows);
        SplittableRandom random = new SplittableRandom(20261126);
        fill(src, random, 0.5, 2);
        fill(diffDst, random, 0, 1);
        fill(scale, random, 1, 0.5);
        if (shift != null) {
            fill(shift, random, 0, 0.5);
        }
        try (LayerNorm reference = reference()) {
            reference.forwardTraining(src, dst, scale, shift, mean, variance);
        }
    }

    /** {@code "ROWSxC"} as {rows, C}. */
    static long[] parseShape(String shape) {
        String[] parts = shape.split("x");
        if (parts.length != 2) {
            throw new IllegalArgumentException("a shape is ROWSxC, got " + shape);
        }
        return new long[] {Long.parseLong(parts[0]), Long.parseLong(parts[1])};
    }

    /** What the benchmark computes: layer normalization (scale, shift, eps 1e-5), RMS (scale only), or precise. */
    LayerNormConfig config() {
        return switch (op) {
            case "rms" -> LayerNormConfig.rms(channels);
            case "precise" -> LayerNormConfig.of(channels).withPreciseStatistics(true);
            default -> LayerNormConfig.of(channels);
        };
    }

    /** The scalar Java kernel, which accumulates in double: the results every peer is checked against. */
    LayerNorm reference() {
        return LayerNorm.create(config(), Backend.JAVA_SCALAR);
    }

    /** Bytes a forward pass must read and write at least: src and dst (the memory-traffic floor). */
    long forwardBytes() {
        return 2 * rows * channels * type.byteSize();
    }

    private static void fill(Tensor tensor, SplittableRandom random, double mean, double spread) {
        long n = tensor.elementCount();
        if (tensor.dataType() == DataType.F32) {
            for (long i = 0; i < n; i++) {
                tensor.segment().setAtIndex(ValueLayout.JAVA_FLOAT, i, (float)
                        (mean + spread * (2 * random.nextDouble() - 1)));
            }
        } else if (tensor.dataType() == DataType.BF16) { // the high half of the float's bits (truncation is fine)
            for (long i = 0; i < n; i++) {
                float value = (float) (mean + spread * (2 * random.nextDouble() - 1));
                short bits = tensor.dataType() == DataType.F16
                        ? Float.floatToFloat16(value)
                        : (short) (Float.floatToRawIntBits(value) >>> 16); // bf16: truncation is fine for test data
                tensor.segment().setAtIndex(ValueLayout.JAVA_SHORT, i, bits);
            }
        } else {
            for (long i = 0; i < n; i++) {
                float value = (float) (mean + spread * (2 * random.nextDouble() - 1));
                tensor.segment().setAtIndex(ValueLayout.JAVA_SHORT, i, Float.floatToFloat16(value));
            }
        }
    }

    @Override
    public void close() {
        arena.close();
    }
}
