package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Property-based fuzzing of the fused operations ({@link LayerNorm#forwardResidual}, its training pass and backward,
 * {@link LayerNorm#forwardQuantized}) with a seeded generator, as {@link ApiFuzzTest} does for the plain norm: every
 * backend, layer and RMS normalization, with and without scale, shift and bias, each tensor's data type, layout
 * (contiguous, padded rows, every other column, leading axes transposed) and memory (an arena, or the heap where the
 * backend takes it) drawn apart, rows from none to a few hundred, and the in-place forms the API allows (s over x or r,
 * y over x or r, x as its own residual, dx over dy or ds). Every call must give the float32 sum exactly and the rest
 * within the tolerances of {@link FusedContract} against the float64 reference; dx with an incoming gradient within two
 * more roundings ({@link Accuracy#assertBackward}).
 *
 * <p>The seed is {@link TestAccess#fuzzSeed}'s; a failure names it and the case. Replay with {@code scripts/mvn test
 * -Dtest=FusedFuzzTest -Dsurefire.failIfNoSpecifiedTests=false -Dpanorm.fuzz.seed=SEED -Dpanorm.fuzz.case=N}; run more
 * cases with {@code -Dpanorm.fuzz.fusedCases=20000}.
 */
class FusedFuzzTest {
    private static final long SEED = TestAccess.fuzzSeed();
    private static final int CASES = Integer.getInteger("panorm.fuzz.fusedCases", 1500);
    private static final int ONLY_CASE = Integer.getInteger("panorm.fuzz.case", -1);
    private static final int[] WIDTHS = {1, 2, 3, 5, 16, 17, 31, 32, 33, 64, 67, 128, 768, 1040};
    private static final long[] LEADING = {0, 1, 2, 3, 5, 8, 13};
    /** {@link FusedContract#assertQuantized} holds this eps. */
    private static final double QUANTIZED_EPS = 1e-5;
    /** The static quantization step: outputs beyond 127 steps, 2.54, saturate. */
    private static final float STATIC_STEP = 0.02f;

    private enum Operation {
        FORWARD,
        TRAINING_AND_BACKWARD,
        QUANTIZED
    }

    private enum Layout {
        CONTIGUOUS,
        PADDED_ROWS,
        EVERY_OTHER_COLUMN,
        TRANSPOSED
    }

    @Test
    void everyFusedCallGivesTheReferenceResult() {
        int first = ONLY_CASE >= 0 ? ONLY_CASE : 0;
        int last = ONLY_CASE >= 0 ? ONLY_CASE : CASES - 1;
        int[] operations = new int[Operation.values().length];
        for (int index = first; index <= last; index++) {
            Case fuzz = new Case(new SplittableRandom(SEED + 0x9E3779B97F4A7C15L * index));
            try {
                fuzz.run();
                operations[fuzz.operation.ordinal()]++;
            } catch (AssertionError | RuntimeException e) {
                throw new AssertionError(
                        "fused fuzz case " + index + " of seed " + SEED + " failed; replay with -Dpanorm.fuzz.seed="
                                + SEED + " -Dpanorm.fuzz.case=" + index + "\n  " + fuzz + "\n  " + e,
                        e);
            }
        }
        System.out.println("FusedFuzzTest: seed " + SEED + ", cases " + first + ".." + last + ", operations "
                + Arrays.toString(Operation.values()) + " " + Arrays.toString(operations) + ", heap copies up to "
                + OwnedMemory.HeapCopies.KEPT_BYTES + " bytes per thread");
        if (ONLY_CASE < 0) {
            for (int count : operations) {
                assertTrue(count > CASES / 10, "operations " + Arrays.toString(operations));
            }
        }
    }

    /** One generated case: everything about it is drawn from {@code random} in the constructor. */
    private static final class Case {
        final Backend backend;
        final Operation operation;
        final boolean rms;
        final boolean scale;
        final boolean shift;
        final boolean bias;
        final boolean residual;
        final double eps;
        final long[] shape;
        final int rows;
        final int c;
        final DataType type;
        final DataType dstType;
        final DataType parameterType;
        final Layout[] layouts = new Layout[4]; // x, r, s, y (for the backward pass: dy, ds, dx, dy again)
        final boolean[] onHeap = new boolean[4];
        /** 0: s apart, 1: s over x, 2: s over r, 3: no s (not for training). */
        final int sumPlace;
        /** 0: y apart, 1: y over x, 2: y over r (float y of x's type and layout only). */
        final int dstPlace;

        final boolean residualIsSrc;
        /** The backward pass: 0 no diffSum, 1 diffSum apart, 2 dx over ds, 3 dx over dy. */
        final int gradientPlace;

        final boolean staticScale;
        final double mean;
        final double std;
        final long seed;

        Case(SplittableRandom random) {
            Backend[] backends = Backend.values();
            backend = backends[random.nextInt(backends.length)];
            operation = Operation.values()[random.nextInt(Operation.values().length)];
            rms = random.nextInt(3) == 0;
            scale = random.nextBoolean();
            shift = random.nextInt(3) != 0;
            residual = operation != Operation.QUANTIZED || random.nextInt(4) != 0;
            bias = residual && random.nextBoolean();
            eps = operation == Operation.QUANTIZED ? QUANTIZED_EPS : new double[] {1e-5, 1e-3, 0.5}[random.nextInt(3)];
            c = WIDTHS[random.nextInt(WIDTHS.length)];
            int leading = 1 + random.nextInt(3);
            long[] drawn = new long[leading + 1];
            long count = 1;
            for (int i = 0; i < leading; i++) {
                drawn[i] = random.nextInt(12) == 0 ? 0 : LEADING[1 + random.nextInt(LEADING.length - 1)];
                count *= drawn[i];
            }
            if (count * c > 300_000) { // keeps a case fast: one leading axis of a few rows
                drawn = new long[] {1 + random.nextInt(4), c};
                count = drawn[0];
            }
            drawn[drawn.length - 1] = c;
            shape = drawn;
            rows = (int) count;
            DataType[] types = Tensors.FLOAT_TYPES;
            type = random.nextInt(3) == 0 ? DataType.F32 : types[random.nextInt(types.length)];
            parameterType = random.nextInt(2) == 0 ? DataType.F32 : types[random.nextInt(types.length)];
            for (int i = 0; i < layouts.length; i++) {
                Layout[] all = Layout.values();
                layouts[i] = random.nextInt(2) == 0 ? Layout.CONTIGUOUS : all[random.nextInt(all.length)];
                onHeap[i] = backend != Backend.ONEDNN && random.nextInt(6) == 0;
            }
            residualIsSrc = residual && random.nextInt(8) == 0;
            sumPlace = residual ? random.nextInt(operation == Operation.FORWARD ? 4 : 3) : 3;
            boolean floatDst = operation != Operation.QUANTIZED;
            int wanted = floatDst && !residualIsSrc ? random.nextInt(4) : 0;
            dstPlace = wanted == 3 || wanted == sumPlace || (wanted == 2 && !residual) ? 0 : wanted;
            dstType = dstPlace != 0 ? type : types[random.nextInt(types.length)];
            gradientPlace = random.nextInt(4);
            staticScale = random.nextInt(3) == 0;
            mean = new double[] {0, 1, 100}[random.nextInt(3)];
            std = new double[] {1e-2, 1, 10}[random.nextInt(3)];
            seed = random.nextLong();
        }

        @Override
        public String toString() {
            return backend + " " + operation + (rms ? " rms" : " layer") + " shape " + Arrays.toString(shape) + " eps "
                    + eps + " scale " + scale + " shift " + shift + " bias " + bias + " residual " + residual
                    + (residualIsSrc ? " (x itself)" : "") + ", data " + type + " y " + dstType + " parameters "
                    + parameterType + ", layouts " + Arrays.toString(layouts) + " heap " + Arrays.toString(onHeap)
                    + ", s place " + sumPlace + " y place " + dstPlace + " gradient place " + gradientPlace
                    + (staticScale ? " static scale" : "") + ", values N(" + mean + ", " + std + ")";
        }

        void run() {
            LayerNormConfig config = (rms ? LayerNormConfig.rms(c) : LayerNormConfig.of(c))
                    .withEps(eps)
                    .withScale(scale)
                    .withShift(shift);
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(config, backend)) {
                int n = rows * c;
                Tensor x = tensor(arena, 0, type, TestData.gaussian(n, mean, std, seed));
                Tensor r = !residual
                        ? null
                        : residualIsSrc ? x : tensor(arena, 1, type, TestData.gaussian(n, 0, 1, seed + 1));
                Tensor b = bias ? Tensors.make(arena, parameterType, TestData.gaussian(c, 0, 1, seed + 2), c) : null;
                Tensor gamma =
                        scale ? Tensors.make(arena, parameterType, TestData.gaussian(c, 1, 0.5, seed + 3), c) : null;
                Tensor beta =
                        shift ? Tensors.make(arena, parameterType, TestData.gaussian(c, 0, 1, seed + 4), c) : null;
                float[] xv = x.toFloatArray();
                float[] exact = r == null ? xv : FusedContract.sum(xv, r.toFloatArray(), floats(b), c); // float32
                float[] stored = Tensors.rounded(type, exact);
                Tensor s = switch (sumPlace) {
                    case 0 -> tensor(arena, 2, type, new float[n]);
                    case 1 -> x;
                    case 2 -> r;
                    default -> null;
                };
                float[] g = floats(gamma);
                float[] bv = floats(beta);
                switch (operation) {
                    case FORWARD -> {
                        Tensor y = dst(arena, x, r, n);
                        norm.forwardResidual(x, r, b, s, y, gamma, beta);
                        assertSum(s, stored);
                        Accuracy.assertForward(
                                backend,
                                s == null ? exact : stored,
                                rows,
                                c,
                                g,
                                bv,
                                eps,
                                rms,
                                dstType,
                                y.toFloatArray());
                    }
                    case TRAINING_AND_BACKWARD -> trainingAndBackward(arena, norm, config, x, r, b, s, gamma, beta);
                    case QUANTIZED -> {
                        Tensor q = tensor(arena, 3, DataType.S8, new float[n]);
                        Tensor scales = Tensor.allocate(arena, DataType.F32, Arrays.copyOf(shape, shape.length - 1));
                        float step = STATIC_STEP;
                        if (staticScale) {
                            norm.forwardQuantized(x, r, b, s, q, gamma, beta, step);
                        } else {
                            norm.forwardQuantized(x, r, b, s, q, gamma, beta, scales);
                        }
                        assertSum(s, stored);
                        FusedContract.assertQuantized(
                                backend,
                                s == null ? exact : stored,
                                rows,
                                c,
                                g,
                                bv,
                                rms,
                                FusedContract.bytes(q),
                                staticScale ? null : scales.toFloatArray(),
                                staticScale ? step : 0);
                    }
                }
            }
        }

        private void trainingAndBackward(
                Arena arena,
                LayerNorm norm,
                LayerNormConfig config,
                Tensor x,
                Tensor r,
                Tensor b,
                Tensor s,
                Tensor gamma,
                Tensor beta) {
            int n = rows * c;
            float[] stored = Tensors.rounded(type, FusedContract.sum(x.toFloatArray(), r.toFloatArray(), floats(b), c));
            Tensor y = dst(arena, x, r, n);
            long[] rowShape = Arrays.copyOf(shape, shape.length - 1);
            Tensor mean = rms ? null : Tensor.allocate(arena, DataType.F32, rowShape);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rowShape);
            float[] g = floats(gamma);
            norm.forwardResidualTraining(x, r, b, s, y, gamma, beta, mean, variance);
            assertSum(s, stored);
            Accuracy.assertForward(backend, stored, rows, c, g, floats(beta), eps, rms, dstType, y.toFloatArray());
            if (!rms) {
                Accuracy.assertStatistics(backend, stored, rows, c, mean.toFloatArray(), variance.toFloatArray());
            }
            // backward: dy and ds of the data type, dx apart or over one of them; dx is the reference's plus ds
            Tensor dy = tensor(arena, 3, type, TestData.gaussian(n, 0, 1, seed + 5));
            Tensor ds = gradientPlace == 0 ? null : tensor(arena, 1, type, TestData.gaussian(n, 0, 1, seed + 6));
            Tensor dGamma = scale ? Tensors.make(arena, parameterType, new float[c], c) : null;
            Tensor dBeta = shift ? Tensors.make(arena, parameterType, new float[c], c) : null;
            float[] dyv = dy.toFloatArray();
            float[] dsv = ds == null ? null : ds.toFloatArray();
            Tensor dx = switch (gradientPlace) {
                case 2 -> ds;
                case 3 -> dy;
                default -> tensor(arena, 2, type, new float[n]);
            };
            norm.backwardResidual(dy, ds, s, mean, variance, gamma, dx, dGamma, dBeta);
            Accuracy.assertBackward(
                    backend,
                    dyv,
                    stored,
                    rows,
                    c,
                    mean == null ? null : mean.toFloatArray(),
                    variance.toFloatArray(),
                    g,
                    eps,
                    false,
                    rms,
                    type,
                    parameterType,
                    dsv,
                    dx.toFloatArray(),
                    floats(dGamma),
                    floats(dBeta));
        }

        /** y: over x or r where drawn, else apart, in the layout drawn for it. */
        private Tensor dst(Arena arena, Tensor x, Tensor r, int n) {
            return switch (dstPlace) {
                case 1 -> x;
                case 2 -> r;
                default -> tensor(arena, 3, dstType, new float[n]);
            };
        }

        private void assertSum(Tensor s, float[] stored) {
            if (s != null) {
                assertArrayEquals(stored, s.toFloatArray(), 0f, "sum is the float32 (x + r) + bias, rounded");
            }
        }

        /** The tensor in {@code slot}'s layout and memory, holding {@code values} rounded to {@code type}. */
        private Tensor tensor(Arena arena, int slot, DataType tensorType, float[] values) {
            long[] strides = strides(layouts[slot]);
            if (!onHeap[slot]) {
                return Tensors.make(arena, tensorType, values, shape, strides);
            }
            long extent = 1;
            for (int i = 0; i < shape.length; i++) {
                extent += (shape[i] - 1) * strides[i];
            }
            int length = (int) Math.max(1, rows == 0 ? 1 : extent);
            MemorySegment heap = switch (tensorType) {
                case F32 -> MemorySegment.ofArray(new float[length]);
                case S8 -> MemorySegment.ofArray(new byte[length]);
                default -> MemorySegment.ofArray(new short[length]);
            };
            if (tensorType != DataType.S8) {
                for (long i = 0; i < length; i++) {
                    Elements.set(heap, tensorType, i, Float.NaN); // padding read by mistake shows
                }
            }
            return Tensor.of(heap, tensorType, shape, strides).copyFrom(values);
        }

        private long[] strides(Layout layout) {
            int rank = shape.length;
            long[] strides = Tensor.contiguousStrides(shape);
            switch (layout) {
                case CONTIGUOUS -> {}
                case PADDED_ROWS -> {
                    long stride = c + 3;
                    for (int i = rank - 2; i >= 0; i--) {
                        strides[i] = stride;
                        stride *= shape[i];
                    }
                }
                case EVERY_OTHER_COLUMN -> {
                    strides[rank - 1] = 2;
                    long stride = 2L * c;
                    for (int i = rank - 2; i >= 0; i--) {
                        strides[i] = stride;
                        stride *= shape[i];
                    }
                }
                case TRANSPOSED -> { // the leading axes in reverse order of strides
                    long stride = c;
                    for (int i = 0; i < rank - 1; i++) {
                        strides[i] = stride;
                        stride *= shape[i];
                    }
                }
            }
            return strides;
        }

        private static float[] floats(Tensor tensor) {
            return tensor == null ? null : tensor.toFloatArray();
        }
    }
}
