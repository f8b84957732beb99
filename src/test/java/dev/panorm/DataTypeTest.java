package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every combination of float32, bfloat16 and float16 for the data, the scale and shift, and the
 * gradients, on both backends, against the reference computed from the exact (widened) inputs.
 */
class DataTypeTest {
    private static final int ROWS = 5;
    private static final int C = 96;
    private static final double EPS = 1e-5;

    static Stream<Arguments> forwardCombinations() {
        List<Arguments> cases = new ArrayList<>();
        for (Backend backend : Backend.values()) {
            for (DataType src : Tensors.FLOAT_TYPES) {
                for (DataType dst : Tensors.FLOAT_TYPES) {
                    for (DataType parameters : Tensors.FLOAT_TYPES) {
                        cases.add(Arguments.of(backend, src, dst, parameters));
                    }
                }
            }
        }
        return cases.stream();
    }

    @ParameterizedTest(name = "{0}: src {1}, dst {2}, scale/shift {3}")
    @MethodSource("forwardCombinations")
    void forwardAndStatistics(Backend backend, DataType srcType, DataType dstType, DataType parameterType) {
        float[] x = Tensors.rounded(srcType, TestData.gaussian(ROWS * C, 0.5, 2, 1));
        float[] gamma = Tensors.rounded(parameterType, TestData.gaussian(C, 1, 0.5, 2));
        float[] beta = Tensors.rounded(parameterType, TestData.gaussian(C, 0, 1, 3));
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), backend)) {
            Tensor src = Tensors.make(arena, srcType, x, ROWS, C);
            Tensor dst = Tensor.allocate(arena, dstType, ROWS, C);
            Tensor scale = Tensors.make(arena, parameterType, gamma, C);
            Tensor shift = Tensors.make(arena, parameterType, beta, C);
            norm.forward(src, dst, scale, shift);
            Accuracy.assertForward(backend, x, ROWS, C, gamma, beta, EPS, false, dstType, Tensors.read(dst));

            Tensor mean = Tensor.allocate(arena, DataType.F32, ROWS);
            Tensor variance = Tensor.allocate(arena, DataType.F32, ROWS);
            Tensor trained = Tensor.allocate(arena, dstType, ROWS, C);
            norm.forwardTraining(src, trained, scale, shift, mean, variance);
            Accuracy.assertForward(backend, x, ROWS, C, gamma, beta, EPS, false, dstType, Tensors.read(trained));
            Accuracy.assertStatistics(backend, x, ROWS, C, mean.toFloatArray(), variance.toFloatArray());
            if (srcType == DataType.F32 && dstType == DataType.F32 && parameterType == DataType.F32) {
                Backend ran = norm.lastBackend();
                assertTrue(
                        backend == Backend.AUTO ? ran == Backend.ONEDNN || ran == Backend.JAVA : ran == backend,
                        "float32 never falls back, but " + backend + " ran on " + ran);
            }
        }
    }

    static Stream<Arguments> backwardCombinations() {
        List<Arguments> cases = new ArrayList<>();
        for (Backend backend : Backend.values()) {
            for (DataType src : Tensors.FLOAT_TYPES) {
                for (DataType diffDst : Tensors.FLOAT_TYPES) {
                    for (DataType diffSrc : Tensors.FLOAT_TYPES) {
                        cases.add(Arguments.of(
                                backend, src, diffDst, diffSrc, src == diffDst ? DataType.BF16 : DataType.F32));
                    }
                }
            }
        }
        return cases.stream();
    }

    @ParameterizedTest(name = "{0}: src {1}, diff_dst {2}, diff_src {3}, parameters {4}")
    @MethodSource("backwardCombinations")
    void backward(
            Backend backend, DataType srcType, DataType diffDstType, DataType diffSrcType, DataType parameterType) {
        float[] x = Tensors.rounded(srcType, TestData.gaussian(ROWS * C, -1, 1.5, 4));
        float[] dy = Tensors.rounded(diffDstType, TestData.gaussian(ROWS * C, 0, 1, 5));
        float[] gamma = Tensors.rounded(parameterType, TestData.gaussian(C, 1, 0.5, 6));
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), backend)) {
            Tensor src = Tensors.make(arena, srcType, x, ROWS, C);
            Tensor scale = Tensors.make(arena, parameterType, gamma, C);
            Tensor shift = Tensor.allocate(arena, parameterType, C);
            Tensor mean = Tensor.allocate(arena, DataType.F32, ROWS);
            Tensor variance = Tensor.allocate(arena, DataType.F32, ROWS);
            norm.forwardTraining(src, Tensor.allocate(arena, srcType, ROWS, C), scale, shift, mean, variance);
            Tensor diffSrc = Tensor.allocate(arena, diffSrcType, ROWS, C);
            Tensor diffScale = Tensor.allocate(arena, parameterType, C);
            Tensor diffShift = Tensor.allocate(arena, parameterType, C);
            norm.backward(
                    Tensors.make(arena, diffDstType, dy, ROWS, C),
                    src,
                    mean,
                    variance,
                    scale,
                    diffSrc,
                    diffScale,
                    diffShift);
            Accuracy.assertBackward(
                    backend,
                    dy,
                    x,
                    ROWS,
                    C,
                    mean.toFloatArray(),
                    variance.toFloatArray(),
                    gamma,
                    EPS,
                    false,
                    false,
                    diffSrcType,
                    parameterType,
                    Tensors.read(diffSrc),
                    Tensors.read(diffScale),
                    Tensors.read(diffShift));
        }
    }

    @Test
    void scaleAndShiftOfDifferentTypesFallBackToJava() {
        float[] x = TestData.gaussian(ROWS * C, 0, 1, 7);
        float[] gamma = Tensors.rounded(DataType.BF16, TestData.gaussian(C, 1, 0.5, 8));
        float[] beta = TestData.gaussian(C, 0, 1, 9);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), Backend.ONEDNN)) {
            Tensor src = Tensors.make(arena, DataType.F32, x, ROWS, C);
            Tensor dst = Tensor.allocate(arena, DataType.F32, ROWS, C);
            Tensor scale = Tensors.make(arena, DataType.BF16, gamma, C);
            Tensor shift = Tensors.make(arena, DataType.F32, beta, C);
            norm.forward(src, dst, scale, shift);
            boolean vector = JavaKernels.vectorized(); // the vector kernels take half precision too
            assertEquals(vector ? Backend.JAVA : Backend.JAVA_SCALAR, norm.lastBackend());
            String implementation = norm.implementation(src, dst, scale, shift);
            assertTrue(
                    implementation.startsWith(vector ? "java:vector" : "java:scalar")
                            && implementation.endsWith(
                                    "(oneDNN takes one data type for scale and shift, got BF16 and F32)"),
                    norm.implementation(src, dst, scale, shift));
            Accuracy.assertForward(Backend.JAVA, x, ROWS, C, gamma, beta, EPS, dst.toFloatArray());
            // The same LayerNorm goes back to oneDNN for a combination it takes.
            norm.forward(src, dst, Tensors.make(arena, DataType.F32, gamma, C), shift);
            assertEquals(Backend.ONEDNN, norm.lastBackend());
        }
    }

    @Test
    void theJavaBackendVectorizesEveryDataTypeAndNamesTheStridedTensors() {
        assumeTrue(JavaKernels.vectorized());
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), Backend.JAVA)) {
            for (DataType srcType : Tensors.FLOAT_TYPES) {
                for (DataType dstType : Tensors.FLOAT_TYPES) {
                    for (DataType parameterType : Tensors.FLOAT_TYPES) {
                        Tensor src = Tensor.allocate(arena, srcType, ROWS, C);
                        Tensor dst = Tensor.allocate(arena, dstType, ROWS, C);
                        Tensor parameters = Tensor.allocate(arena, parameterType, C);
                        String implementation = norm.implementation(src, dst, parameters, parameters);
                        assertTrue(implementation.startsWith("java:vector"), implementation);
                    }
                }
            }
            // A window of a wider matrix: the row is strided.
            for (DataType type : Tensors.FLOAT_TYPES) {
                Tensor wide = Tensor.allocate(arena, type, ROWS, 2 * C);
                Tensor strided = Tensor.of(wide.segment(), type, new long[] {ROWS, C}, new long[] {2 * C, 2});
                Tensor scale = Tensor.allocate(arena, type, C);
                assertEquals(
                        "java:scalar (the vector kernels take rows with unit stride; src is strided)",
                        norm.implementation(strided, Tensor.allocate(arena, type, ROWS, C), scale, scale));
            }
        }
    }

    @Test
    void bfloat16RoundsToNearestEven() {
        assertEquals(
                1.0f, Elements.bf16ToFloat(Elements.floatToBf16(1.0f + 0x1p-8f)), "a tie goes to the even neighbour");
        assertEquals(
                1.015625f,
                Elements.bf16ToFloat(Elements.floatToBf16(1.0f + 0x3p-8f)),
                "a tie goes to the even neighbour");
        assertEquals(
                1.0078125f,
                Elements.bf16ToFloat(Elements.floatToBf16(1.0f + 0x1p-8f + 0x1p-20f)),
                "above a tie rounds up");
        assertEquals(-2.0f, Elements.bf16ToFloat(Elements.floatToBf16(-2.0f)));
        assertTrue(Float.isNaN(Elements.bf16ToFloat(Elements.floatToBf16(Float.NaN))));
        assertEquals(Float.POSITIVE_INFINITY, Elements.bf16ToFloat(Elements.floatToBf16(Float.POSITIVE_INFINITY)));
        assertEquals(
                Float.POSITIVE_INFINITY,
                Elements.bf16ToFloat(Elements.floatToBf16(Float.MAX_VALUE)),
                "the largest float is past bfloat16's largest finite value plus half an ulp");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment half = arena.allocate(2);
            Elements.set(half, DataType.F16, 0, 1.0f + 0x1p-11f);
            assertEquals(1.0f, Elements.get(half, DataType.F16, 0), "float16 ties go to even too");
        }
    }
}
