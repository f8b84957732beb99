package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * bfloat16 and float16 data on the Java backend's vector kernels, over the contracts' grid of shapes
 * (odd sizes, vector tails, long rows; scale and shift on and off), in every pass: forward inference,
 * training and global statistics, backward full and data-only with computed and with global statistics,
 * for layer and RMS normalization, in contiguous and row-padded layouts, and half-precision, float32 and
 * mixed tensors, each call checked to have run on the vector kernels ({@link Contracts#assertRanOn})
 * and checked against {@link Reference} within {@link Accuracy}'s tolerances plus the output type's rounding.
 */
class HalfPrecisionTest {
    private static final double EPS = 1e-5;
    private static final Backend BACKEND = Backend.JAVA;

    /** The types of src, dst, scale/shift, diff_dst, diff_src, and of diff_scale/diff_shift. */
    private record Types(DataType x, DataType y, DataType parameters, DataType dy, DataType dx, DataType gradients) {
        @Override
        public String toString() {
            return x + "->" + y + ", parameters " + parameters + ", " + dy + "->" + dx + ", gradients " + gradients;
        }
    }

    private static final DataType F32 = DataType.F32;
    private static final DataType BF16 = DataType.BF16;
    private static final DataType F16 = DataType.F16;

    /** All bf16, all f16 and mixed types (half in and float out, and the reverse), in turn over the shapes. */
    private static final List<Types> MIXED = List.of(
            new Types(BF16, F32, F32, BF16, F32, F32),
            new Types(F32, F16, BF16, F32, BF16, F16),
            new Types(F16, BF16, F32, BF16, F16, BF16),
            new Types(BF16, F16, F16, F16, BF16, F32));

    static Stream<Arguments> cases() {
        List<Arguments> cases = new ArrayList<>();
        List<Arguments> shapes = Contracts.shapes(new int[] {1, 9, 1500}, new int[] {1, 33}, new int[] {1, 5})
                .toList();
        for (int i = 0; i < shapes.size(); i++) {
            Object[] shape = shapes.get(i).get();
            for (Types types : List.of(
                    new Types(BF16, BF16, BF16, BF16, BF16, BF16),
                    new Types(F16, F16, F16, F16, F16, F16),
                    MIXED.get(i % MIXED.size()))) {
                cases.add(Arguments.of(shape[0], shape[1], shape[2], shape[3], types, i % 2 == 1, i % 3 == 2));
            }
        }
        return cases.stream();
    }

    /** Everything the passes write, as float, in C order (null where not written). */
    private record Outputs(
            float[] y,
            float[] trained,
            float[] mean,
            float[] variance,
            float[] global,
            float[][] dx,
            float[][] dGamma,
            float[][] dBeta) {}

    /**
     * Runs every pass on tensors of {@code types} holding {@code x}, {@code dy}, {@code gamma} and {@code
     * beta} (rounded to those types), each call checked to have run on the vector kernels.
     */
    private static Outputs run(
            LayerNormConfig config,
            Types types,
            boolean padded,
            int rows,
            int c,
            float[] x,
            float[] dy,
            float[] gamma,
            float[] beta) {
        boolean rms = config.rms();
        long[] shape = {rows, c};
        long padding = padded ? 3 : 0; // rows 3 elements apart: unit stride along the row, odd row offsets
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(config, BACKEND)) {
            Tensor src = Tensors.padded(arena, types.x(), x, shape, padding);
            Tensor g = gamma != null ? Tensors.make(arena, types.parameters(), gamma, c) : null;
            Tensor b = beta != null ? Tensors.make(arena, types.parameters(), beta, c) : null;

            Tensor dst = Tensors.padded(arena, types.y(), new float[rows * c], shape, padding);
            norm.forward(src, dst, g, b);
            Contracts.assertRanOn(BACKEND, norm);

            Tensor mean = rms ? null : Tensor.allocate(arena, F32, rows);
            Tensor variance = Tensor.allocate(arena, F32, rows);
            Tensor trained = Tensor.allocate(arena, types.y(), rows, c);
            norm.forwardTraining(src, trained, g, b, mean, variance);
            Contracts.assertRanOn(BACKEND, norm);

            Tensor global = Tensors.padded(arena, types.y(), new float[rows * c], shape, padding);
            norm.forwardWithGlobalStatistics(src, global, g, b, mean, variance);
            Contracts.assertRanOn(BACKEND, norm);

            Tensor diffDst = Tensors.padded(arena, types.dy(), dy, shape, padding);
            float[][] dxs = new float[2][];
            float[][] dGammas = new float[2][];
            float[][] dBetas = new float[2][];
            for (int k = 0; k < 2; k++) {
                boolean globalStatistics = k == 1;
                boolean dataOnly = globalStatistics == padded; // both kinds, with either statistics, over the grid
                Tensor dx = Tensors.padded(arena, types.dx(), new float[rows * c], shape, padding);
                Tensor dGamma = g != null && !dataOnly ? Tensor.allocate(arena, types.gradients(), c) : null;
                Tensor dBeta = b != null && !dataOnly ? Tensor.allocate(arena, types.gradients(), c) : null;
                if (globalStatistics && dataOnly) {
                    norm.backwardDataWithGlobalStatistics(diffDst, src, mean, variance, g, dx);
                } else if (globalStatistics) {
                    norm.backwardWithGlobalStatistics(diffDst, src, mean, variance, g, dx, dGamma, dBeta);
                } else if (dataOnly) {
                    norm.backwardData(diffDst, src, mean, variance, g, dx);
                } else {
                    norm.backward(diffDst, src, mean, variance, g, dx, dGamma, dBeta);
                }
                Contracts.assertRanOn(BACKEND, norm);
                dxs[k] = Tensors.read(dx);
                dGammas[k] = dGamma == null ? null : Tensors.read(dGamma);
                dBetas[k] = dBeta == null ? null : Tensors.read(dBeta);
            }
            return new Outputs(
                    Tensors.read(dst),
                    Tensors.read(trained),
                    rms ? null : Tensors.read(mean),
                    Tensors.read(variance),
                    Tensors.read(global),
                    dxs,
                    dGammas,
                    dBetas);
        }
    }

    /**
     * Against the reference within the tolerances, and bit for bit against the float32 kernels run on the
     * same (widened) values with the results rounded to each output's type: the half-precision paths are the
     * float32 kernels plus exact widening and one rounding, to nearest, ties to even, as the scalar kernels
     * round.
     */
    @ParameterizedTest(name = "[{0}, {1}] scale={2} shift={3} {4} padded={5} rms={6}")
    @MethodSource("cases")
    void everyPassMatchesTheReferenceAndTheFloatKernels(
            int rows, int c, boolean scale, boolean shift, Types types, boolean padded, boolean rms) {
        long seed = 17L * rows + c;
        float[] x = Tensors.rounded(types.x(), TestData.gaussian(rows * c, rms ? 0 : 0.5, 2, seed));
        float[] dy = Tensors.rounded(types.dy(), TestData.gaussian(rows * c, 0, 1, seed + 1));
        float[] gamma = scale ? Tensors.rounded(types.parameters(), TestData.gaussian(c, 1, 0.5, seed + 2)) : null;
        float[] beta = shift ? Tensors.rounded(types.parameters(), TestData.gaussian(c, 0, 1, seed + 3)) : null;
        LayerNormConfig config = (rms ? LayerNormConfig.rms(c) : LayerNormConfig.of(c))
                .withEps(EPS)
                .withScale(scale)
                .withShift(shift);
        Outputs out = run(config, types, padded, rows, c, x, dy, gamma, beta);

        Accuracy.assertForward(BACKEND, x, rows, c, gamma, beta, EPS, rms, types.y(), out.y());
        Accuracy.assertForward(BACKEND, x, rows, c, gamma, beta, EPS, rms, types.y(), out.trained());
        if (!rms) {
            Accuracy.assertStatistics(BACKEND, x, rows, c, out.mean(), out.variance());
        }
        Accuracy.assertForwardGlobal(
                BACKEND, x, rows, c, out.mean(), out.variance(), gamma, beta, EPS, types.y(), out.global());
        for (int k = 0; k < 2; k++) {
            Accuracy.assertBackward(
                    BACKEND,
                    dy,
                    x,
                    rows,
                    c,
                    out.mean(),
                    out.variance(),
                    gamma,
                    EPS,
                    k == 1,
                    rms,
                    types.dx(),
                    types.gradients(),
                    out.dx()[k],
                    out.dGamma()[k],
                    out.dBeta()[k]);
        }

        Outputs floats = run(config, new Types(F32, F32, F32, F32, F32, F32), padded, rows, c, x, dy, gamma, beta);
        // All-bf16 calls read their rows in Bf16Pairs' order, which sums in another order than the float kernels:
        // their results may differ from the float kernels' rounded by an ulp of the output type.
        boolean paired = types.x() == BF16 && types.y() == BF16 && types.dy() == BF16 && types.dx() == BF16;
        int ulps = paired ? 1 : 0;
        assertRounded(types.y(), floats.y(), out.y(), ulps, "y");
        assertRounded(types.y(), floats.trained(), out.trained(), ulps, "y (training)");
        if (!paired) { // the reference checks above bound both
            assertRounded(F32, floats.mean(), out.mean(), 0, "mean");
            assertRounded(F32, floats.variance(), out.variance(), 0, "variance");
        }
        assertRounded(types.y(), floats.global(), out.global(), ulps, "y (global statistics)");
        for (int k = 0; k < 2; k++) {
            assertRounded(types.dx(), floats.dx()[k], out.dx()[k], ulps, "dx");
            assertRounded(types.gradients(), floats.dGamma()[k], out.dGamma()[k], ulps, "dgamma");
            assertRounded(types.gradients(), floats.dBeta()[k], out.dBeta()[k], ulps, "dbeta");
        }
    }

    /**
     * {@code actual} is the float kernels' result rounded to {@code type}, or (bf16) within {@code ulps} of it or
     * of the float rounding of the largest result.
     */
    private static void assertRounded(DataType type, float[] floats, float[] actual, int ulps, String what) {
        if (floats == null) {
            assertNull(actual, what);
            return;
        }
        float[] expected = Tensors.rounded(type, floats);
        if (ulps == 0) {
            assertArrayEquals(expected, actual, what + " is not the float32 kernels' result rounded");
            return;
        }
        assertEquals(DataType.BF16, type, "ulps are counted for bf16 results");
        // Near zero, where bf16 ulps are tiny, the float sums' own rounding (relative to the largest value) shows.
        float largest = 0;
        for (float value : expected) {
            largest = Float.isFinite(value) ? Math.max(largest, Math.abs(value)) : largest;
        }
        float floatNoise = 0x1p-20f * largest;
        for (int i = 0; i < expected.length; i++) {
            if (Float.isNaN(expected[i]) && Float.isNaN(actual[i])) {
                continue;
            }
            // bf16 keeps 16 fewer significand bits than float; the larger ulp where the two straddle a power of 2
            float ulp = 65536 * Math.max(Math.ulp(expected[i]), Math.ulp(actual[i]));
            assertTrue(
                    Math.abs(actual[i] - expected[i]) <= ulps * ulp + floatNoise,
                    what + "[" + i + "] = " + actual[i] + ", more than " + ulps
                            + " bf16 ulp from the float32 kernels' result rounded, " + expected[i]);
        }
    }
}
