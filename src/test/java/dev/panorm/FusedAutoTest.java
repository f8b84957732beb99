package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

/** {@link FusedContract} on {@link Backend#AUTO}, and how AUTO routes the fused operations ({@link AutoFusedKernel}). */
class FusedAutoTest extends FusedContract {
    @Override
    Backend backend() {
        return Backend.AUTO;
    }

    /** Runs forwardResidual and backwardResidual on AUTO and returns the backends that ran them. */
    private static Backend[] ranOn(DataType type, int rows, int c, int threads) {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), Backend.AUTO, threads)) {
            Tensor x = Tensors.make(arena, type, TestData.gaussian(rows * c, 0, 1, 1), new long[] {rows, c});
            Tensor r = Tensors.make(arena, type, TestData.gaussian(rows * c, 0, 1, 2), new long[] {rows, c});
            Tensor s = Tensor.allocate(arena, type, rows, c);
            Tensor y = Tensor.allocate(arena, type, rows, c);
            Tensor mean = Tensor.allocate(arena, DataType.F32, rows);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
            Tensor gamma = Tensor.ofFloats(arena, TestData.gaussian(c, 1, 0.5, 3), c);
            Tensor beta = Tensor.ofFloats(arena, TestData.gaussian(c, 0, 1, 4), c);
            norm.forwardResidualTraining(x, r, null, s, y, gamma, beta, mean, variance);
            Backend forward = norm.lastBackend();
            Tensor dx = Tensor.allocate(arena, type, rows, c);
            Tensor dGamma = Tensor.allocate(arena, DataType.F32, c);
            Tensor dBeta = Tensor.allocate(arena, DataType.F32, c);
            norm.backwardResidual(y, x, s, mean, variance, gamma, dx, dGamma, dBeta);
            return new Backend[] {forward, norm.lastBackend()};
        }
    }

    @Test
    void float32GoesToOneDnnWhereItRunsMoreThreadsThanJava() {
        assumeTrue(JavaKernels.vectorized() && OneDnn.isAvailable());
        Backend[] java = {Backend.JAVA, Backend.JAVA};
        Backend[] oneDnn = {Backend.ONEDNN, Backend.ONEDNN};
        // 2^18 elements: oneDNN's two threads against one Java part; 2^19: two Java parts.
        assertArrayEquals(java, ranOn(DataType.F32, 64, 4096, 1), "one thread: Java");
        assertArrayEquals(java, ranOn(DataType.F32, 8, 768, 2), "small: Java");
        assertArrayEquals(oneDnn, ranOn(DataType.F32, 64, 4096, 2));
        assertArrayEquals(java, ranOn(DataType.F32, 128, 4096, 2), "Java splits as oneDNN does: Java");
    }

    @Test
    void halfPrecisionFollowsThePlainNormsCrossovers() {
        assumeTrue(JavaKernels.vectorized() && OneDnn.isAvailable());
        int c = 768;
        for (DataType type : new DataType[] {DataType.BF16, DataType.F16}) {
            Backend plain; // whether oneDNN has more than reference code for the type on this CPU
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), Backend.ONEDNN)) {
                Tensor x = Tensors.make(arena, type, TestData.gaussian(8 * c, 0, 1, 1), new long[] {8, c});
                Tensor gamma = Tensor.ofFloats(arena, TestData.gaussian(c, 1, 0.5, 3), c);
                norm.forward(x, Tensor.allocate(arena, type, 8, c), gamma, gamma);
                plain = norm.lastBackend();
            }
            // The built-in model (the tests run without a profile): a row of 768 in Java; 32 rows in Java for
            // float16 (the plain crossovers, 32x768 forward and 2^16 elements backward), and for bf16 forward on
            // oneDNN (AutoFusedKernel's own bound, 8x768); 128 rows on oneDNN. Java wherever oneDNN has only
            // reference code for the type (float16 on AMD's Zen 5).
            Backend[] java = {Backend.JAVA, Backend.JAVA};
            Backend[] oneDnn = {plain, plain};
            assertArrayEquals(java, ranOn(type, 1, c, 1), type + ", one row");
            assertArrayEquals(
                    type == DataType.BF16 ? new Backend[] {plain, Backend.JAVA} : java,
                    ranOn(type, 32, c, 1),
                    type + ", 32 rows");
            assertArrayEquals(oneDnn, ranOn(type, 128, c, 1), type + ", 128 rows");
        }
    }
}
