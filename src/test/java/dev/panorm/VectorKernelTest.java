package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

/** The contract, on the Java backend (the Vector API kernels: the tests run with jdk.incubator.vector). */
class VectorKernelTest extends LayerNormContract {
    @Override
    Backend backend() {
        return Backend.JAVA;
    }

    /**
     * The contract above proves the vector kernels only if they run: on the module path panorm reads
     * jdk.incubator.vector through a {@code requires static}, and without it the backend would quietly
     * fall back to its scalar kernels.
     */
    @Test
    void theVectorKernelsRun() {
        assertTrue(
                JavaKernels.vectorized(),
                "the Java backend runs its scalar kernels: is jdk.incubator.vector readable?");
    }

    /**
     * The vector kernel shifts each row by the mean of a sample (its first four vectors) and takes the
     * variance as {@code E[d^2] - E[d]^2} in one pass, unless the sample is far from the mean. Here
     * the sample holds the row's only large values: E[d]^2 is about 250 times the variance, the one-pass
     * formula would lose about 8 bits (errors near 1e-3 against a tolerance of 1e-5), so the kernel
     * must take its centred second pass. Rows 2 and 3 are the easy case, for contrast.
     */
    @Test
    void rowWhoseSampleIsFarFromItsMean() {
        int c = 65536;
        int rows = 3;
        float[] x = TestData.gaussian(rows * c, 0, 0.01, 7);
        for (int i = 0; i < 256; i++) { // the first four vectors of any species up to 2048 bits
            x[i] = 1;
        }
        float[] gamma = TestData.gaussian(c, 1, 0.5, 8);
        float[] beta = TestData.gaussian(c, 0, 0.5, 9);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend(), 1)) {
            Tensor src = Tensors.make(arena, DataType.F32, x, rows, c);
            Tensor dst = Tensor.allocate(arena, DataType.F32, rows, c);
            Tensor mean = Tensor.allocate(arena, DataType.F32, rows);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
            norm.forwardTraining(
                    src,
                    dst,
                    Tensors.make(arena, DataType.F32, gamma, c),
                    Tensors.make(arena, DataType.F32, beta, c),
                    mean,
                    variance);
            Contracts.assertRanOn(backend(), norm);
            Accuracy.assertForward(backend(), x, rows, c, gamma, beta, 1e-5, Tensors.read(dst));
            Accuracy.assertStatistics(backend(), x, rows, c, Tensors.read(mean), Tensors.read(variance));
        }
    }
}
