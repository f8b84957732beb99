package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Property-based fuzzing of the public API with a seeded generator: random configurations (eps from
 * tiny to huge, RMS, precise statistics, one or two normalized axes), shapes with 0- and 1-sized
 * dimensions, data types in any combination, padded and transposed layouts, values with NaN,
 * infinities, subnormals and huge magnitudes, and one deliberate defect in about a third of the cases
 * (a segment one element too small or a byte too small, a closed arena, a read-only or partially
 * overlapping destination, a wrong shape, a missing or unexpected scale, a heap segment for oneDNN (a result elsewhere),
 * a negative global variance, a closed {@code LayerNorm}, a bad eps). Every case either gives the
 * reference's results within the documented tolerance (and the NaN semantics of docs/api.md) or throws the
 * documented exception having written nothing.
 *
 * <p>The seed is fixed, so every build runs the same cases; {@code -Dpanorm.fuzz.seed=random} draws a
 * new one ({@link TestAccess#fuzzSeed}). A failure names its seed and case number. Replay it with
 * {@code scripts/mvn test -Dtest=ApiFuzzTest -Dpanorm.fuzz.seed=SEED -Dpanorm.fuzz.case=N}, or run more
 * cases with {@code -Dpanorm.fuzz.cases=100000}.
 */
class ApiFuzzTest {
    private static final long SEED = TestAccess.fuzzSeed();
    private static final int CASES = Integer.getInteger("panorm.fuzz.cases", 4000);
    private static final int ONLY_CASE = Integer.getInteger("panorm.fuzz.case", -1);
    private static final long[] DIMS = {1, 2, 3, 5, 8, 16, 17, 31, 64, 67, 128, 768};
    private static final float SENTINEL = -12345.5f;

    private enum Call {
        FORWARD,
        FORWARD_TRAINING,
        FORWARD_GLOBAL,
        BACKWARD,
        BACKWARD_DATA,
        BACKWARD_GLOBAL,
        BACKWARD_DATA_GLOBAL;

        boolean forward() {
            return this == FORWARD || this == FORWARD_TRAINING || this == FORWARD_GLOBAL;
        }

        /** Whether the caller gives the statistics, which are then checked. */
        boolean global() {
            return this == FORWARD_GLOBAL || this == BACKWARD_GLOBAL || this == BACKWARD_DATA_GLOBAL;
        }

        boolean parameterGradients() {
            return this == BACKWARD || this == BACKWARD_GLOBAL;
        }
    }

    private enum Outcome {
        RESULT,
        ILLEGAL_ARGUMENT,
        ILLEGAL_STATE
    }

    private enum Defect {
        NONE(Outcome.RESULT),
        SEGMENT_LARGER(Outcome.RESULT),
        IN_PLACE(Outcome.RESULT),
        SEGMENT_ELEMENT_SHORT(Outcome.ILLEGAL_ARGUMENT),
        SEGMENT_BYTE_SHORT(Outcome.ILLEGAL_ARGUMENT),
        CLOSED_ARENA(Outcome.ILLEGAL_STATE),
        READ_ONLY_OUTPUT(Outcome.ILLEGAL_ARGUMENT),
        PARTIAL_OVERLAP(Outcome.ILLEGAL_ARGUMENT),
        WRONG_OUTPUT_SHAPE(Outcome.ILLEGAL_ARGUMENT),
        MISSING_SCALE(Outcome.ILLEGAL_ARGUMENT),
        UNEXPECTED_SCALE(Outcome.ILLEGAL_ARGUMENT),
        HEAP_SEGMENT(Outcome.RESULT),
        NEGATIVE_VARIANCE(Outcome.ILLEGAL_ARGUMENT),
        CLOSED_LAYER_NORM(Outcome.ILLEGAL_STATE),
        BAD_EPS(Outcome.ILLEGAL_ARGUMENT);

        final Outcome outcome;

        Defect(Outcome outcome) {
            this.outcome = outcome;
        }
    }

    @Test
    void everyCallGivesTheReferenceResultOrADocumentedException() {
        int first = ONLY_CASE >= 0 ? ONLY_CASE : 0;
        int last = ONLY_CASE >= 0 ? ONLY_CASE : CASES - 1;
        int[] outcomes = new int[Outcome.values().length];
        for (int index = first; index <= last; index++) {
            Case fuzz = new Case(new SplittableRandom(SEED + 0x9E3779B97F4A7C15L * index));
            try {
                outcomes[fuzz.run().ordinal()]++;
            } catch (AssertionError | RuntimeException e) {
                throw new AssertionError(
                        "fuzz case " + index + " of seed " + SEED + " failed; replay with -Dpanorm.fuzz.seed=" + SEED
                                + " -Dpanorm.fuzz.case=" + index + "\n  " + fuzz + "\n  " + e,
                        e);
            }
        }
        System.out.println("ApiFuzzTest: seed " + SEED + ", cases " + first + ".." + last + ", outcomes "
                + Arrays.toString(Outcome.values()) + " " + Arrays.toString(outcomes));
        if (ONLY_CASE < 0) { // the generator must exercise every path, or the test proves little
            for (int count : outcomes) {
                assertTrue(count > CASES / 50, "outcomes " + Arrays.toString(outcomes));
            }
        }
    }

    /** One generated call: everything about it is drawn from {@code random} in the constructor. */
    private static final class Case {
        final Backend backend;
        final Call call;
        final boolean rms;
        final boolean precise;
        final boolean scale;
        final boolean shift;
        final double eps;
        final double badEps;
        final long[] normalized;
        final long[] shape;
        final int rows;
        final int c;
        final DataType srcType;
        final DataType dstType;
        final DataType parameterType;
        final long padding;
        final boolean transposed;
        final float[] x;
        final float[] dy;
        final float[] gamma;
        final float[] beta;
        final Defect defect;

        Case(SplittableRandom random) {
            backend = pick(random, Backend.values());
            call = pick(random, Call.values());
            rms = random.nextInt(5) == 0;
            precise = !rms && random.nextInt(6) == 0;
            scale = random.nextBoolean();
            shift = random.nextBoolean();
            eps = pick(random, new double[] {1e-5, 1e-5, 1e-6, 1e-12, 0x1p-23, 0.1, 1, 1000});
            badEps = pick(random, new double[] {0, -1e-5, Double.NaN, Double.POSITIVE_INFINITY, 1e-50, 1e-40, 1e39});
            normalized =
                    random.nextInt(5) == 0 ? new long[] {small(random), small(random)} : new long[] {pickDim(random)};
            int leading = random.nextInt(4);
            shape = new long[leading + normalized.length];
            long rowCount = 1;
            for (int i = 0; i < leading; i++) {
                shape[i] = random.nextInt(8) == 0 ? 0 : 1 + random.nextInt(rowCount > 40 ? 2 : 6);
                rowCount *= shape[i];
            }
            System.arraycopy(normalized, 0, shape, leading, normalized.length);
            rows = Math.toIntExact(rowCount);
            c = Math.toIntExact(Arrays.stream(normalized).reduce(1, Math::multiplyExact));
            DataType[] types = Tensors.FLOAT_TYPES;
            srcType = random.nextInt(3) == 0 ? pick(random, types) : DataType.F32;
            dstType = random.nextInt(3) == 0 ? pick(random, types) : srcType;
            parameterType = random.nextInt(4) == 0 ? pick(random, types) : DataType.F32;
            padding = random.nextInt(5) == 0 ? 1 + random.nextInt(16) : 0;
            transposed = leading >= 2 && random.nextInt(4) == 0;
            x = values(random, rows * c);
            dy = values(random, rows * c);
            gamma = scale ? TestData.gaussian(c, 1, 0.5, random.nextLong()) : null;
            beta = shift ? TestData.gaussian(c, 0, 1, random.nextLong()) : null;
            defect = random.nextInt(3) == 0 ? pick(random, Defect.values()) : Defect.NONE;
        }

        private static long small(SplittableRandom random) {
            return DIMS[random.nextInt(7)];
        }

        private static long pickDim(SplittableRandom random) {
            return random.nextInt(10) == 0 ? DIMS[random.nextInt(DIMS.length)] : DIMS[random.nextInt(9)];
        }

        /** Gaussian rows at a random offset and scale, sometimes salted with special values. */
        private static float[] values(SplittableRandom random, int n) {
            double mean = pick(random, new double[] {0, 0, 1, 100, -1e4});
            double std = pick(random, new double[] {1, 1, 1e-3, 10, 1e3});
            float[] values = TestData.gaussian(n, mean, std, random.nextLong());
            if (n > 0 && random.nextInt(5) == 0) {
                float[] specials = {
                    Float.NaN,
                    Float.POSITIVE_INFINITY,
                    Float.NEGATIVE_INFINITY,
                    1e-40f,
                    Float.MIN_VALUE,
                    -0f,
                    1e15f,
                    -1e15f
                };
                for (int k = random.nextInt(1, 4); k > 0; k--) {
                    values[random.nextInt(n)] = pick(random, specials);
                }
            }
            return values;
        }

        private static <T> T pick(SplittableRandom random, T[] options) {
            return options[random.nextInt(options.length)];
        }

        private static double pick(SplittableRandom random, double[] options) {
            return options[random.nextInt(options.length)];
        }

        private static float pick(SplittableRandom random, float[] options) {
            return options[random.nextInt(options.length)];
        }

        private boolean isForward() {
            return call.forward();
        }

        /** The defect actually applied: some make no sense for some cases and fall back to none. */
        private Defect applicable() {
            return switch (defect) {
                case IN_PLACE -> srcType == dstType && padding == 0 && !transposed ? defect : Defect.NONE;
                case PARTIAL_OVERLAP -> rows * c >= 2 ? defect : Defect.NONE;
                case SEGMENT_ELEMENT_SHORT, SEGMENT_BYTE_SHORT -> rows * c > 0 ? defect : Defect.NONE;
                case MISSING_SCALE -> scale ? defect : Defect.NONE;
                case UNEXPECTED_SCALE -> scale ? Defect.NONE : defect;
                case HEAP_SEGMENT ->
                    isForward() && srcType == DataType.F32 && padding == 0 && !transposed ? defect : Defect.NONE;
                case NEGATIVE_VARIANCE -> call.global() && rows > 0 ? defect : Defect.NONE;
                default -> defect;
            };
        }

        private Outcome expected(Defect applied) {
            if (applied == Defect.HEAP_SEGMENT && backend == Backend.ONEDNN) {
                return Outcome.ILLEGAL_ARGUMENT; // oneDNN needs native memory; AUTO sends such calls to Java
            }
            return applied.outcome;
        }

        Outcome run() {
            Defect applied = applicable();
            Outcome expected = expected(applied);
            LayerNormConfig config;
            try {
                config = (rms ? LayerNormConfig.rms(normalized) : LayerNormConfig.of(normalized))
                        .withEps(applied == Defect.BAD_EPS ? badEps : eps)
                        .withScale(scale)
                        .withShift(shift)
                        .withPreciseStatistics(precise);
            } catch (IllegalArgumentException e) {
                assertEquals(Outcome.ILLEGAL_ARGUMENT, expected, "config refused: " + e.getMessage());
                return Outcome.ILLEGAL_ARGUMENT;
            }
            if (applied == Defect.BAD_EPS) {
                fail("eps " + badEps + " was accepted");
            }
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(config, backend)) {
                Tensor src = layout(arena, srcType, x);
                Tensor g = scale ? Tensors.make(arena, parameterType, gamma, normalized) : null;
                Tensor b = shift ? Tensors.make(arena, parameterType, beta, normalized) : null;
                if (isForward()) {
                    return forward(arena, norm, applied, expected, src, g, b);
                }
                return backward(arena, norm, applied, expected, src, g, b);
            }
        }

        /** A tensor of this case's shape and layout holding {@code values}; padding and untouched elements hold NaN. */
        private Tensor layout(Arena arena, DataType type, float[] values) {
            if (!transposed) {
                return Tensors.padded(arena, type, values, shape, padding);
            }
            // The first two leading axes swapped, without padding: a time-major view of batch-major data.
            long[] swapped = shape.clone();
            swapped[0] = shape[1];
            swapped[1] = shape[0];
            long[] strides = Tensor.contiguousStrides(swapped);
            long first = strides[0];
            strides[0] = strides[1];
            strides[1] = first;
            return Tensors.make(arena, type, values, shape, strides);
        }

        /** An output tensor of this case's shape, filled with the sentinel, with the defect applied. */
        private Tensor output(Arena arena, DataType type, Defect applied, Tensor input) {
            long[] outShape = applied == Defect.WRONG_OUTPUT_SHAPE ? wrongShape() : shape;
            long bytes = Math.max(1, Arrays.stream(outShape).reduce(1, Math::multiplyExact)) * type.byteSize();
            return switch (applied) {
                case SEGMENT_LARGER -> filled(Tensor.of(arena.allocate(bytes + type.byteSize()), type, outShape));
                case SEGMENT_ELEMENT_SHORT -> Tensor.of(arena.allocate(bytes - type.byteSize()), type, outShape);
                case SEGMENT_BYTE_SHORT -> Tensor.of(arena.allocate(bytes - 1), type, outShape);
                case READ_ONLY_OUTPUT ->
                    Tensor.of(
                            filled(Tensor.allocate(arena, type, outShape))
                                    .segment()
                                    .asReadOnly(),
                            type,
                            outShape);
                case CLOSED_ARENA -> {
                    Arena gone = Arena.ofConfined();
                    Tensor tensor = Tensor.allocate(gone, type, outShape);
                    gone.close();
                    yield tensor;
                }
                case IN_PLACE -> input;
                default -> filled(Tensor.allocate(arena, type, outShape));
            };
        }

        /**
         * The input moved into memory one step longer, and an output of the input's type and layout one step
         * further on: the two overlap partially, and both lie inside the allocation.
         */
        private static Tensor[] partiallyOverlapping(Arena arena, Tensor input) {
            // the step: the smallest between two of its elements, so that the two share one (a shift by one element
            // lands between padded rows of one element, and shares none)
            long elements = Long.MAX_VALUE;
            for (int axis = 0; axis < input.rank(); axis++) {
                if (input.dim(axis) > 1 && input.stride(axis) > 0) {
                    elements = Math.min(elements, input.stride(axis));
                }
            }
            long step = elements * input.dataType().byteSize();
            MemorySegment memory = arena.allocate(input.segment().byteSize() + step, 64);
            memory.copyFrom(input.segment());
            return new Tensor[] {
                Tensor.of(memory, input.dataType(), input.shape(), input.strides()),
                Tensor.of(memory.asSlice(step), input.dataType(), input.shape(), input.strides())
            };
        }

        private long[] wrongShape() {
            long[] wrong = shape.clone();
            wrong[wrong.length - 1] += 1;
            return wrong;
        }

        /** Fills a C-ordered tensor with the sentinel, so that a write shows. */
        private static Tensor filled(Tensor tensor) {
            for (long i = 0; i < tensor.elementCount(); i++) {
                Elements.set(tensor.segment(), tensor.dataType(), i, SENTINEL);
            }
            return tensor;
        }

        private Outcome forward(
                Arena arena, LayerNorm norm, Defect applied, Outcome expected, Tensor src, Tensor g, Tensor b) {
            Tensor input = applied == Defect.HEAP_SEGMENT
                    ? Tensor.of(MemorySegment.ofArray(Tensors.rounded(srcType, x)), DataType.F32, shape)
                    : src;
            Tensor dst;
            if (applied == Defect.PARTIAL_OVERLAP) {
                Tensor[] pair = partiallyOverlapping(arena, src);
                input = pair[0];
                dst = pair[1];
            } else {
                try {
                    dst = output(arena, dstType, applied, input);
                } catch (IllegalArgumentException e) { // a segment too small is refused by Tensor.of itself
                    return refused(expected, Outcome.ILLEGAL_ARGUMENT, e, applied);
                }
            }
            Tensor scaleArg = applied == Defect.MISSING_SCALE
                    ? null
                    : applied == Defect.UNEXPECTED_SCALE ? Tensor.allocate(arena, DataType.F32, normalized) : g;
            Tensor mean = call != Call.FORWARD && !rms ? Tensor.allocate(arena, DataType.F32, rowShape()) : null;
            Tensor variance = call != Call.FORWARD ? Tensor.allocate(arena, DataType.F32, rowShape()) : null;
            if (call == Call.FORWARD_GLOBAL) { // the statistics a training pass writes, given back
                norm.forwardTraining(src, Tensor.allocate(arena, dstType, shape), g, b, mean, variance);
                expected = givenStatistics(applied, expected, mean, variance);
            }
            if (applied == Defect.CLOSED_LAYER_NORM) {
                norm.close();
            }
            try {
                switch (call) {
                    case FORWARD -> norm.forward(input, dst, scaleArg, b);
                    case FORWARD_TRAINING -> norm.forwardTraining(input, dst, scaleArg, b, mean, variance);
                    default -> norm.forwardWithGlobalStatistics(input, dst, scaleArg, b, mean, variance);
                }
            } catch (IllegalArgumentException | IllegalStateException e) {
                Outcome got = e instanceof IllegalArgumentException ? Outcome.ILLEGAL_ARGUMENT : Outcome.ILLEGAL_STATE;
                assertUntouched(dst, applied);
                return refused(expected, got, e, applied);
            }
            assertEquals(Outcome.RESULT, expected, "the call succeeded despite " + applied);
            float[] xs = Tensors.rounded(srcType, x);
            float[] y = Tensors.read(dst);
            float[] gammaUsed = g == null ? null : Tensors.read(g);
            float[] betaUsed = b == null ? null : Tensors.read(b);
            if (call == Call.FORWARD_GLOBAL) { // accepted: so the statistics, and the rows, are finite
                Accuracy.assertForwardGlobal(
                        backend,
                        xs,
                        rows,
                        c,
                        mean == null ? null : mean.toFloatArray(),
                        variance.toFloatArray(),
                        gammaUsed,
                        betaUsed,
                        config().eps(),
                        dstType,
                        y);
                return Outcome.RESULT;
            }
            for (int r = 0; r < rows; r++) {
                float[] row = Arrays.copyOfRange(xs, r * c, r * c + c);
                float[] out = Arrays.copyOfRange(y, r * c, r * c + c);
                if (isFinite(row)) {
                    Accuracy.assertForward(backend, row, 1, c, gammaUsed, betaUsed, config().eps(), rms, dstType, out);
                } else {
                    assertNonFiniteRow(row, out, betaUsed, r);
                }
            }
            if (variance != null) {
                float[] variances = variance.toFloatArray();
                for (int r = 0; r < rows; r++) {
                    boolean finiteRow = isFinite(Arrays.copyOfRange(xs, r * c, r * c + c));
                    assertEquals(finiteRow, Float.isFinite(variances[r]), "variance[" + r + "] = " + variances[r]);
                }
            }
            return Outcome.RESULT;
        }

        /**
         * Statistics given back to a global pass are checked first: with a NaN or infinite one (from a row
         * holding NaN or Inf), or the negative variance of the defect, the call must be refused. Other
         * defects are found before the statistics are read.
         */
        private Outcome givenStatistics(Defect applied, Outcome expected, Tensor mean, Tensor variance) {
            if (applied == Defect.NEGATIVE_VARIANCE) {
                variance.segment().setAtIndex(ValueLayout.JAVA_FLOAT, rows - 1, -1f);
            }
            boolean finite = isFinite(variance.toFloatArray()) && (mean == null || isFinite(mean.toFloatArray()));
            return expected == Outcome.RESULT && !finite ? Outcome.ILLEGAL_ARGUMENT : expected;
        }

        private LayerNormConfig config() {
            return (rms ? LayerNormConfig.rms(normalized) : LayerNormConfig.of(normalized)).withEps(eps);
        }

        /** The documented semantics (docs/api.md): NaN rows; RMSNorm keeps the shift beside an infinity. */
        private void assertNonFiniteRow(float[] row, float[] out, float[] betaUsed, int r) {
            boolean hasNaN = false;
            for (float value : row) {
                hasNaN |= Float.isNaN(value);
            }
            for (int i = 0; i < c; i++) {
                if (rms && !hasNaN && Float.isFinite(row[i])) {
                    float expected = betaUsed == null ? 0 : Tensors.rounded(dstType, new float[] {betaUsed[i]})[0];
                    assertEquals(expected, out[i], 0, "RMS row " + r + " with an infinity, channel " + i);
                } else {
                    assertTrue(
                            Float.isNaN(out[i]),
                            "row " + r + " holds NaN or Inf, so y[" + r + ", " + i + "] must be NaN, got " + out[i]);
                }
            }
        }

        private Outcome backward(
                Arena arena, LayerNorm norm, Defect applied, Outcome expected, Tensor src, Tensor g, Tensor b) {
            Tensor mean = rms ? null : Tensor.allocate(arena, DataType.F32, rowShape());
            Tensor variance = Tensor.allocate(arena, DataType.F32, rowShape());
            norm.forwardTraining(src, Tensor.allocate(arena, dstType, shape), g, b, mean, variance);
            if (call.global()) {
                expected = givenStatistics(applied, expected, mean, variance);
            }
            Tensor diffDst = layout(arena, dstType, dy);
            Tensor diffSrc;
            if (applied == Defect.PARTIAL_OVERLAP) {
                Tensor[] pair = partiallyOverlapping(arena, diffDst);
                diffDst = pair[0];
                diffSrc = pair[1];
            } else {
                try {
                    diffSrc = output(arena, srcType, applied, diffDst);
                } catch (IllegalArgumentException e) {
                    return refused(expected, Outcome.ILLEGAL_ARGUMENT, e, applied);
                }
            }
            Tensor scaleArg = applied == Defect.MISSING_SCALE
                    ? null
                    : applied == Defect.UNEXPECTED_SCALE ? Tensor.allocate(arena, DataType.F32, normalized) : g;
            boolean parameters = call.parameterGradients();
            Tensor dGamma = parameters && scale ? filled(Tensor.allocate(arena, parameterType, normalized)) : null;
            Tensor dBeta = parameters && shift ? filled(Tensor.allocate(arena, parameterType, normalized)) : null;
            if (applied == Defect.CLOSED_LAYER_NORM) {
                norm.close();
            }
            try {
                switch (call) {
                    case BACKWARD -> norm.backward(diffDst, src, mean, variance, scaleArg, diffSrc, dGamma, dBeta);
                    case BACKWARD_DATA -> norm.backwardData(diffDst, src, mean, variance, scaleArg, diffSrc);
                    case BACKWARD_GLOBAL ->
                        norm.backwardWithGlobalStatistics(
                                diffDst, src, mean, variance, scaleArg, diffSrc, dGamma, dBeta);
                    default -> norm.backwardDataWithGlobalStatistics(diffDst, src, mean, variance, scaleArg, diffSrc);
                }
            } catch (IllegalArgumentException | IllegalStateException e) {
                Outcome got = e instanceof IllegalArgumentException ? Outcome.ILLEGAL_ARGUMENT : Outcome.ILLEGAL_STATE;
                if (diffSrc != diffDst) {
                    assertUntouched(diffSrc, applied);
                }
                assertUntouched(dGamma, applied);
                assertUntouched(dBeta, applied);
                return refused(expected, got, e, applied);
            }
            assertEquals(Outcome.RESULT, expected, "the call succeeded despite " + applied);
            float[] xs = Tensors.rounded(srcType, x);
            float[] dys = Tensors.rounded(dstType, dy);
            float[] dx = Tensors.read(diffSrc);
            float[] means = mean == null ? null : mean.toFloatArray();
            float[] variances = variance.toFloatArray();
            float[] gammaUsed = g == null ? null : Tensors.read(g);
            if (isFinite(xs) && isFinite(dys)) {
                Accuracy.assertBackward(
                        backend,
                        dys,
                        xs,
                        rows,
                        c,
                        means,
                        variances,
                        gammaUsed,
                        config().eps(),
                        call.global(),
                        rms,
                        srcType,
                        parameterType,
                        dx,
                        dGamma == null ? null : Tensors.read(dGamma),
                        dBeta == null ? null : Tensors.read(dBeta));
            } else { // rows with NaN or Inf give non-finite gradients; the others are checked row by row
                for (int r = 0; r < rows; r++) {
                    float[] rowX = Arrays.copyOfRange(xs, r * c, r * c + c);
                    float[] rowDy = Arrays.copyOfRange(dys, r * c, r * c + c);
                    float[] rowDx = Arrays.copyOfRange(dx, r * c, r * c + c);
                    if (isFinite(rowX) && isFinite(rowDy)) {
                        Accuracy.assertBackward(
                                backend,
                                rowDy,
                                rowX,
                                1,
                                c,
                                means == null ? null : new float[] {means[r]},
                                new float[] {variances[r]},
                                gammaUsed,
                                config().eps(),
                                call.global(),
                                rms,
                                srcType,
                                parameterType,
                                rowDx,
                                null,
                                null);
                    } else if (call.global()) { // constant statistics: dx = dy * gamma * rstd, element by element
                        double rstd = 1 / Math.sqrt(variances[r] + config().eps());
                        for (int i = 0; i < c; i++) {
                            double want = rowDy[i] * (gammaUsed == null ? 1 : gammaUsed[i]) * rstd;
                            String what = "dx[" + r + ", " + i + "] = " + rowDx[i] + " for dy " + rowDy[i];
                            if (!Float.isFinite(rowDy[i])) {
                                assertTrue(!Float.isFinite(rowDx[i]), what);
                            } else if (Math.abs(want)
                                    < Accuracy.largest(srcType) / 2) { // else it may overflow the type
                                assertTrue(Float.isFinite(rowDx[i]), what);
                            }
                        }
                    } else {
                        for (int i = 0; i < c; i++) {
                            assertTrue(
                                    !Float.isFinite(rowDx[i]),
                                    "dx[" + r + ", " + i + "] = " + rowDx[i] + " in a poisoned row");
                        }
                    }
                }
            }
            return Outcome.RESULT;
        }

        private Outcome refused(Outcome expected, Outcome got, RuntimeException e, Defect applied) {
            assertEquals(expected, got, "refused with " + e + " though " + applied);
            assertTrue(e.getMessage() != null && !e.getMessage().isBlank(), "an exception without a message");
            return got;
        }

        /** A refused call writes nothing: an output still holds the sentinel it was filled with. */
        private static void assertUntouched(Tensor output, Defect applied) {
            if (output == null
                    || applied == Defect.CLOSED_ARENA
                    || applied == Defect.IN_PLACE
                    || applied == Defect.PARTIAL_OVERLAP
                    || output.elementCount() == 0) {
                return;
            }
            float[] values = Tensors.read(output);
            float[] sentinel = new float[values.length];
            Arrays.fill(sentinel, Tensors.rounded(output.dataType(), new float[] {SENTINEL})[0]);
            assertArrayEquals(sentinel, values, "a refused call wrote to its output");
        }

        private long[] rowShape() {
            return Arrays.copyOf(shape, shape.length - normalized.length);
        }

        private static boolean isFinite(float[] values) {
            for (float value : values) {
                if (!Float.isFinite(value)) {
                    return false;
                }
            }
            return true;
        }

        @Override
        public String toString() {
            List<String> parts = new ArrayList<>();
            parts.add(backend + " " + call + (rms ? " rms" : "") + (precise ? " precise" : ""));
            parts.add("normalized " + Arrays.toString(normalized) + " shape " + Arrays.toString(shape));
            parts.add("eps " + (applicable() == Defect.BAD_EPS ? badEps : eps) + " scale " + scale + " shift " + shift);
            parts.add("src " + srcType + " dst " + dstType + " parameters " + parameterType);
            parts.add(transposed ? "transposed" : "padding " + padding);
            parts.add("defect " + defect + " -> " + applicable());
            return String.join(", ", parts);
        }
    }
}
