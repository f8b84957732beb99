package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

/** The contract, on AUTO, and the cost model's choices. */
class AutoKernelTest extends LayerNormContract {
    @Override
    Backend backend() {
        return Backend.AUTO;
    }

    /** Runs one forward call on {@code rows x c} float32 (or bf16) data and returns the backend that ran it. */
    private static Backend ranOn(long rows, int c, DataType type) {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c))) {
            Tensor x = Tensor.allocate(arena, type, rows, c);
            norm.forward(x, x, Tensor.allocate(arena, DataType.F32, c), Tensor.allocate(arena, DataType.F32, c));
            return norm.lastBackend();
        }
    }

    @Test
    void smallFloatCallsRunInTheVectorKernel() {
        assumeTrue(JavaKernels.vectorized() && OneDnn.isAvailable());
        assertEquals(Backend.JAVA, ranOn(1, 768, DataType.F32));
        assertEquals(Backend.JAVA, ranOn(AutoKernel.javaUpTo(Pass.FORWARD_INFERENCE) / 768, 768, DataType.F32));
    }

    @Test
    void largerCallsAndOtherTypesRunOnOneDnn() {
        assumeTrue(OneDnn.isAvailable());
        assertEquals(Backend.ONEDNN, ranOn(AutoKernel.javaUpTo(Pass.FORWARD_INFERENCE) / 768 + 1, 768, DataType.F32));
        assertEquals(Backend.ONEDNN, ranOn(1, 768, DataType.BF16)); // the vector kernel takes float32 only
    }

    @Test
    void theChoiceIsDeterministicSoResultsAreReproducible() {
        float[] x = TestData.gaussian(8 * 768, 0.5, 2, 11);
        float[] first = null;
        for (int run = 0; run < 3; run++) {
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(LayerNormConfig.of(768))) {
                Tensor src = Tensor.ofFloats(arena, x, 8, 768);
                Tensor dst = Tensor.allocate(arena, DataType.F32, 8, 768);
                Tensor gamma = Tensor.ofFloats(arena, TestData.gaussian(768, 1, 1, 12), 768);
                Tensor beta = Tensor.ofFloats(arena, TestData.gaussian(768, 0, 1, 13), 768);
                norm.forward(src, dst, gamma, beta);
                float[] y = dst.toFloatArray();
                if (first == null) {
                    first = y;
                } else {
                    assertArrayEquals(first, y, "run " + run);
                }
            }
        }
    }
}
