package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Bad input of every kind gets an exception that names the problem, before any native call, and
 * leaves the destination untouched.
 */
class LayerNormValidationTest {
    private static final int C = 16;

    private static void assertRejected(Class<? extends Throwable> type, String fragment, Executable call) {
        Throwable thrown = assertThrows(type, call);
        assertTrue(
                thrown.getMessage().contains(fragment),
                () -> "message '" + thrown.getMessage() + "' should mention '" + fragment + "'");
    }

    /** Runs {@code call} against a fresh operation and tensors; asserts dst was not written. */
    private interface Case {
        void run(LayerNorm norm, Arena arena, Tensor src, Tensor dst, Tensor scale, Tensor shift) throws Throwable;
    }

    private static void expect(Backend backend, Class<? extends Throwable> type, String fragment, Case call) {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), backend)) {
            Tensor src = Tensor.ofFloats(arena, TestData.gaussian(3 * C, 0, 1, 1), 3, C);
            Tensor dst = Tensor.allocate(arena, DataType.F32, 3, C);
            Tensor scale = Tensor.ofFloats(arena, TestData.gaussian(C, 1, 1, 2), C);
            Tensor shift = Tensor.ofFloats(arena, TestData.gaussian(C, 0, 1, 3), C);
            assertRejected(type, fragment, () -> call.run(norm, arena, src, dst, scale, shift));
            assertArrayEquals(new float[3 * C], dst.toFloatArray(), "dst must be untouched");
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void wrongShapes(Backend backend) {
        expect(
                backend,
                IllegalArgumentException.class,
                "src F32[3, 17] must end with the normalized shape [16]",
                (norm, arena, src, dst, scale, shift) ->
                        norm.forward(Tensor.allocate(arena, DataType.F32, 3, C + 1), dst, scale, shift));
        expect(
                backend,
                IllegalArgumentException.class,
                "must have the shape of src",
                (norm, arena, src, dst, scale, shift) ->
                        norm.forward(src, Tensor.allocate(arena, DataType.F32, 4, C), scale, shift));
        expect(
                backend,
                IllegalArgumentException.class,
                "must have the shape of src",
                (norm, arena, src, dst, scale, shift) ->
                        norm.forward(src, Tensor.allocate(arena, DataType.F32, 1, 3, C), scale, shift));
        expect(
                backend,
                IllegalArgumentException.class,
                "scale F32[15] must have shape [16] (the normalized shape)",
                (norm, arena, src, dst, scale, shift) ->
                        norm.forward(src, dst, Tensor.allocate(arena, DataType.F32, C - 1), shift));
        expect(
                backend,
                IllegalArgumentException.class,
                "shift F32[1, 16] must have shape [16]",
                (norm, arena, src, dst, scale, shift) ->
                        norm.forward(src, dst, scale, Tensor.allocate(arena, DataType.F32, 1, C)));
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void wrongDataTypeOrLayout(Backend backend) {
        expect(
                backend,
                IllegalArgumentException.class,
                "scale F32[16] strides [2] must have shape [16] (the normalized shape), contiguous",
                (norm, arena, src, dst, scale, shift) -> norm.forward(
                        src,
                        dst,
                        Tensor.of(arena.allocate(2L * C * 4), DataType.F32, new long[] {C}, new long[] {2}),
                        shift));
        expect(
                backend,
                IllegalArgumentException.class,
                "several indices address one element",
                (norm, arena, src, dst, scale, shift) -> norm.forward(
                        src,
                        Tensor.of(dst.segment(), DataType.F32, new long[] {3, C}, new long[] {1, 1}),
                        scale,
                        shift));
        expect(
                backend,
                IllegalArgumentException.class,
                "must end with the normalized shape [16] (it has fewer axes",
                (norm, arena, src, dst, scale, shift) -> norm.forward(
                        Tensor.allocate(arena, DataType.F32), Tensor.allocate(arena, DataType.F32), scale, shift));
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void scaleAndShiftMustMatchTheConfiguration(Backend backend) {
        expect(
                backend,
                IllegalArgumentException.class,
                "scale is null",
                (norm, arena, src, dst, scale, shift) -> norm.forward(src, dst, null, shift));
        expect(
                backend,
                IllegalArgumentException.class,
                "shift is null",
                (norm, arena, src, dst, scale, shift) -> norm.forward(src, dst, scale, null));
        expect(
                backend,
                IllegalArgumentException.class,
                "scale is null",
                (norm, arena, src, dst, scale, shift) -> norm.forward(src, dst));
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C).withoutAffine(), backend)) {
            Tensor src = Tensor.allocate(arena, DataType.F32, 2, C);
            Tensor gamma = Tensor.allocate(arena, DataType.F32, C);
            assertRejected(IllegalArgumentException.class, "has no scale", () -> norm.forward(src, src, gamma, null));
            assertRejected(IllegalArgumentException.class, "has no shift", () -> norm.forward(src, src, null, gamma));
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void unusableMemory(Backend backend) {
        expect(
                backend,
                IllegalArgumentException.class,
                "dst is read-only",
                (norm, arena, src, dst, scale, shift) ->
                        norm.forward(src, Tensor.of(dst.segment().asReadOnly(), DataType.F32, 3, C), scale, shift));
        expect(
                backend,
                IllegalStateException.class,
                "src's memory has been freed",
                (norm, arena, src, dst, scale, shift) -> {
                    Arena closed = Arena.ofConfined();
                    Tensor gone = Tensor.allocate(closed, DataType.F32, 3, C);
                    closed.close();
                    norm.forward(gone, dst, scale, shift);
                });
        expect(
                backend,
                WrongThreadException.class,
                "scale's memory belongs to a confined arena of another thread",
                (norm, arena, src, dst, scale, shift) -> {
                    AtomicReference<Arena> foreign = new AtomicReference<>();
                    Tensor theirs = CompletableFuture.supplyAsync(() -> {
                                foreign.set(Arena.ofConfined());
                                return Tensor.allocate(foreign.get(), DataType.F32, C);
                            })
                            .get();
                    norm.forward(src, dst, theirs, shift);
                });
    }

    @Test
    void oneDnnNeedsNativeMemoryWhileAutoAndJavaTakeHeapArrays() {
        float[] x = TestData.gaussian(2 * C, 0, 1, 5);
        Tensor heapSrc = Tensor.of(MemorySegment.ofArray(x.clone()), DataType.F32, 2, C);
        Tensor heapDst = Tensor.of(MemorySegment.ofArray(new float[2 * C]), DataType.F32, 2, C);
        LayerNormConfig config = LayerNormConfig.of(C).withoutAffine();
        try (LayerNorm norm = LayerNorm.create(config, Backend.ONEDNN)) {
            assertRejected(
                    IllegalArgumentException.class,
                    "src is a heap segment; oneDNN needs native",
                    () -> norm.forward(heapSrc, heapDst));
        }
        // Heap tensors run in the Java kernels through native copies (AUTO sends them there): a vector access to a heap
        // segment would slow the vector kernels process-wide, and so would the scalar kernels' loops on heap memory.
        for (Backend backend : new Backend[] {Backend.AUTO, Backend.JAVA}) {
            try (LayerNorm norm = LayerNorm.create(config, backend)) {
                norm.forward(heapSrc, heapDst);
                Accuracy.assertForward(Backend.JAVA, x, 2, C, null, null, 1e-5, heapDst.toFloatArray());
                String implementation = norm.implementation(heapSrc, heapDst, null, null);
                String prefix = backend == Backend.AUTO ? "auto: java:vector " : "java:vector ";
                assertTrue(implementation.startsWith(prefix), implementation);
                assertTrue(implementation.endsWith(", heap tensors copied to and from native memory"), implementation);
            }
        }
        try (LayerNorm norm = LayerNorm.create(config, Backend.JAVA)) {
            // A strided one is copied in its layout: to the vector kernels where its rows have unit stride.
            Tensor stridedRows = Tensor.of(
                    MemorySegment.ofArray(new float[4 * C]), DataType.F32, new long[] {2, C}, new long[] {2L * C, 1});
            String implementation = norm.implementation(stridedRows, heapDst, null, null);
            assertTrue(implementation.startsWith("java:vector "), implementation);
            Tensor stridedSrc = Tensor.of(
                    MemorySegment.ofArray(new float[4 * C]), DataType.F32, new long[] {2, C}, new long[] {2L * C, 2});
            norm.forward(stridedSrc, heapDst);
            assertEquals(
                    "java:scalar (the vector kernels take rows with unit stride; src is strided), heap tensors copied to"
                            + " and from native memory",
                    norm.implementation(stridedSrc, heapDst, null, null));
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void overlappingOutputs(Backend backend) {
        expect(
                backend,
                IllegalArgumentException.class,
                "dst partially overlaps src",
                (norm, arena, src, dst, scale, shift) -> {
                    MemorySegment shared = arena.allocate(4L * C * 4);
                    Tensor in = Tensor.of(shared, DataType.F32, 3, C);
                    Tensor out = Tensor.of(shared.asSlice(4L * C), DataType.F32, 3, C);
                    norm.forward(in, out, scale, shift);
                });
        expect(
                backend,
                IllegalArgumentException.class,
                "dst overlaps scale",
                (norm, arena, src, dst, scale, shift) ->
                        norm.forward(src, dst, Tensor.of(dst.segment().asSlice(4L * C), DataType.F32, C), shift));
        expect(
                backend,
                IllegalArgumentException.class,
                "dst overlaps shift",
                (norm, arena, src, dst, scale, shift) ->
                        norm.forward(src, dst, scale, Tensor.of(dst.segment(), DataType.F32, C)));
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void closedOperation(Backend backend) {
        try (Arena arena = Arena.ofConfined()) {
            LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C).withoutAffine(), backend);
            Tensor data = Tensor.allocate(arena, DataType.F32, 2, C);
            norm.forward(data, data);
            norm.close();
            assertDoesNotThrow(norm::close, "closing twice is allowed");
            assertRejected(IllegalStateException.class, "closed", () -> norm.forward(data, data));
            assertRejected(IllegalStateException.class, "closed", () -> norm.implementation(data, data, null, null));
        }
    }

    @Test
    void nullArgumentsAreNamed() {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C).withoutAffine(), Backend.JAVA)) {
            Tensor data = Tensor.allocate(arena, DataType.F32, 2, C);
            assertRejected(NullPointerException.class, "src", () -> norm.forward(null, data));
            assertRejected(NullPointerException.class, "dst", () -> norm.forward(data, null));
        }
        assertRejected(NullPointerException.class, "config", () -> LayerNorm.create(null, Backend.JAVA));
        assertRejected(NullPointerException.class, "backend", () -> LayerNorm.create(LayerNormConfig.of(C), null));
    }

    @ParameterizedTest
    @ValueSource(longs = {0, -1, Long.MIN_VALUE})
    void normalizedSizeMustBePositive(long c) {
        assertRejected(IllegalArgumentException.class, "must have every axis at least 1", () -> LayerNormConfig.of(c));
    }

    @ParameterizedTest
    @ValueSource(doubles = {0, -1e-5, Double.NaN, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY})
    void epsMustBeAPositiveFiniteNumber(double eps) {
        assertRejected(
                IllegalArgumentException.class,
                "eps must be a positive finite number, got " + eps,
                () -> LayerNormConfig.of(C).withEps(eps));
    }

    @ParameterizedTest
    @ValueSource(doubles = {1e-50, 1e-44, 0x1p-127, 0x1.fffffffp-127, 1e39, 0x1.fffffffp127})
    void epsMustLieInFloat32Range(double eps) {
        assertRejected(
                IllegalArgumentException.class,
                "eps must lie within float32's normal range (1.1754944E-38 to 3.4028235E38)"
                        + " because the kernels add it to the variance in float32, got " + eps,
                () -> LayerNormConfig.of(C).withEps(eps));
    }

    @Test
    void configurationDefaultsFollowPyTorch() {
        LayerNormConfig config = LayerNormConfig.of(768);
        assertEquals(1e-5, config.eps());
        assertTrue(config.scale() && config.shift() && !config.rms() && !config.preciseStatistics());
        assertArrayEquals(new long[] {768}, config.normalizedShape());
        assertEquals(LayerNormConfig.of(768).withScale(false).withShift(false), config.withoutAffine());
        LayerNormConfig rms = LayerNormConfig.rms(8, 16);
        assertEquals(0x1p-23, rms.eps(), "torch.finfo(torch.float32).eps, RMSNorm's default");
        assertTrue(rms.rms() && rms.scale() && !rms.shift());
        assertEquals(128, rms.normalizedSize());
        assertEquals(2, rms.normalizedAxes());
    }

    @Test
    void tensorsRejectImpossibleGeometry() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment small = arena.allocate(63);
            assertRejected(
                    IllegalArgumentException.class,
                    "needs 64 bytes but its segment has only 63",
                    () -> Tensor.of(small, DataType.F32, 4, 4));
            assertRejected(
                    IllegalArgumentException.class, "negative dimension", () -> Tensor.of(small, DataType.F32, 2, -1));
            assertRejected(
                    IllegalArgumentException.class,
                    "negative stride",
                    () -> Tensor.of(small, DataType.F32, new long[] {2, 2}, new long[] {-2, 1}));
            assertRejected(
                    IllegalArgumentException.class,
                    "do not match the rank",
                    () -> Tensor.of(small, DataType.F32, new long[] {2, 2}, new long[] {1}));
            assertRejected(
                    IllegalArgumentException.class,
                    "more than 2^63",
                    () -> Tensor.of(small, DataType.F32, 1L << 40, 1L << 40));
            assertRejected(
                    IllegalArgumentException.class,
                    "more than 2^63",
                    () -> Tensor.of(small, DataType.F32, new long[] {2, 2}, new long[] {Long.MAX_VALUE / 2, 1}));
            // The last element's index is Long.MAX_VALUE: one more wraps, and for int8 no product catches it.
            assertRejected(
                    IllegalArgumentException.class,
                    "more than 2^63",
                    () -> Tensor.of(small, DataType.S8, new long[] {2, 2}, new long[] {Long.MAX_VALUE - 1, 1}));
            assertRejected(
                    IllegalArgumentException.class,
                    "do not fill shape",
                    () -> Tensor.ofFloats(arena, new float[5], 2, 3));
            // Without elements too: a view of rows would take its offset from the negative stride.
            assertRejected(
                    IllegalArgumentException.class,
                    "negative stride -3",
                    () -> Tensor.of(small, DataType.F32, new long[] {4, 0}, new long[] {-3, 1}));
            // No elements, whatever the other dimensions: neither too many elements, nor an offset past the memory.
            assertEquals(
                    0, Tensor.of(small, DataType.F32, 1L << 32, 1L << 32, 0).elementCount());
            Tensor empty = Tensor.of(small, DataType.F32, new long[] {4, 0}, new long[] {Long.MAX_VALUE, 1});
            assertEquals(0, empty.rows(1, 2, 1).elementCount());
        }
    }

    /** Tensors for one training step on [3, C]; the case gets them all, and diffSrc must stay untouched. */
    private interface TrainingCase {
        void run(
                LayerNorm norm,
                Arena arena,
                Tensor src,
                Tensor diffDst,
                Tensor mean,
                Tensor variance,
                Tensor scale,
                Tensor diffSrc,
                Tensor diffScale,
                Tensor diffShift)
                throws Throwable;
    }

    private static void expectTraining(Backend backend, String fragment, TrainingCase call) {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), backend)) {
            Tensor src = Tensor.ofFloats(arena, TestData.gaussian(3 * C, 0, 1, 1), 3, C);
            Tensor mean = Tensor.allocate(arena, DataType.F32, 3);
            Tensor variance = Tensor.allocate(arena, DataType.F32, 3);
            Tensor scale = Tensor.ofFloats(arena, TestData.gaussian(C, 1, 1, 2), C);
            Tensor shift = Tensor.ofFloats(arena, TestData.gaussian(C, 0, 1, 3), C);
            norm.forwardTraining(src, Tensor.allocate(arena, DataType.F32, 3, C), scale, shift, mean, variance);
            Tensor diffDst = Tensor.ofFloats(arena, TestData.gaussian(3 * C, 0, 1, 4), 3, C);
            Tensor diffSrc = Tensor.allocate(arena, DataType.F32, 3, C);
            Tensor diffScale = Tensor.allocate(arena, DataType.F32, C);
            Tensor diffShift = Tensor.allocate(arena, DataType.F32, C);
            assertRejected(
                    IllegalArgumentException.class,
                    fragment,
                    () -> call.run(norm, arena, src, diffDst, mean, variance, scale, diffSrc, diffScale, diffShift));
            assertArrayEquals(new float[3 * C], diffSrc.toFloatArray(), "diffSrc must be untouched");
            assertArrayEquals(new float[C], diffScale.toFloatArray(), "diffScale must be untouched");
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void badStatisticsForTraining(Backend backend) {
        expect(
                backend,
                IllegalArgumentException.class,
                "mean F32[4] must have one value per row of src F32[3, 16]",
                (norm, arena, src, dst, scale, shift) -> norm.forwardTraining(
                        src,
                        dst,
                        scale,
                        shift,
                        Tensor.allocate(arena, DataType.F32, 4),
                        Tensor.allocate(arena, DataType.F32, 3)));
        expect(
                backend,
                IllegalArgumentException.class,
                "variance F32[3, 1] must have one value per row",
                (norm, arena, src, dst, scale, shift) -> norm.forwardTraining(
                        src,
                        dst,
                        scale,
                        shift,
                        Tensor.allocate(arena, DataType.F32, 3),
                        Tensor.allocate(arena, DataType.F32, 3, 1)));
        expect(
                backend,
                IllegalArgumentException.class,
                "mean BF16[3] must be F32 and contiguous",
                (norm, arena, src, dst, scale, shift) -> norm.forwardTraining(
                        src,
                        dst,
                        scale,
                        shift,
                        Tensor.allocate(arena, DataType.BF16, 3),
                        Tensor.allocate(arena, DataType.F32, 3)));
        expect(
                backend,
                IllegalArgumentException.class,
                "variance is null",
                (norm, arena, src, dst, scale, shift) ->
                        norm.forwardTraining(src, dst, scale, shift, Tensor.allocate(arena, DataType.F32, 3), null));
        expect(
                backend,
                IllegalArgumentException.class,
                "mean is read-only",
                (norm, arena, src, dst, scale, shift) -> norm.forwardTraining(
                        src,
                        dst,
                        scale,
                        shift,
                        Tensor.of(arena.allocate(12).asReadOnly(), DataType.F32, 3),
                        Tensor.allocate(arena, DataType.F32, 3)));
        expect(
                backend,
                IllegalArgumentException.class,
                "mean overlaps dst",
                (norm, arena, src, dst, scale, shift) -> norm.forwardTraining(
                        src,
                        dst,
                        scale,
                        shift,
                        Tensor.of(dst.segment(), DataType.F32, 3),
                        Tensor.allocate(arena, DataType.F32, 3)));
        expect(
                backend,
                IllegalArgumentException.class,
                "mean overlaps variance",
                (norm, arena, src, dst, scale, shift) -> {
                    Tensor both = Tensor.allocate(arena, DataType.F32, 3);
                    norm.forwardTraining(src, dst, scale, shift, both, both);
                });
        expect(
                backend,
                IllegalArgumentException.class,
                "mean[1] is NaN; statistics must be finite",
                (norm, arena, src, dst, scale, shift) -> norm.forwardWithGlobalStatistics(
                        src,
                        dst,
                        scale,
                        shift,
                        Tensor.ofFloats(arena, new float[] {0, Float.NaN, 0}, 3),
                        Tensor.ofFloats(arena, new float[] {1, 1, 1}, 3)));
        expect(
                backend,
                IllegalArgumentException.class,
                "variance[2] is -0.5; a variance must be finite and non-negative",
                (norm, arena, src, dst, scale, shift) -> norm.forwardWithGlobalStatistics(
                        src,
                        dst,
                        scale,
                        shift,
                        Tensor.ofFloats(arena, new float[3], 3),
                        Tensor.ofFloats(arena, new float[] {1, 1, -0.5f}, 3)));
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void badBackwardArguments(Backend backend) {
        expectTraining(
                backend,
                "diffDst F32[3, 15] must have the shape of src F32[3, 16]",
                (norm, arena, src, dy, mean, var, scale, dx, dScale, dShift) -> norm.backward(
                        Tensor.allocate(arena, DataType.F32, 3, 15), src, mean, var, scale, dx, dScale, dShift));
        expectTraining(
                backend,
                "diffDst F32[2, 16] must have the shape of src F32[3, 16]",
                (norm, arena, src, dy, mean, var, scale, dx, dScale, dShift) -> norm.backward(
                        Tensor.allocate(arena, DataType.F32, 2, C), src, mean, var, scale, dx, dScale, dShift));
        expectTraining(
                backend,
                "diffSrc F32[48] must have the shape of src",
                (norm, arena, src, dy, mean, var, scale, dx, dScale, dShift) -> norm.backward(
                        dy, src, mean, var, scale, Tensor.of(dx.segment(), DataType.F32, 3 * C), dScale, dShift));
        expectTraining(
                backend,
                "this LayerNorm applies a scale (config scale=true) but scale is null",
                (norm, arena, src, dy, mean, var, scale, dx, dScale, dShift) ->
                        norm.backwardData(dy, src, mean, var, null, dx));
        expectTraining(
                backend,
                "this LayerNorm applies a scale (config scale=true) but diffScale is null",
                (norm, arena, src, dy, mean, var, scale, dx, dScale, dShift) ->
                        norm.backward(dy, src, mean, var, scale, dx, null, dShift));
        expectTraining(
                backend,
                "diffShift F32[17] must have shape [16]",
                (norm, arena, src, dy, mean, var, scale, dx, dScale, dShift) -> norm.backward(
                        dy, src, mean, var, scale, dx, dScale, Tensor.allocate(arena, DataType.F32, C + 1)));
        expectTraining(
                backend,
                "mean F32[3, 16] must have one value per row",
                (norm, arena, src, dy, mean, var, scale, dx, dScale, dShift) ->
                        norm.backward(dy, src, src, var, scale, dx, dScale, dShift));
        expectTraining(
                backend,
                "variance[1] is -1.0; a variance must be finite and non-negative",
                (norm, arena, src, dy, mean, var, scale, dx, dScale, dShift) -> norm.backwardDataWithGlobalStatistics(
                        dy, src, mean, Tensor.ofFloats(arena, new float[] {1, -1, 1}, 3), scale, dx));
        expectTraining(
                backend,
                "variance[0] is Infinity; a variance must be finite",
                (norm, arena, src, dy, mean, var, scale, dx, dScale, dShift) -> norm.backwardWithGlobalStatistics(
                        dy,
                        src,
                        mean,
                        Tensor.ofFloats(arena, new float[] {Float.POSITIVE_INFINITY, 1, 1}, 3),
                        scale,
                        dx,
                        dScale,
                        dShift));
        expectTraining(
                backend,
                "mean[0] is NaN",
                (norm, arena, src, dy, mean, var, scale, dx, dScale, dShift) -> norm.backwardWithGlobalStatistics(
                        dy,
                        src,
                        Tensor.ofFloats(arena, new float[] {Float.NaN, 0, 0}, 3),
                        var,
                        scale,
                        dx,
                        dScale,
                        dShift));
        expectTraining(
                backend,
                "diffSrc partially overlaps diffDst",
                (norm, arena, src, dy, mean, var, scale, dx, dScale, dShift) -> {
                    MemorySegment shared = arena.allocate(4L * C * Float.BYTES);
                    norm.backward(
                            Tensor.of(shared, DataType.F32, 3, C),
                            src,
                            mean,
                            var,
                            scale,
                            Tensor.of(shared.asSlice(4L * C), DataType.F32, 3, C),
                            dScale,
                            dShift);
                });
        expectTraining(
                backend,
                "diffSrc overlaps src",
                (norm, arena, src, dy, mean, var, scale, dx, dScale, dShift) ->
                        norm.backward(dy, src, mean, var, scale, src, dScale, dShift));
        expectTraining(
                backend,
                "diffScale overlaps diffShift",
                (norm, arena, src, dy, mean, var, scale, dx, dScale, dShift) ->
                        norm.backward(dy, src, mean, var, scale, dx, dScale, dScale));
        expectTraining(
                backend,
                "diffShift overlaps scale",
                (norm, arena, src, dy, mean, var, scale, dx, dScale, dShift) ->
                        norm.backward(dy, src, mean, var, scale, dx, dScale, scale));
    }
}
