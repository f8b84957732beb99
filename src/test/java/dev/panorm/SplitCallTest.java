package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Calls large enough for the Java kernels to split their rows across threads ({@link RowSplitter}): per row the
 * same bits as on one thread, the gradients summed over rows within rounding of the one-thread sums, and every
 * result the same from run to run, whichever thread took which part.
 */
class SplitCallTest {
    private static final int C = 1024;
    /** 2^20 elements: two threads, {@link RowSplitter#PARTS_PER_THREAD} parts each. */
    private static final int ROWS = 1024;

    /** One call's outputs, as floats. */
    private record Outputs(List<float[]> rows, float[] dGamma, float[] dBeta) {}

    private static Outputs run(DataType type, int threads, boolean fused) {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), Backend.JAVA, threads)) {
            Tensor x = Tensor.ofFloats(arena, type, TestData.gaussian(ROWS * C, 0.5, 2, 11), ROWS, C);
            Tensor r = Tensor.ofFloats(arena, type, TestData.gaussian(ROWS * C, -1, 1, 12), ROWS, C);
            Tensor dy = Tensor.ofFloats(arena, type, TestData.gaussian(ROWS * C, 0, 1, 13), ROWS, C);
            Tensor gamma = Tensor.ofFloats(arena, TestData.gaussian(C, 1, 0.5, 14), C);
            Tensor beta = Tensor.ofFloats(arena, TestData.gaussian(C, 0, 0.5, 15), C);
            Tensor s = Tensor.allocate(arena, type, ROWS, C);
            Tensor y = Tensor.allocate(arena, type, ROWS, C);
            Tensor dx = Tensor.allocate(arena, type, ROWS, C);
            Tensor mean = Tensor.allocate(arena, DataType.F32, ROWS);
            Tensor variance = Tensor.allocate(arena, DataType.F32, ROWS);
            Tensor dGamma = Tensor.allocate(arena, DataType.F32, C);
            Tensor dBeta = Tensor.allocate(arena, DataType.F32, C);
            if (fused) {
                norm.forwardResidualTraining(x, r, null, s, y, gamma, beta, mean, variance);
                norm.backwardResidual(dy, null, s, mean, variance, gamma, dx, dGamma, dBeta);
            } else {
                norm.forwardTraining(x, y, gamma, beta, mean, variance);
                norm.backward(dy, x, mean, variance, gamma, dx, dGamma, dBeta);
            }
            return new Outputs(
                    List.of(y.toFloatArray(), mean.toFloatArray(), variance.toFloatArray(), dx.toFloatArray()),
                    dGamma.toFloatArray(),
                    dBeta.toFloatArray());
        }
    }

    @Test
    void splitCallsMatchOneThreadAndRepeatThemselves() {
        assumeTrue(JavaKernels.vectorized());
        assertEquals(2, new RowSplitter(2).threads(ROWS, (long) ROWS * C));
        for (DataType type : new DataType[] {DataType.F32, DataType.BF16}) {
            for (boolean fused : new boolean[] {false, true}) {
                String what = type + (fused ? " fused" : " plain");
                Outputs alone = run(type, 1, fused);
                Outputs split = run(type, 2, fused);
                for (int i = 0; i < alone.rows().size(); i++) { // y, mean, variance, dx: row by row
                    assertArrayEquals(alone.rows().get(i), split.rows().get(i), what + ", output " + i);
                }
                assertClose(alone.dGamma(), split.dGamma(), what + ", dgamma");
                assertClose(alone.dBeta(), split.dBeta(), what + ", dbeta");
                for (int repeat = 0; repeat < 3; repeat++) {
                    Outputs again = run(type, 2, fused);
                    assertArrayEquals(split.dGamma(), again.dGamma(), what + ", dgamma again");
                    assertArrayEquals(split.dBeta(), again.dBeta(), what + ", dbeta again");
                }
            }
        }
    }

    /**
     * Callers on several threads share one pool: each caller takes the parts no pool thread has started, so none
     * waits on another's, and each call's results are the same bits as alone.
     */
    @Test
    void concurrentSplitCallsShareThePool() throws Exception {
        assumeTrue(JavaKernels.vectorized());
        Outputs alone = run(DataType.F32, 2, false);
        List<Future<Outputs>> calls = new ArrayList<>();
        try (var callers = Executors.newFixedThreadPool(4)) {
            for (int i = 0; i < 12; i++) {
                calls.add(callers.submit(() -> run(DataType.F32, 2, false)));
            }
            for (var call : calls) {
                Outputs outputs = call.get(60, TimeUnit.SECONDS);
                for (int i = 0; i < alone.rows().size(); i++) {
                    assertArrayEquals(alone.rows().get(i), outputs.rows().get(i), "output " + i);
                }
                assertArrayEquals(alone.dGamma(), outputs.dGamma(), "dgamma");
                assertArrayEquals(alone.dBeta(), outputs.dBeta(), "dbeta");
            }
        }
    }

    /** Sums of 1024 rows in another grouping: within a few units of float32 rounding of the larger terms. */
    private static void assertClose(float[] expected, float[] actual, String what) {
        for (int i = 0; i < expected.length; i++) {
            float tolerance = 1e-5f * Math.max(1, Math.abs(expected[i])) * 32;
            assertTrue(
                    Math.abs(expected[i] - actual[i]) <= tolerance,
                    what + " [" + i + "]: " + expected[i] + " against " + actual[i]);
        }
    }
}
