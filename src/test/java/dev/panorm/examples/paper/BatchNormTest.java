package dev.panorm.examples.paper;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The example's batch normalization: its backward pass against finite differences, and its running statistics. */
class BatchNormTest {
    private static final int ROWS = 5;
    private static final int WIDTH = 6;

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void backwardMatchesFiniteDifferences(boolean unbiased) {
        SplittableRandom random = new SplittableRandom(1);
        BatchNorm bn = new BatchNorm(WIDTH, unbiased);
        Param x = new Param("x", ROWS * WIDTH);
        Rng.gaussian(x.value(), 2, random);
        // Weights of a linear loss sum(weights * y), so dLoss/dy is known, and non-trivial gamma and beta.
        float[] weights = new float[ROWS * WIDTH];
        Rng.gaussian(weights, 1, random);
        Rng.gaussian(bn.params().get(0).value(), 1, random);
        Rng.gaussian(bn.params().get(1).value(), 1, random);
        List<Param> all = List.of(x, bn.params().get(0), bn.params().get(1));
        float[] y = new float[ROWS * WIDTH];
        bn.forward(x.value(), y, ROWS, true);
        bn.backward(weights, x.grad(), ROWS);
        double worst = GradientCheck.check(
                all,
                () -> {
                    float[] out = new float[ROWS * WIDTH];
                    bn.forward(x.value(), out, ROWS, true);
                    double loss = 0;
                    for (int i = 0; i < out.length; i++) {
                        loss += (double) weights[i] * out[i];
                    }
                    return loss;
                },
                1e-2,
                2e-3);
        System.out.printf("batch norm (unbiased %b): largest finite-difference error %.2g%n", unbiased, worst);
    }

    @Test
    void runningStatisticsFollowPyTorch() {
        BatchNorm bn = new BatchNorm(2, false);
        float[] x = {1, 10, 2, 20, 3, 30, 6, 40}; // column means 3 and 25, unbiased variances 14/3 and 500/3
        bn.forward(x, new float[8], 4, true);
        assertEquals(0.1 * 3, bn.runningMean[0], 1e-6);
        assertEquals(0.1 * 25, bn.runningMean[1], 1e-6);
        assertEquals(0.9 + 0.1 * 14 / 3.0, bn.runningVariance[0], 1e-6);
        assertEquals(0.9 + 0.1 * 500 / 3.0, bn.runningVariance[1], 1e-4);
        // At test time each row is normalized alone, with the running statistics.
        float[] y = new float[2];
        bn.forward(new float[] {3, 25}, y, 1, false);
        assertEquals((3 - 0.3) / Math.sqrt(0.9 + 1.4 / 3 + BatchNorm.EPS), y[0], 1e-5);
    }
}
