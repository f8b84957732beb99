package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.BiConsumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * What every backend's residual add + norm and int8 output must do: {@code sum} exactly the float32 sum
 * {@code (x + r) + bias}; {@code dst} the norm of that sum within {@link Accuracy}'s tolerance; int8 output
 * {@code q * scale} within {@code scale / 2} of the float64 reference plus the float32 bound (and
 * {@code 2^-15 * scale} for the reciprocal, see {@link Quantize}); the backward pass as
 * {@link LayerNorm#backward} on the sum plus the incoming gradient. Subclassed once per backend. oneDNN has
 * no fused primitive: {@link Backend#ONEDNN} composes a binary add with its norm, and runs int8 output and
 * in-place gradients in the Java kernels ({@link #assertRanOn}).
 */
abstract class FusedContract {
    private static final double EPS = 1e-5;

    abstract Backend backend();

    /** Float32 fused operations run on the backend named (AUTO: either); {@link Backend#ONEDNN}'s others in Java. */
    private void assertRanOn(LayerNorm norm) {
        Contracts.assertRanOn(backend(), norm);
    }

    /** A fused call {@link Backend#ONEDNN} hands to the Java kernel whole (int8 output, an in-place gradient). */
    private void assertRanInJava(LayerNorm norm) {
        assertRanOn(norm, true);
    }

    private void assertRanOn(LayerNorm norm, boolean javaOnOneDnn) {
        Contracts.assertRanOn(backend() == Backend.ONEDNN && javaOnOneDnn ? Backend.JAVA : backend(), norm);
    }

    /** The float32 sum the operation is defined on: {@code (x + r) + bias}. */
    static float[] sum(float[] x, float[] r, float[] bias, int c) {
        float[] s = new float[x.length];
        for (int i = 0; i < s.length; i++) {
            s[i] = bias == null ? x[i] + r[i] : x[i] + r[i] + bias[i % c];
        }
        return s;
    }

    static Stream<Arguments> shapes() {
        return Contracts.shapes(new int[] {1, 5, 67}, new int[] {1, 3}, new int[] {1, 2});
    }

    private static float[] gaussianOrNull(boolean present, int n, double mean, double std, long seed) {
        return present ? TestData.gaussian(n, mean, std, seed) : null;
    }

    @ParameterizedTest(name = "[{0}, {1}] scale={2} shift={3}")
    @MethodSource("shapes")
    void forwardMatchesReference(int rows, int c, boolean scale, boolean shift) {
        for (boolean rms : new boolean[] {false, true}) {
            long seed = 31L * rows + c + (rms ? 7 : 0);
            float[] x = TestData.gaussian(rows * c, 1, 2, seed);
            float[] r = TestData.gaussian(rows * c, -0.5, 1, seed + 1);
            float[] bias = gaussianOrNull(scale, c, 0, 1, seed + 2); // with and without bias, along the grid
            float[] gamma = gaussianOrNull(scale, c, 1, 0.5, seed + 3);
            float[] beta = gaussianOrNull(shift, c, 0, 1, seed + 4);
            LayerNormConfig config = (rms ? LayerNormConfig.rms(c) : LayerNormConfig.of(c))
                    .withEps(EPS)
                    .withScale(scale)
                    .withShift(shift);
            float[] s = sum(x, r, bias, c);
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(config, backend())) {
                Tensor sumOut = Tensor.allocate(arena, DataType.F32, rows, c);
                Tensor dst = Tensor.allocate(arena, DataType.F32, rows, c);
                for (boolean keepSum : new boolean[] {true, false}) {
                    norm.forwardResidual(
                            Tensor.ofFloats(arena, x, rows, c),
                            Tensor.ofFloats(arena, r, rows, c),
                            bias == null ? null : Tensor.ofFloats(arena, bias, c),
                            keepSum ? sumOut : null,
                            dst,
                            gamma == null ? null : Tensor.ofFloats(arena, gamma, c),
                            beta == null ? null : Tensor.ofFloats(arena, beta, c));
                    assertRanOn(norm);
                    Accuracy.assertForward(
                            backend(), s, rows, c, gamma, beta, EPS, rms, DataType.F32, dst.toFloatArray());
                }
                assertArrayEquals(s, sumOut.toFloatArray(), 0f, "sum is the float32 (x + r) + bias");
            }
        }
    }

    @Test
    void stridedViewsAndHalfPrecision() {
        int rows = 7;
        int c = 129;
        float[] x = TestData.gaussian(rows * c, 3, 2, 1);
        float[] r = TestData.gaussian(rows * c, 0, 1, 2);
        float[] gamma = TestData.gaussian(c, 1, 0.5, 3);
        float[] beta = TestData.gaussian(c, 0, 1, 4);
        long[] shape = {rows, c};
        for (long columnStride : new long[] {1, 2}) { // 2: every other element, the scalar path
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend())) {
                long[] strides = {c * columnStride + 3, columnStride};
                Tensor sumOut = Tensors.make(arena, DataType.F32, new float[rows * c], shape, strides);
                Tensor dst = Tensors.make(arena, DataType.F32, new float[rows * c], shape, strides);
                norm.forwardResidual(
                        Tensors.make(arena, DataType.F32, x, shape, strides),
                        Tensors.padded(arena, DataType.F32, r, shape, 5),
                        null,
                        sumOut,
                        dst,
                        Tensor.ofFloats(arena, gamma, c),
                        Tensor.ofFloats(arena, beta, c));
                float[] s = sum(x, r, null, c);
                assertArrayEquals(s, sumOut.toFloatArray(), 0f);
                Accuracy.assertForward(backend(), s, rows, c, gamma, beta, EPS, dst.toFloatArray());
            }
        }
        // bf16 data: s is rounded to bf16 as stored, and y is the norm of the stored s
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend())) {
            Tensor xs = Tensors.make(arena, DataType.BF16, x, shape);
            Tensor rs = Tensors.make(arena, DataType.BF16, r, shape);
            Tensor sumOut = Tensor.allocate(arena, DataType.BF16, shape);
            Tensor dst = Tensor.allocate(arena, DataType.F32, shape);
            norm.forwardResidual(
                    xs, rs, null, sumOut, dst, Tensor.ofFloats(arena, gamma, c), Tensor.ofFloats(arena, beta, c));
            float[] s = Tensors.rounded(DataType.BF16, sum(xs.toFloatArray(), rs.toFloatArray(), null, c));
            assertArrayEquals(s, sumOut.toFloatArray(), 0f);
            Accuracy.assertForward(backend(), s, rows, c, gamma, beta, EPS, dst.toFloatArray());
        }
    }

    /**
     * bf16 and f16 data (x, r, s, y, dy, ds, dx), with scale, shift and bias in float32 or a half type, on odd
     * shapes: the forward pass with and without s, training, quantized output and backward with an incoming
     * gradient. s is the float32 {@code (x + r) + bias} rounded to s's type, bit for bit, and y the norm of s as
     * stored; without s, the norm of the float32 sum. (rows, c, data type, parameters' type, y's type).
     */
    static Stream<Arguments> halfPrecisionCases() {
        int[][] shapes = {{1, 1}, {5, 3}, {7, 129}, {3, 4096}};
        DataType[] parameterTypes = {DataType.F32, DataType.BF16, DataType.F16};
        Stream.Builder<Arguments> cases = Stream.builder();
        int k = 0;
        for (int[] shape : shapes) {
            for (DataType type : new DataType[] {DataType.BF16, DataType.F16}) {
                DataType parameters = parameterTypes[k % parameterTypes.length];
                DataType yType = k % 4 == 3 ? DataType.F32 : type; // half in, float out too
                cases.add(Arguments.of(shape[0], shape[1], type, parameters, yType));
                k++;
            }
        }
        return cases.build();
    }

    /** Half-precision calls: on JAVA and JAVA_SCALAR, that backend; ONEDNN hands some to Java, AUTO chooses. */
    private void assertHalfRanOn(LayerNorm norm) {
        Backend ran = norm.lastBackend();
        Backend java = JavaKernels.vectorized() ? Backend.JAVA : Backend.JAVA_SCALAR;
        switch (backend()) {
            case JAVA, JAVA_SCALAR -> Contracts.assertRanOn(backend(), norm);
            case ONEDNN, AUTO -> assertTrue(ran == Backend.ONEDNN || ran == java, backend() + " ran " + ran);
        }
    }

    @ParameterizedTest(name = "[{0}, {1}] {2}, parameters {3}, y {4}")
    @MethodSource("halfPrecisionCases")
    void halfPrecisionMatchesTheReference(int rows, int c, DataType type, DataType parameters, DataType yType) {
        for (boolean rms : new boolean[] {false, true}) {
            long seed = 41L * rows + c + type.ordinal() + (rms ? 5 : 0);
            LayerNormConfig config = (rms ? LayerNormConfig.rms(c) : LayerNormConfig.of(c))
                    .withEps(EPS)
                    .withShift(true);
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(config, backend())) {
                Tensor x = Tensors.make(arena, type, TestData.gaussian(rows * c, 1, 2, seed), rows, c);
                Tensor r = Tensors.make(arena, type, TestData.gaussian(rows * c, -0.5, 1, seed + 1), rows, c);
                Tensor bias = Tensors.make(arena, parameters, TestData.gaussian(c, 0, 1, seed + 2), c);
                Tensor gamma = Tensors.make(arena, parameters, TestData.gaussian(c, 1, 0.5, seed + 3), c);
                Tensor beta = Tensors.make(arena, parameters, TestData.gaussian(c, 0, 1, seed + 4), c);
                float[] g = gamma.toFloatArray();
                float[] b = beta.toFloatArray();
                float[] exact = sum(x.toFloatArray(), r.toFloatArray(), bias.toFloatArray(), c); // float32
                float[] s = Tensors.rounded(type, exact); // as a tensor of the data type stores it
                Tensor sumOut = Tensor.allocate(arena, type, rows, c);
                Tensor dst = Tensor.allocate(arena, yType, rows, c);

                norm.forwardResidual(x, r, bias, sumOut, dst, gamma, beta);
                assertHalfRanOn(norm);
                assertArrayEquals(s, sumOut.toFloatArray(), 0f, "sum is the float32 (x + r) + bias, rounded");
                Accuracy.assertForward(backend(), s, rows, c, g, b, EPS, rms, yType, dst.toFloatArray());
                norm.forwardResidual(x, r, bias, null, dst, gamma, beta); // s stays float32
                assertHalfRanOn(norm);
                Accuracy.assertForward(backend(), exact, rows, c, g, b, EPS, rms, yType, dst.toFloatArray());

                Tensor q = Tensor.allocate(arena, DataType.S8, rows, c);
                Tensor scales = Tensor.allocate(arena, DataType.F32, rows);
                norm.forwardQuantized(x, r, bias, sumOut, q, gamma, beta, scales);
                assertHalfRanOn(norm);
                assertArrayEquals(s, sumOut.toFloatArray(), 0f);
                assertQuantized(backend(), s, rows, c, g, b, rms, bytes(q), scales.toFloatArray(), 0);

                Tensor mean = rms ? null : Tensor.allocate(arena, DataType.F32, rows);
                Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
                sumOut.segment().fill((byte) 0);
                norm.forwardResidualTraining(x, r, bias, sumOut, dst, gamma, beta, mean, variance);
                assertHalfRanOn(norm);
                assertArrayEquals(s, sumOut.toFloatArray(), 0f);
                Accuracy.assertForward(backend(), s, rows, c, g, b, EPS, rms, yType, dst.toFloatArray());
                if (!rms) {
                    Accuracy.assertStatistics(backend(), s, rows, c, mean.toFloatArray(), variance.toFloatArray());
                }

                Tensor dy = Tensors.make(arena, type, TestData.gaussian(rows * c, 0, 1, seed + 5), rows, c);
                Tensor ds = Tensors.make(arena, type, TestData.gaussian(rows * c, 0, 1, seed + 6), rows, c);
                Tensor dx = Tensor.allocate(arena, type, rows, c);
                Tensor dGamma = Tensor.allocate(arena, parameters, c);
                Tensor dBeta = Tensor.allocate(arena, parameters, c);
                norm.backwardResidual(dy, null, sumOut, mean, variance, gamma, dx, dGamma, dBeta);
                assertHalfRanOn(norm);
                float[] plain = dx.toFloatArray();
                // The reference's gradients of s plus the incoming one (null: none) against the call's outputs.
                BiConsumer<float[], float[]> assertGradients = (incoming, got) -> Accuracy.assertBackward(
                        backend(),
                        dy.toFloatArray(),
                        s,
                        rows,
                        c,
                        mean == null ? null : mean.toFloatArray(),
                        variance.toFloatArray(),
                        g,
                        EPS,
                        false,
                        rms,
                        type,
                        parameters,
                        incoming,
                        got,
                        dGamma.toFloatArray(),
                        dBeta.toFloatArray());
                assertGradients.accept(null, plain);
                norm.backwardResidual(dy, ds, sumOut, mean, variance, gamma, dx, dGamma, dBeta);
                assertHalfRanOn(norm);
                assertAddedIncomingGradient(type, plain, ds.toFloatArray(), dx.toFloatArray());

                // An incoming gradient that cancels the norm's: dx is what is left, rounded once in Java; oneDNN's
                // composition rounds the norm's gradient first, as PyTorch's autograd does (docs/accuracy.md).
                float[] opposite = new float[plain.length];
                for (int i = 0; i < plain.length; i++) {
                    opposite[i] = -plain[i];
                }
                Tensor cancelling = Tensors.make(arena, type, opposite, rows, c);
                norm.backwardResidual(dy, cancelling, sumOut, mean, variance, gamma, dx, dGamma, dBeta);
                assertHalfRanOn(norm);
                assertGradients.accept(opposite, dx.toFloatArray());
            }
        }
    }

    /**
     * s written over x or r, y over r or x, on float32 data and on bf16 and f16, which the Java kernel widens into
     * float rows first. A half-precision s is the float32 sum rounded; y the norm of s as stored, or without s of
     * the float32 sum.
     */
    @ParameterizedTest(name = "{0}")
    @EnumSource(
            value = DataType.class,
            names = {"F32", "BF16", "F16"})
    void worksInPlace(DataType type) {
        int rows = 9;
        int c = 768;
        float[] gamma = TestData.gaussian(c, 1, 1, 14);
        float[] beta = TestData.gaussian(c, 0, 1, 15);
        float[] bias = TestData.gaussian(c, 0, 1, 13);
        // (sum, dst) aliases: 0 = sum is x, 1 = sum is r, 2 = sum is x and dst is r, 3 = dst is x, no sum
        for (int mode = 0; mode < 4; mode++) {
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend())) {
                Tensor xs = Tensors.make(arena, type, TestData.gaussian(rows * c, 0.5, 2, 11), rows, c);
                Tensor rs = Tensors.make(arena, type, TestData.gaussian(rows * c, 0, 1, 12), rows, c);
                float[] exact = sum(xs.toFloatArray(), rs.toFloatArray(), bias, c);
                float[] s = Tensors.rounded(type, exact);
                Tensor sumOut = mode == 0 || mode == 2 ? xs : mode == 1 ? rs : null;
                Tensor dst = mode == 2 ? rs : mode == 3 ? xs : Tensor.allocate(arena, type, rows, c);
                norm.forwardResidual(
                        xs,
                        rs,
                        Tensor.ofFloats(arena, bias, c),
                        sumOut,
                        dst,
                        Tensor.ofFloats(arena, gamma, c),
                        Tensor.ofFloats(arena, beta, c));
                if (type == DataType.F32) {
                    assertRanOn(norm);
                } else {
                    assertHalfRanOn(norm);
                }
                if (sumOut != null) {
                    assertArrayEquals(s, sumOut.toFloatArray(), 0f, "mode " + mode);
                }
                Accuracy.assertForward(
                        backend(),
                        sumOut != null ? s : exact,
                        rows,
                        c,
                        gamma,
                        beta,
                        EPS,
                        false,
                        type,
                        dst.toFloatArray());
            }
        }
    }

    /** The backward pass on bf16 and f16 data with its incoming gradient ds written over by dx. */
    @ParameterizedTest(name = "{0}")
    @EnumSource(
            value = DataType.class,
            names = {"BF16", "F16"})
    void halfPrecisionBackwardWorksInPlace(DataType type) {
        int rows = 9;
        int c = 768;
        float[] gamma = TestData.gaussian(c, 1, 1, 14);
        float[] beta = TestData.gaussian(c, 0, 1, 15);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend());
                LayerNorm java = LayerNorm.create(LayerNormConfig.of(c), Backend.JAVA)) {
            Tensor sumOut = Tensors.make(arena, type, TestData.gaussian(rows * c, 0.5, 2, 16), rows, c);
            Tensor mean = Tensor.allocate(arena, DataType.F32, rows);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
            Tensor g = Tensor.ofFloats(arena, gamma, c);
            java.forwardTraining(
                    sumOut, Tensor.allocate(arena, type, rows, c), g, Tensor.ofFloats(arena, beta, c), mean, variance);
            Tensor dy = Tensors.make(arena, type, TestData.gaussian(rows * c, 0, 1, 17), rows, c);
            Tensor ds = Tensors.make(arena, type, TestData.gaussian(rows * c, 0, 1, 18), rows, c);
            float[] dsValues = ds.toFloatArray();
            Tensor dx = Tensor.allocate(arena, type, rows, c);
            // In place, the Java kernel runs it (on AUTO and ONEDNN too): its own norm gradient is the base.
            LayerNorm base = backend() == Backend.ONEDNN || backend() == Backend.AUTO ? java : norm;
            Tensor dGamma = Tensor.allocate(arena, DataType.F32, c);
            Tensor dBeta = Tensor.allocate(arena, DataType.F32, c);
            base.backwardResidual(dy, null, sumOut, mean, variance, g, dx, dGamma, dBeta);
            norm.backwardResidual(dy, ds, sumOut, mean, variance, g, ds, dGamma, dBeta);
            assertRanInJava(norm);
            assertAddedIncomingGradient(type, dx.toFloatArray(), dsValues, ds.toFloatArray());
        }
    }

    /**
     * Half-precision rows apart in memory (each row padded) give the same bits as packed rows, forward with and
     * without s and backward with ds, in the Java kernels (oneDNN may take one layout and not the other).
     */
    @ParameterizedTest(name = "{0}")
    @EnumSource(
            value = DataType.class,
            names = {"BF16", "F16"})
    void halfPrecisionPaddedRowsMatchPackedOnes(DataType type) {
        assumeTrue(backend() == Backend.JAVA || backend() == Backend.JAVA_SCALAR, "bits compared in Java only");
        int rows = 5;
        int c = 70; // a vector tail too
        long[] shape = {rows, c};
        float[] x = TestData.gaussian(rows * c, 1, 2, 31);
        float[] r = TestData.gaussian(rows * c, 0, 1, 32);
        float[] dy = TestData.gaussian(rows * c, 0, 1, 33);
        float[] ds = TestData.gaussian(rows * c, 0, 1, 34);
        float[][][] results = new float[2][][];
        for (int padding : new int[] {0, 5}) {
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend())) {
                Tensor gamma = Tensor.ofFloats(arena, TestData.gaussian(c, 1, 0.5, 35), c);
                Tensor beta = Tensor.ofFloats(arena, TestData.gaussian(c, 0, 1, 36), c);
                Tensor sum = Tensors.padded(arena, type, new float[rows * c], shape, padding);
                Tensor y = Tensors.padded(arena, type, new float[rows * c], shape, padding);
                Tensor yNoSum = Tensors.padded(arena, type, new float[rows * c], shape, padding);
                Tensor mean = Tensor.allocate(arena, DataType.F32, rows);
                Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
                Tensor xs = Tensors.padded(arena, type, x, shape, padding);
                Tensor rs = Tensors.padded(arena, type, r, shape, padding);
                norm.forwardResidualTraining(xs, rs, null, sum, y, gamma, beta, mean, variance);
                norm.forwardResidual(xs, rs, null, null, yNoSum, gamma, beta);
                Tensor dx = Tensors.padded(arena, type, new float[rows * c], shape, padding);
                Tensor dGamma = Tensor.allocate(arena, DataType.F32, c);
                Tensor dBeta = Tensor.allocate(arena, DataType.F32, c);
                norm.backwardResidual(
                        Tensors.padded(arena, type, dy, shape, padding),
                        Tensors.padded(arena, type, ds, shape, padding),
                        sum,
                        mean,
                        variance,
                        gamma,
                        dx,
                        dGamma,
                        dBeta);
                results[padding == 0 ? 0 : 1] = new float[][] {
                    sum.toFloatArray(),
                    y.toFloatArray(),
                    yNoSum.toFloatArray(),
                    dx.toFloatArray(),
                    dGamma.toFloatArray(),
                    dBeta.toFloatArray()
                };
            }
        }
        String[] names = {"s", "y", "y without s", "dx", "dGamma", "dBeta"};
        for (int k = 0; k < names.length; k++) {
            assertArrayEquals(results[0][k], results[1][k], 0f, names[k]);
        }
    }

    /**
     * Half-precision rows holding a NaN or an infinity: s keeps them, rounded as a tensor of the type stores them,
     * their rows of y are NaN, and the finite rows between them are normalized as usual.
     */
    @ParameterizedTest(name = "{0}")
    @EnumSource(
            value = DataType.class,
            names = {"BF16", "F16"})
    void halfPrecisionRowsWithNonFiniteValues(DataType type) {
        int rows = 4;
        int c = 100; // a vector tail too
        float[] xValues = TestData.gaussian(rows * c, 0, 1, 21);
        xValues[3] = Float.NaN;
        xValues[2 * c + c - 1] = Float.POSITIVE_INFINITY; // in the tail
        float[] gamma = TestData.gaussian(c, 1, 0.5, 22);
        float[] beta = TestData.gaussian(c, 0, 1, 23);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend())) {
            Tensor x = Tensors.make(arena, type, xValues, rows, c);
            Tensor r = Tensors.make(arena, type, TestData.gaussian(rows * c, 0, 1, 24), rows, c);
            float[] s = Tensors.rounded(type, sum(x.toFloatArray(), r.toFloatArray(), null, c));
            Tensor sumOut = Tensor.allocate(arena, type, rows, c);
            Tensor dst = Tensor.allocate(arena, type, rows, c);
            norm.forwardResidual(
                    x, r, null, sumOut, dst, Tensor.ofFloats(arena, gamma, c), Tensor.ofFloats(arena, beta, c));
            assertHalfRanOn(norm);
            assertArrayEquals(s, sumOut.toFloatArray(), 0f);
            float[] y = dst.toFloatArray();
            for (int row : new int[] {0, 2}) {
                for (int i = 0; i < c; i++) {
                    assertTrue(Float.isNaN(y[row * c + i]), "row " + row + ", y[" + i + "] = " + y[row * c + i]);
                }
            }
            for (int row : new int[] {1, 3}) {
                Accuracy.assertForward(
                        backend(),
                        Arrays.copyOfRange(s, row * c, (row + 1) * c),
                        1,
                        c,
                        gamma,
                        beta,
                        EPS,
                        false,
                        type,
                        Arrays.copyOfRange(y, row * c, (row + 1) * c));
            }
        }
    }

    @ParameterizedTest(name = "[{0}, {1}] scale={2} shift={3}")
    @MethodSource("shapes")
    void trainingAndBackwardMatchTheReference(int rows, int c, boolean scale, boolean shift) {
        for (boolean rms : new boolean[] {false, true}) {
            long seed = 17L * rows + c + (rms ? 3 : 0);
            float[] x = TestData.gaussian(rows * c, 1, 2, seed);
            float[] r = TestData.gaussian(rows * c, 0, 1, seed + 1);
            float[] gamma = gaussianOrNull(scale, c, 1, 0.5, seed + 2);
            float[] dyValues = TestData.gaussian(rows * c, 0, 1, seed + 3);
            float[] dsValues = TestData.gaussian(rows * c, 0, 1, seed + 4);
            LayerNormConfig config = (rms ? LayerNormConfig.rms(c) : LayerNormConfig.of(c))
                    .withEps(EPS)
                    .withScale(scale)
                    .withShift(shift);
            float[] s = sum(x, r, null, c);
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(config, backend())) {
                Tensor g = gamma == null ? null : Tensor.ofFloats(arena, gamma, c);
                Tensor beta = shift ? Tensor.ofFloats(arena, TestData.gaussian(c, 0, 1, seed + 5), c) : null;
                Tensor sumOut = Tensor.allocate(arena, DataType.F32, rows, c);
                Tensor dst = Tensor.allocate(arena, DataType.F32, rows, c);
                Tensor mean = rms ? null : Tensor.allocate(arena, DataType.F32, rows);
                Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
                norm.forwardResidualTraining(
                        Tensor.ofFloats(arena, x, rows, c),
                        Tensor.ofFloats(arena, r, rows, c),
                        null,
                        sumOut,
                        dst,
                        g,
                        beta,
                        mean,
                        variance);
                assertRanOn(norm);
                assertArrayEquals(s, sumOut.toFloatArray(), 0f);
                if (!rms) {
                    Accuracy.assertStatistics(backend(), s, rows, c, mean.toFloatArray(), variance.toFloatArray());
                }
                Tensor dy = Tensor.ofFloats(arena, dyValues, rows, c);
                Tensor dx = Tensor.allocate(arena, DataType.F32, rows, c);
                Tensor dGamma = scale ? Tensor.allocate(arena, DataType.F32, c) : null;
                Tensor dBeta = shift ? Tensor.allocate(arena, DataType.F32, c) : null;
                // Without a scale oneDNN sums RMS backward's rows by a reduction, which it refuses over one element.
                boolean oneDnnRefuses = rms && c == 1 && !scale;
                norm.backwardResidual(dy, null, sumOut, mean, variance, g, dx, dGamma, dBeta);
                assertRanOn(norm, oneDnnRefuses);
                float[] plain = dx.toFloatArray();
                Accuracy.assertBackward(
                        backend(),
                        dyValues,
                        s,
                        rows,
                        c,
                        mean == null ? null : mean.toFloatArray(),
                        variance.toFloatArray(),
                        gamma,
                        EPS,
                        false,
                        rms,
                        DataType.F32,
                        DataType.F32,
                        plain,
                        dGamma == null ? null : dGamma.toFloatArray(),
                        dBeta == null ? null : dBeta.toFloatArray());
                // With an incoming gradient: dx = the norm's gradient + ds, one more rounding; then in place in ds.
                Tensor ds = Tensor.ofFloats(arena, dsValues, rows, c);
                norm.backwardResidual(dy, ds, sumOut, mean, variance, g, dx, dGamma, dBeta);
                assertRanOn(norm, oneDnnRefuses);
                assertAddedIncomingGradient(plain, dsValues, dx.toFloatArray());
                float[] inPlaceBase = plain;
                // In place, the Java kernel runs it (on AUTO and ONEDNN too): its own norm gradient.
                if (backend() == Backend.ONEDNN || backend() == Backend.AUTO) {
                    try (LayerNorm java = LayerNorm.create(config, Backend.JAVA)) {
                        java.backwardResidual(dy, null, sumOut, mean, variance, g, dx, dGamma, dBeta);
                        inPlaceBase = dx.toFloatArray();
                    }
                }
                norm.backwardResidual(dy, ds, sumOut, mean, variance, g, ds, dGamma, dBeta);
                assertRanInJava(norm);
                assertAddedIncomingGradient(inPlaceBase, dsValues, ds.toFloatArray());
            }
        }
    }

    /**
     * Asserts int8 output against the float64 reference {@code yRef}: the row's scale, when dynamic, within
     * the f32 bound of {@code max|yRef| / 127}, and {@code |q * scale - yRef| <= scale / 2 (1 + 2^-14) + the
     * f32 bound} per element.
     */
    static void assertQuantized(
            Backend backend,
            float[] s,
            int rows,
            int c,
            float[] gamma,
            float[] beta,
            boolean rms,
            byte[] q,
            float[] scales,
            float staticScale) {
        double[] sd = Reference.toDouble(s);
        double[] yRef = rms
                ? Reference.rmsForward(sd, rows, c, Reference.toDouble(gamma), Reference.toDouble(beta), EPS)
                : Reference.forward(sd, rows, c, Reference.toDouble(gamma), Reference.toDouble(beta), EPS);
        double k = Accuracy.factor(backend);
        for (int row = 0; row < rows; row++) {
            double kappa = rms ? rmsKappa(s, row * c, c) : Accuracy.conditionNumber(s, row * c, c, EPS);
            double maxBound = 0;
            double maxRef = 0;
            double[] bound = new double[c];
            for (int i = 0; i < c; i++) {
                double g = gamma == null ? 1 : Math.abs(gamma[i]);
                double b = beta == null ? 0 : Math.abs(beta[i]);
                bound[i] = k * Accuracy.UNIT_ROUNDOFF * (kappa * Math.max(1, g) + b) + 0x1p-126;
                maxBound = Math.max(maxBound, bound[i]);
                maxRef = Math.max(maxRef, Math.abs(yRef[row * c + i]));
            }
            double scale = staticScale;
            if (scales != null) {
                scale = scales[row];
                double want = maxRef / 127;
                assertTrue(
                        Math.abs(scale - want) <= maxBound / 127 + 0x1p-24 * want,
                        backend + ": scale of row " + row + " is " + scale + ", expected " + want);
            }
            for (int i = 0; i < c; i++) {
                int at = row * c + i;
                double tolerance = scale / 2 * (1 + 0x1p-14) + bound[i];
                double clipped = Math.max(-127 * scale, Math.min(127 * scale, yRef[at])); // static: saturation
                double error = Math.abs(q[at] * scale - clipped);
                if (!(error <= tolerance)) {
                    fail(String.format(
                            "%s: q[%d, %d] = %d with scale %s is %s, expected %s (error %.3g > %.3g)",
                            backend, row, i, q[at], scale, q[at] * scale, yRef[at], error, tolerance));
                }
            }
        }
    }

    private static double rmsKappa(float[] x, int base, int c) {
        double max = 0;
        double squares = 0;
        for (int i = 0; i < c; i++) {
            max = Math.max(max, Math.abs(x[base + i]));
            squares += (double) x[base + i] * x[base + i];
        }
        return max / Math.sqrt(squares / c + EPS);
    }

    static byte[] bytes(Tensor tensor) {
        float[] values = tensor.toFloatArray();
        byte[] out = new byte[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = (byte) values[i];
        }
        return out;
    }

    /** {@code total} is {@code plain + ds} rounded once (the Java and oneDNN norms' gradients may differ a little). */
    private void assertAddedIncomingGradient(float[] plain, float[] ds, float[] total) {
        assertAddedIncomingGradient(DataType.F32, plain, ds, total);
    }

    /**
     * As above for a dx of {@code type}: {@code plain} is the norm's gradient rounded to it, {@code total} that
     * gradient plus ds rounded to it; {@code plain}'s own rounding is in the comparison, hence two of {@code type}.
     */
    private void assertAddedIncomingGradient(DataType type, float[] plain, float[] ds, float[] total) {
        for (int i = 0; i < total.length; i++) {
            double expected = (double) plain[i] + ds[i];
            double tolerance = 2 * Accuracy.unitRoundoff(type) * (Math.abs(plain[i]) + Math.abs(total[i]))
                    + Accuracy.underflow(type);
            if (!(Math.abs(total[i] - expected) <= tolerance)) {
                fail(backend() + ": dx[" + i + "] with diffSum is " + total[i] + ", expected " + expected);
            }
        }
    }

    @ParameterizedTest(name = "[{0}, {1}] scale={2} shift={3}")
    @MethodSource("shapes")
    void quantizedOutputIsWithinHalfAStepOfTheReference(int rows, int c, boolean scale, boolean shift) {
        for (int variant = 0; variant < 4; variant++) { // bit 0: residual, bit 1: RMS
            boolean residual = (variant & 1) != 0;
            boolean rms = (variant & 2) != 0;
            long seed = 13L * rows + c + variant;
            float[] x = TestData.gaussian(rows * c, 1, 2, seed);
            float[] r = TestData.gaussian(rows * c, 0, 1, seed + 1);
            float[] bias = residual && scale ? TestData.gaussian(c, 0, 1, seed + 2) : null;
            float[] gamma = gaussianOrNull(scale, c, 1, 0.5, seed + 3);
            float[] beta = gaussianOrNull(shift, c, 0, 1, seed + 4);
            LayerNormConfig config = (rms ? LayerNormConfig.rms(c) : LayerNormConfig.of(c))
                    .withEps(EPS)
                    .withScale(scale)
                    .withShift(shift);
            float[] s = residual ? sum(x, r, bias, c) : x;
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(config, backend())) {
                Tensor sumOut = residual ? Tensor.allocate(arena, DataType.F32, rows, c) : null;
                Tensor q = Tensor.allocate(arena, DataType.S8, rows, c);
                Tensor scales = Tensor.allocate(arena, DataType.F32, rows);
                Tensor xs = Tensor.ofFloats(arena, x, rows, c);
                Tensor rs = residual ? Tensor.ofFloats(arena, r, rows, c) : null;
                Tensor b = bias == null ? null : Tensor.ofFloats(arena, bias, c);
                Tensor g = gamma == null ? null : Tensor.ofFloats(arena, gamma, c);
                Tensor be = beta == null ? null : Tensor.ofFloats(arena, beta, c);
                norm.forwardQuantized(xs, rs, b, sumOut, q, g, be, scales);
                assertRanInJava(norm);
                if (sumOut != null) {
                    assertArrayEquals(s, sumOut.toFloatArray(), 0f);
                }
                assertQuantized(backend(), s, rows, c, gamma, beta, rms, bytes(q), scales.toFloatArray(), 0);
                float step = 0.01f; // static: small enough that some values saturate
                norm.forwardQuantized(xs, rs, b, null, q, g, be, step);
                assertRanInJava(norm);
                assertQuantized(backend(), s, rows, c, gamma, beta, rms, bytes(q), null, step);
            }
        }
    }

    /**
     * A static scale saturates every float, however far beyond 127 steps, and NaN gives 0, on each path of the int8
     * output: rows in pairs and alone, s added again from x and r (a bias, s not kept), and s read back. Constant rows
     * make y = beta exactly, so beta holds the values; 67 columns leave a tail after the vectors.
     */
    @Test
    void aStaticScaleSaturatesEveryFloat() {
        float[] beta = {
            0x1p22f,
            -0x1p22f,
            0x1.8p23f,
            -0x1.8p23f,
            -0x1.4p24f,
            -0x1p30f,
            3e38f,
            -3e38f,
            Float.POSITIVE_INFINITY,
            Float.NEGATIVE_INFINITY,
            Float.NaN,
            -0f,
            126.49f,
            -126.5f,
            -127.5f,
            127.5f,
            128f,
            -128f,
            1e9f,
            -1e9f,
            2.5f
        };
        byte[] expected = {
            127, -127, 127, -127, -127, -127, 127, -127, 127, -127, 0, 0, 126, -126, -127, 127, 127, -127, 127, -127, 2
        };
        int c = 67;
        int rows = 3;
        float[] shift = repeated(beta, c);
        float[] fives = new float[rows * c];
        Arrays.fill(fives, 5f);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withScale(false), backend())) {
            Tensor x = Tensor.ofFloats(arena, fives, rows, c);
            Tensor zeros = Tensor.allocate(arena, DataType.F32, rows, c);
            Tensor bias = Tensor.allocate(arena, DataType.F32, c);
            Tensor sum = Tensor.allocate(arena, DataType.F32, rows, c);
            Tensor b = Tensor.ofFloats(arena, shift, c);
            Tensor q = Tensor.allocate(arena, DataType.S8, rows, c);
            Map<String, Runnable> paths = new LinkedHashMap<>();
            paths.put("no residual", () -> norm.forwardQuantized(x, null, null, null, q, null, b, 1f));
            paths.put(
                    "residual and bias, s not kept", () -> norm.forwardQuantized(x, zeros, bias, null, q, null, b, 1f));
            paths.put("residual, s kept", () -> norm.forwardQuantized(x, zeros, null, sum, q, null, b, 1f));
            paths.forEach((path, call) -> {
                q.segment().fill((byte) 1);
                call.run();
                byte[] got = bytes(q);
                for (int i = 0; i < rows * c; i++) {
                    assertEquals(expected[i % c % beta.length], got[i], path + ": q[" + i + "] of " + shift[i % c]);
                }
            });
        }
    }

    /** {@code n} values, {@code pattern} over and over: a shift whose columns repeat hand-picked values. */
    private static float[] repeated(float[] pattern, int n) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = pattern[i % pattern.length];
        }
        return values;
    }

    @Test
    void quantizesHandComputedValues() {
        // Constant rows (5 everywhere): s - mean is exactly 0, so y = beta exactly, whatever gamma is.
        float[] beta = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f, 127.5f, 1000f, -1000f, 3.49f, 0f};
        byte[] atScale1 = {0, 2, 2, 0, -2, -2, 126, 127, 127, -127, 3, 0}; // ties to even, saturated
        int c = 64; // several vectors and a tail, whatever the vector width
        int rows = 3;
        float[] shift = repeated(beta, c);
        float[] x = new float[rows * c];
        Arrays.fill(x, 2f);
        float[] r = new float[rows * c];
        Arrays.fill(r, 3f);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withScale(false), backend())) {
            Tensor q = Tensor.allocate(arena, DataType.S8, rows, c);
            Tensor xs = Tensor.ofFloats(arena, x, rows, c);
            Tensor rs = Tensor.ofFloats(arena, r, rows, c);
            Tensor b = Tensor.ofFloats(arena, shift, c);
            norm.forwardQuantized(xs, rs, null, null, q, null, b, 1f);
            byte[] got = bytes(q);
            for (int i = 0; i < rows * c; i++) {
                assertEquals(atScale1[i % c % beta.length], got[i], "q[" + i + "] of " + shift[i % c]);
            }
            Tensor scales = Tensor.allocate(arena, DataType.F32, rows);
            norm.forwardQuantized(xs, rs, null, null, q, null, b, scales);
            got = bytes(q);
            for (int row = 0; row < rows; row++) {
                assertEquals(1000f / 127, scales.toFloatArray()[row], 0f, "max|y| / 127");
                assertEquals(127, got[row * c + 8]);
                assertEquals(-127, got[row * c + 9]);
                assertEquals(0, got[row * c + 11]);
            }
        }
        // A row's scale with no float reciprocal: y = k * 2^-140 for whole k up to 127, so scale = 2^-140 and q = k.
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withScale(false), backend())) {
            float[] tiny = new float[c];
            for (int i = 0; i < c; i++) {
                tiny[i] = (127 - 4 * i) * 0x1p-140f; // subnormal, exact
            }
            Tensor q = Tensor.allocate(arena, DataType.S8, rows, c);
            Tensor scales = Tensor.allocate(arena, DataType.F32, rows);
            Tensor constant = Tensor.ofFloats(arena, x, rows, c);
            norm.forwardQuantized(constant, null, null, null, q, null, Tensor.ofFloats(arena, tiny, c), scales);
            byte[] got = bytes(q);
            for (int row = 0; row < rows; row++) {
                assertEquals(0x1p-140f, scales.toFloatArray()[row], 0f, "max|y| / 127");
                for (int i = 0; i < c; i++) {
                    assertEquals(127 - 4 * i, got[row * c + i], "q[" + row + ", " + i + "] of " + tiny[i]);
                }
            }
        }
        // Zero rows: scale 0 and zeros; a NaN row: a NaN scale and zeros.
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withoutAffine(), backend())) {
            float[] values = new float[2 * c];
            values[c + 5] = Float.NaN;
            Tensor q = Tensor.allocate(arena, DataType.S8, 2, c);
            Tensor scales = Tensor.allocate(arena, DataType.F32, 2);
            norm.forwardQuantized(Tensor.ofFloats(arena, values, 2, c), null, null, null, q, null, null, scales);
            float[] got = scales.toFloatArray();
            assertEquals(0f, got[0]);
            assertTrue(Float.isNaN(got[1]), "a NaN row's scale is NaN");
            assertArrayEquals(new byte[2 * c], bytes(q));
            q.copyFrom(new float[2 * c]);
            q.segment().fill((byte) 1);
            norm.forwardQuantized(Tensor.ofFloats(arena, values, 2, c), null, null, null, q, null, null, 0.5f);
            assertArrayEquals(new byte[2 * c], bytes(q), "static scale: NaN becomes 0");
        }
    }

    @Test
    void handComputedResidualValues() {
        // x + r = [1, 3]: mean 2, variance 1, y = [-1, 1] / sqrt(1 + 1e-5) * gamma + beta (see LayerNormContract).
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(2), backend())) {
            Tensor sumOut = Tensor.allocate(arena, DataType.F32, 1, 2);
            Tensor dst = Tensor.allocate(arena, DataType.F32, 1, 2);
            norm.forwardResidual(
                    Tensor.ofFloats(arena, new float[] {0.5f, 4}, 1, 2),
                    Tensor.ofFloats(arena, new float[] {1, -2}, 1, 2),
                    Tensor.ofFloats(arena, new float[] {-0.5f, 1}, 2),
                    sumOut,
                    dst,
                    Tensor.ofFloats(arena, new float[] {2, -3}, 2),
                    Tensor.ofFloats(arena, new float[] {0.5f, 0.25f}, 2));
            assertArrayEquals(new float[] {1, 3}, sumOut.toFloatArray(), 0f);
            assertArrayEquals(
                    new float[] {(float) -1.4999900000749995, (float) -2.749985000112499},
                    dst.toFloatArray(),
                    Math.ulp(2.75f));
        }
    }

    /**
     * The int8 output without a residual, per-row and static, is the same bit for bit whether a row comes in a call of
     * its own or with others (the Java kernel quantizes rows of up to 2048 columns two at a time). Rows 1 and 2 start far
     * from their means, which takes the centred pass; 5 rows leave one unpaired; 1000 columns leave a tail.
     */
    @Test
    void rowsQuantizeTheSameAloneAsTogether() {
        int rows = 5;
        int c = 1000;
        float[] x = TestData.gaussian(rows * c, 0.5, 1, 51);
        for (int row : new int[] {1, 2}) {
            Arrays.fill(x, row * c, row * c + 256, 40); // the first four vectors of any species up to 2048 bits
        }
        float[] gamma = TestData.gaussian(c, 1, 0.5, 52);
        float[] beta = TestData.gaussian(c, 0, 0.5, 53);
        for (boolean rms : new boolean[] {false, true}) {
            LayerNormConfig config = rms ? LayerNormConfig.rms(c) : LayerNormConfig.of(c);
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(config, backend())) {
                Tensor src = Tensor.ofFloats(arena, x, rows, c);
                Tensor scale = Tensor.ofFloats(arena, gamma, c);
                Tensor shift = rms ? null : Tensor.ofFloats(arena, beta, c); // RMS has no shift
                Tensor q = Tensor.allocate(arena, DataType.S8, rows, c);
                Tensor rowScales = Tensor.allocate(arena, DataType.F32, rows);
                Tensor staticQ = Tensor.allocate(arena, DataType.S8, rows, c);
                norm.forwardQuantized(src, null, null, null, q, scale, shift, rowScales);
                norm.forwardQuantized(src, null, null, null, staticQ, scale, shift, 0.05f);
                for (int row = 0; row < rows; row++) {
                    Tensor q1 = Tensor.allocate(arena, DataType.S8, 1, c);
                    Tensor scale1 = Tensor.allocate(arena, DataType.F32, 1);
                    Tensor staticQ1 = Tensor.allocate(arena, DataType.S8, 1, c);
                    Tensor row1 = src.rows(1, row, 1);
                    norm.forwardQuantized(row1, null, null, null, q1, scale, shift, scale1);
                    norm.forwardQuantized(row1, null, null, null, staticQ1, scale, shift, 0.05f);
                    String where = "rms=" + rms + ", row " + row;
                    assertArrayEquals(
                            q1.segment().toArray(ValueLayout.JAVA_BYTE),
                            q.rows(1, row, 1).segment().asSlice(0, c).toArray(ValueLayout.JAVA_BYTE),
                            where);
                    assertEquals(scale1.toFloatArray()[0], rowScales.toFloatArray()[row], 0f, where);
                    assertArrayEquals(
                            staticQ1.segment().toArray(ValueLayout.JAVA_BYTE),
                            staticQ.rows(1, row, 1).segment().asSlice(0, c).toArray(ValueLayout.JAVA_BYTE),
                            where);
                }
            }
        }
    }

    /**
     * y (and the int8 output, per-row or static) does not depend on whether the caller keeps s, bit for bit, with
     * and without a bias: the Java kernel stores s only when it is kept, and otherwise adds x, r and the bias again
     * where y needs them. Rows 1 and 3 start far from
     * their means, which takes the centred pass (for which s is stored after all); 1000 columns leave a tail.
     */
    @Test
    void keepingTheSumChangesNoOtherResult() {
        int rows = 4;
        int c = 1000;
        float[] x = TestData.gaussian(rows * c, 0.5, 1, 41);
        for (int row : new int[] {1, 3}) {
            Arrays.fill(x, row * c, row * c + 256, 40); // the first four vectors of any species up to 2048 bits
        }
        float[] r = TestData.gaussian(rows * c, -0.25, 1, 42);
        float[] gamma = TestData.gaussian(c, 1, 0.5, 43);
        float[] beta = TestData.gaussian(c, 0, 0.5, 44);
        float[] bias = TestData.gaussian(c, 0.5, 1, 45);
        for (int variant = 0; variant < 4; variant++) {
            boolean rms = variant % 2 == 1;
            float[] b = variant < 2 ? null : bias;
            LayerNormConfig config = rms ? LayerNormConfig.rms(c) : LayerNormConfig.of(c);
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(config, backend())) {
                float[][] results = new float[2][];
                for (int keep = 0; keep < 2; keep++) {
                    Tensor dst = Tensor.allocate(arena, DataType.F32, rows, c);
                    norm.forwardResidual(
                            Tensor.ofFloats(arena, x, rows, c),
                            Tensor.ofFloats(arena, r, rows, c),
                            b == null ? null : Tensor.ofFloats(arena, b, c),
                            keep == 1 ? Tensor.allocate(arena, DataType.F32, rows, c) : null,
                            dst,
                            Tensor.ofFloats(arena, gamma, c),
                            rms ? null : Tensor.ofFloats(arena, beta, c)); // RMS has no shift
                    results[keep] = dst.toFloatArray();
                }
                assertArrayEquals(results[1], results[0], 0f, "rms=" + rms + ", bias=" + (b != null));
                // the int8 output, with per-row scales and with one static scale: the same q and scales either way
                byte[][] quantized = new byte[4][];
                float[][] scales = new float[2][];
                for (int keep = 0; keep < 2; keep++) {
                    Tensor q = Tensor.allocate(arena, DataType.S8, rows, c);
                    Tensor rowScales = Tensor.allocate(arena, DataType.F32, rows);
                    Tensor staticQ = Tensor.allocate(arena, DataType.S8, rows, c);
                    Tensor src = Tensor.ofFloats(arena, x, rows, c);
                    Tensor residual = Tensor.ofFloats(arena, r, rows, c);
                    Tensor biasTensor = b == null ? null : Tensor.ofFloats(arena, b, c);
                    Tensor scale = Tensor.ofFloats(arena, gamma, c);
                    Tensor shift = rms ? null : Tensor.ofFloats(arena, beta, c);
                    Tensor kept = keep == 1 ? Tensor.allocate(arena, DataType.F32, rows, c) : null;
                    norm.forwardQuantized(src, residual, biasTensor, kept, q, scale, shift, rowScales);
                    norm.forwardQuantized(src, residual, biasTensor, kept, staticQ, scale, shift, 0.02f);
                    quantized[keep] = bytes(q);
                    quantized[2 + keep] = bytes(staticQ);
                    scales[keep] = rowScales.toFloatArray();
                }
                assertArrayEquals(quantized[1], quantized[0], "int8, rms=" + rms);
                assertArrayEquals(quantized[3], quantized[2], "int8 with a static scale, rms=" + rms);
                assertArrayEquals(scales[1], scales[0], 0f, "scales, rms=" + rms);
                Accuracy.assertForward(
                        backend(),
                        sum(x, r, b, c),
                        rows,
                        c,
                        gamma,
                        rms ? null : beta,
                        config.eps(),
                        rms,
                        DataType.F32,
                        results[0]);
            }
        }
    }
}
