package dev.panorm.examples.paper;

import dev.panorm.Backend;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Backpropagation of the example's models against finite differences, every parameter coordinate of small
 * instances: the MLP without normalization, with batch normalization and with panorm's layer normalization,
 * and the GRU with and without layer normalization on each time step, batched and online.
 */
class ModelGradientTest {
    private static final double STEP = 1e-2;
    /** Smaller for the MLP, whose ReLUs have kinks that a large step may cross. */
    private static final double RELU_STEP = 1e-3;

    private static final double TOLERANCE = 5e-3;

    /** Random inputs in [0, 1] and labels. */
    private static float[] inputs(int n, SplittableRandom random) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) random.nextDouble();
        }
        return x;
    }

    private static int[] labels(int n, int classes, SplittableRandom random) {
        int[] y = new int[n];
        for (int i = 0; i < n; i++) {
            y[i] = random.nextInt(classes);
        }
        return y;
    }

    /**
     * Gains and biases away from 1 and 0, so that their gradients are exercised in general position, and no
     * ReLU input sits exactly on the kink (with zero biases, a row whose previous layer is all zero would).
     */
    private static void perturbGainsAndBiases(List<Param> params, SplittableRandom random) {
        for (Param p : params) {
            if (p.name().startsWith("ln.")
                    || p.name().startsWith("bn.")
                    || p.name().startsWith("b")) {
                for (int i = 0; i < p.value().length; i++) {
                    p.value()[i] += (float) (0.3 * random.nextGaussian());
                }
            }
        }
    }

    @Test
    void mlpWithoutNormalization() {
        checkMlp(width -> null, "none");
    }

    @Test
    void mlpWithBatchNormalization() {
        checkMlp(width -> new BatchNorm(width, false), "batch");
        checkMlp(width -> new BatchNorm(width, true), "batch, unbiased");
    }

    @ParameterizedTest
    @EnumSource(
            value = Backend.class,
            names = {"ONEDNN", "JAVA", "JAVA_SCALAR"})
    void mlpWithLayerNormalization(Backend backend) {
        try (Arena arena = Arena.ofConfined();
                LayerNorm ln8 = LayerNorm.create(LayerNormConfig.of(8), backend);
                LayerNorm ln7 = LayerNorm.create(LayerNormConfig.of(7), backend)) {
            CallTimer timer = new CallTimer();
            checkMlp(width -> new PanormNorm(width == 8 ? ln8 : ln7, arena, width, 1, timer), "layer " + backend);
        }
    }

    private static void checkMlp(java.util.function.IntFunction<Norm> norms, String what) {
        SplittableRandom random = new SplittableRandom(3);
        int rows = 5;
        Mlp mlp = new Mlp(new int[] {6, 8, 7, 3}, norms, random);
        perturbGainsAndBiases(mlp.params(), random);
        float[] x = inputs(rows * 6, random);
        int[] y = labels(rows, 3, random);
        mlp.gradients(x, y, null, rows);
        double worst = GradientCheck.check(
                mlp.params(),
                () -> {
                    float[] logits = mlp.logits(x, rows, true);
                    return Ops.crossEntropy(logits, rows, 3, y, null, null) / rows;
                },
                RELU_STEP,
                TOLERANCE);
        System.out.printf("MLP (%s): largest finite-difference error %.2g%n", what, worst);
    }

    @ParameterizedTest
    @EnumSource(
            value = Backend.class,
            names = {"ONEDNN", "JAVA", "JAVA_SCALAR"})
    void gruWithLayerNormalization(Backend backend) {
        int hidden = 5;
        List<LayerNorm> created = new ArrayList<>();
        try (Arena arena = Arena.ofConfined()) {
            CallTimer timer = new CallTimer();
            Gru.Norms norms = (width, slots) -> {
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(width), backend);
                created.add(norm);
                return new PanormNorm(norm, arena, width, slots, timer);
            };
            checkGru(norms, hidden, 3, "layer " + backend);
            checkGru(norms, hidden, 1, "layer " + backend);
        } finally {
            created.forEach(LayerNorm::close);
        }
    }

    @Test
    void gruWithoutNormalization() {
        checkGru(null, 5, 3, "none");
        checkGru(null, 5, 1, "none");
    }

    private static void checkGru(Gru.Norms norms, int hidden, int rows, String what) {
        SplittableRandom random = new SplittableRandom(5);
        int steps = 4;
        int inputs = 3;
        Gru gru = new Gru(steps, inputs, hidden, 3, norms, random);
        perturbGainsAndBiases(gru.params(), random);
        float[] x = inputs(rows * steps * inputs, random);
        int[] y = labels(rows, 3, random);
        gru.gradients(x, y, null, rows);
        double worst = GradientCheck.check(
                gru.params(),
                () -> {
                    float[] logits = gru.logits(x, rows, true);
                    return Ops.crossEntropy(logits, rows, 3, y, null, null) / rows;
                },
                STEP,
                TOLERANCE);
        System.out.printf("GRU (%s, batch %d): largest finite-difference error %.2g%n", what, rows, worst);
    }
}
