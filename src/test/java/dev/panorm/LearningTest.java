package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Proof by learning: a small multi-layer perceptron whose first hidden layer is layer-normalized by
 * panorm (forward training and backward), with plain Java loops for everything else, learns to
 * separate two interleaved spirals by SGD. Everything is seeded, so a run is repeatable, and both
 * backends see the same initial weights and the same batches.
 */
class LearningTest {
    private static final int HIDDEN = 32;
    private static final int HIDDEN2 = 16;
    private static final int EPOCHS = 300;
    private static final int BATCH = 16;
    private static final float LEARNING_RATE = 0.1f;

    /** Points of two spirals, 1.5 turns each, with a little noise; label 0 or 1. */
    private record Data(float[] x, int[] label) {
        int size() {
            return label.length;
        }

        static Data spirals(int perClass, long seed) {
            SplittableRandom random = new SplittableRandom(seed);
            float[] x = new float[4 * perClass];
            int[] label = new int[2 * perClass];
            for (int k = 0; k < 2; k++) {
                for (int i = 0; i < perClass; i++) {
                    double t = random.nextDouble();
                    double r = 0.15 + 0.85 * t;
                    double angle = 3 * Math.PI * t + k * Math.PI + 0.08 * TestData.gaussian(random);
                    int n = k * perClass + i;
                    x[2 * n] = (float) (r * Math.cos(angle));
                    x[2 * n + 1] = (float) (r * Math.sin(angle));
                    label[n] = k;
                }
            }
            return new Data(x, label);
        }
    }

    /** The weights: 2 -> HIDDEN (layer norm, tanh) -> HIDDEN2 (tanh) -> 2 (softmax). */
    private static final class Model {
        final float[] w1 = new float[2 * HIDDEN];
        final float[] b1 = new float[HIDDEN];
        final float[] w2 = new float[HIDDEN * HIDDEN2];
        final float[] b2 = new float[HIDDEN2];
        final float[] w3 = new float[HIDDEN2 * 2];
        final float[] b3 = new float[2];

        Model(long seed) {
            SplittableRandom random = new SplittableRandom(seed);
            init(w1, 2, random);
            init(w2, HIDDEN, random);
            init(w3, HIDDEN2, random);
        }

        private static void init(float[] w, int fanIn, SplittableRandom random) {
            for (int i = 0; i < w.length; i++) {
                w[i] = (float) (TestData.gaussian(random) * 2 / Math.sqrt(fanIn));
            }
        }
    }

    /** What a training run produced: mean loss per epoch and accuracy on held-out points. */
    private record Run(double[] loss, double accuracy) {}

    private static Run train(Backend backend, Data train, Data test) {
        Model m = new Model(7);
        SplittableRandom shuffle = new SplittableRandom(11);
        double[] lossPerEpoch = new double[EPOCHS];
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(HIDDEN), backend)) {
            // Off-heap activations and parameters for the layer norm; everything else stays in Java arrays.
            Tensor h = Tensor.allocate(arena, DataType.F32, BATCH, HIDDEN);
            Tensor hn = Tensor.allocate(arena, DataType.F32, BATCH, HIDDEN);
            Tensor mean = Tensor.allocate(arena, DataType.F32, BATCH);
            Tensor variance = Tensor.allocate(arena, DataType.F32, BATCH);
            float[] ones = new float[HIDDEN];
            Arrays.fill(ones, 1);
            Tensor gamma = Tensor.ofFloats(arena, ones, HIDDEN);
            Tensor beta = Tensor.allocate(arena, DataType.F32, HIDDEN);
            Tensor dHn = Tensor.allocate(arena, DataType.F32, BATCH, HIDDEN);
            Tensor dH = Tensor.allocate(arena, DataType.F32, BATCH, HIDDEN);
            Tensor dGamma = Tensor.allocate(arena, DataType.F32, HIDDEN);
            Tensor dBeta = Tensor.allocate(arena, DataType.F32, HIDDEN);
            int[] order = new int[train.size()];
            for (int i = 0; i < order.length; i++) {
                order[i] = i;
            }
            for (int epoch = 0; epoch < EPOCHS; epoch++) {
                for (int i = order.length - 1; i > 0; i--) {
                    int j = shuffle.nextInt(i + 1);
                    int t = order[i];
                    order[i] = order[j];
                    order[j] = t;
                }
                double epochLoss = 0;
                for (int start = 0; start + BATCH <= order.length; start += BATCH) {
                    int[] batch = Arrays.copyOfRange(order, start, start + BATCH);
                    epochLoss +=
                            step(m, train, batch, norm, h, hn, mean, variance, gamma, beta, dHn, dH, dGamma, dBeta);
                }
                lossPerEpoch[epoch] = epochLoss / (order.length / BATCH);
            }
            int correct = 0;
            float[] hnRow = new float[HIDDEN];
            try (Arena eval = Arena.ofConfined()) {
                Tensor one = Tensor.allocate(eval, DataType.F32, 1, HIDDEN);
                for (int n = 0; n < test.size(); n++) {
                    linear(test.x(), 2 * n, 2, m.w1, m.b1, HIDDEN, one.segment());
                    norm.forward(one, one, gamma, beta); // batch size 1
                    MemorySegment.copy(one.segment(), ValueLayout.JAVA_FLOAT, 0, hnRow, 0, HIDDEN);
                    float[] logits = head(m, hnRow, null);
                    correct += (logits[1] > logits[0] ? 1 : 0) == test.label()[n] ? 1 : 0;
                }
            }
            return new Run(lossPerEpoch, (double) correct / test.size());
        }
    }

    /** One SGD step on {@code batch}; returns the batch's mean cross-entropy. */
    private static double step(
            Model m,
            Data data,
            int[] batch,
            LayerNorm norm,
            Tensor h,
            Tensor hn,
            Tensor mean,
            Tensor variance,
            Tensor gamma,
            Tensor beta,
            Tensor dHn,
            Tensor dH,
            Tensor dGamma,
            Tensor dBeta) {
        for (int b = 0; b < BATCH; b++) {
            linear(data.x(), 2 * batch[b], 2, m.w1, m.b1, HIDDEN, h.segment().asSlice((long) b * HIDDEN * 4));
        }
        norm.forwardTraining(h, hn, gamma, beta, mean, variance);
        float[] hnAll = hn.toFloatArray();
        float[] dHnAll = new float[BATCH * HIDDEN];
        float[] gw2 = new float[m.w2.length];
        float[] gb2 = new float[m.b2.length];
        float[] gw3 = new float[m.w3.length];
        float[] gb3 = new float[m.b3.length];
        double loss = 0;
        for (int b = 0; b < BATCH; b++) {
            float[] hnRow = Arrays.copyOfRange(hnAll, b * HIDDEN, (b + 1) * HIDDEN);
            float[][] cache = new float[2][];
            float[] logits = head(m, hnRow, cache);
            float max = Math.max(logits[0], logits[1]);
            double e0 = Math.exp(logits[0] - max);
            double e1 = Math.exp(logits[1] - max);
            double p1 = e1 / (e0 + e1);
            int label = data.label()[batch[b]];
            loss -= Math.log(label == 1 ? p1 : 1 - p1);
            // dLoss/dlogits of the mean cross-entropy over the batch.
            float[] dLogits = {
                (float) ((1 - p1) - (label == 0 ? 1 : 0)) / BATCH, (float) (p1 - (label == 1 ? 1 : 0)) / BATCH
            };
            float[] a = cache[0]; // tanh(hn)
            float[] a2 = cache[1]; // tanh(a W2 + b2)
            float[] dA2 = new float[HIDDEN2];
            for (int j = 0; j < HIDDEN2; j++) {
                for (int k = 0; k < 2; k++) {
                    gw3[j * 2 + k] += a2[j] * dLogits[k];
                    dA2[j] += m.w3[j * 2 + k] * dLogits[k];
                }
            }
            gb3[0] += dLogits[0];
            gb3[1] += dLogits[1];
            float[] dA = new float[HIDDEN];
            for (int j = 0; j < HIDDEN2; j++) {
                float dz = dA2[j] * (1 - a2[j] * a2[j]);
                gb2[j] += dz;
                for (int i = 0; i < HIDDEN; i++) {
                    gw2[i * HIDDEN2 + j] += a[i] * dz;
                    dA[i] += m.w2[i * HIDDEN2 + j] * dz;
                }
            }
            for (int i = 0; i < HIDDEN; i++) {
                dHnAll[b * HIDDEN + i] = dA[i] * (1 - a[i] * a[i]);
            }
        }
        MemorySegment.copy(dHnAll, 0, dHn.segment(), ValueLayout.JAVA_FLOAT, 0, dHnAll.length);
        norm.backward(dHn, h, mean, variance, gamma, dH, dGamma, dBeta);
        float[] dHAll = dH.toFloatArray();
        float[] gw1 = new float[m.w1.length];
        float[] gb1 = new float[m.b1.length];
        for (int b = 0; b < BATCH; b++) {
            for (int i = 0; i < HIDDEN; i++) {
                float d = dHAll[b * HIDDEN + i];
                gb1[i] += d;
                gw1[i] += data.x()[2 * batch[b]] * d;
                gw1[HIDDEN + i] += data.x()[2 * batch[b] + 1] * d;
            }
        }
        sgd(m.w1, gw1);
        sgd(m.b1, gb1);
        sgd(m.w2, gw2);
        sgd(m.b2, gb2);
        sgd(m.w3, gw3);
        sgd(m.b3, gb3);
        sgd(gamma.segment(), dGamma.toFloatArray());
        sgd(beta.segment(), dBeta.toFloatArray());
        return loss / BATCH;
    }

    /** out = x[offset .. offset+in) * w + b, w stored [in][outSize]. */
    private static void linear(float[] x, int offset, int in, float[] w, float[] b, int outSize, MemorySegment out) {
        for (int j = 0; j < outSize; j++) {
            float v = b[j];
            for (int i = 0; i < in; i++) {
                v += x[offset + i] * w[i * outSize + j];
            }
            out.setAtIndex(ValueLayout.JAVA_FLOAT, j, v);
        }
    }

    /** tanh, hidden layer 2, output layer; caches the activations for the backward pass when asked. */
    private static float[] head(Model m, float[] hn, float[][] cache) {
        float[] a = new float[HIDDEN];
        for (int i = 0; i < HIDDEN; i++) {
            a[i] = (float) Math.tanh(hn[i]);
        }
        float[] a2 = new float[HIDDEN2];
        for (int j = 0; j < HIDDEN2; j++) {
            float v = m.b2[j];
            for (int i = 0; i < HIDDEN; i++) {
                v += a[i] * m.w2[i * HIDDEN2 + j];
            }
            a2[j] = (float) Math.tanh(v);
        }
        float[] logits = new float[2];
        for (int k = 0; k < 2; k++) {
            float v = m.b3[k];
            for (int j = 0; j < HIDDEN2; j++) {
                v += a2[j] * m.w3[j * 2 + k];
            }
            logits[k] = v;
        }
        if (cache != null) {
            cache[0] = a;
            cache[1] = a2;
        }
        return logits;
    }

    private static void sgd(float[] w, float[] g) {
        for (int i = 0; i < w.length; i++) {
            w[i] -= LEARNING_RATE * g[i];
        }
    }

    private static void sgd(MemorySegment w, float[] g) {
        for (int i = 0; i < g.length; i++) {
            w.setAtIndex(ValueLayout.JAVA_FLOAT, i, w.getAtIndex(ValueLayout.JAVA_FLOAT, i) - LEARNING_RATE * g[i]);
        }
    }

    @Test
    void anMlpWithLayerNormLearnsTwoSpiralsOnBothBackends() {
        Data train = Data.spirals(200, 1);
        Data test = Data.spirals(200, 2);
        Run onednn = train(Backend.ONEDNN, train, test);
        Run java = train(Backend.JAVA, train, test);
        System.out.printf(
                "spirals: accuracy oneDNN %.3f, Java %.3f; loss epoch 1 %.4f/%.4f, last %.4f/%.4f%n",
                onednn.accuracy(),
                java.accuracy(),
                onednn.loss()[0],
                java.loss()[0],
                onednn.loss()[EPOCHS - 1],
                java.loss()[EPOCHS - 1]);
        double maxGap = 0;
        for (int epoch = 0; epoch < EPOCHS; epoch++) {
            maxGap = Math.max(maxGap, Math.abs(onednn.loss()[epoch] - java.loss()[epoch]));
        }
        System.out.printf("spirals: largest loss difference between backends over %d epochs: %.3g%n", EPOCHS, maxGap);
        assertTrue(onednn.accuracy() >= 0.95, "oneDNN accuracy " + onednn.accuracy());
        assertTrue(java.accuracy() >= 0.95, "Java accuracy " + java.accuracy());
        assertTrue(onednn.loss()[EPOCHS - 1] < 0.25 * onednn.loss()[0], "the loss must fall");
        assertTrue(maxGap <= 1e-4, "loss curves differ by " + maxGap); // measured: 4e-7
    }

    @ParameterizedTest
    @EnumSource(
            value = Backend.class,
            names = {"ONEDNN", "JAVA", "JAVA_SCALAR"}) // AUTO is bit-exact only per choice
    void aRowIsNormalizedAndDifferentiatedTheSameAloneAndInABatch(Backend backend) {
        // The property that separates layer from batch normalization: nothing depends on the other rows.
        int rows = 16;
        int c = 48;
        float[] x = TestData.gaussian(rows * c, 0.5, 2, 21);
        float[] dy = TestData.gaussian(rows * c, 0, 1, 22);
        float[] g = TestData.gaussian(c, 1, 1, 23);
        float[] bShift = TestData.gaussian(c, 0, 1, 24);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend)) {
            Tensor gamma = Tensor.ofFloats(arena, g, c);
            Tensor beta = Tensor.ofFloats(arena, bShift, c);
            float[][] batch = step(norm, arena, x, dy, rows, c, gamma, beta);
            float[] sumOfSingleDGamma = new float[c];
            for (int r = 0; r < rows; r++) {
                float[] xr = Arrays.copyOfRange(x, r * c, (r + 1) * c);
                float[] dyr = Arrays.copyOfRange(dy, r * c, (r + 1) * c);
                float[][] single = step(norm, arena, xr, dyr, 1, c, gamma, beta);
                assertArrayEquals(Arrays.copyOfRange(batch[0], r * c, (r + 1) * c), single[0], 0f, "y of row " + r);
                assertArrayEquals(Arrays.copyOfRange(batch[1], r * c, (r + 1) * c), single[1], 0f, "dx of row " + r);
                for (int i = 0; i < c; i++) {
                    sumOfSingleDGamma[i] += single[2][i];
                }
            }
            // The batch's parameter gradient is the sum of the per-row ones (up to float summation order).
            for (int i = 0; i < c; i++) {
                assertEquals(sumOfSingleDGamma[i], batch[2][i], 1e-5 * rows, "dgamma[" + i + "]");
            }
        }
    }

    /** forwardTraining then backward on [rows, c]; returns {y, dx, dgamma}. */
    private static float[][] step(
            LayerNorm norm, Arena arena, float[] x, float[] dy, int rows, int c, Tensor gamma, Tensor beta) {
        Tensor src = Tensor.ofFloats(arena, x, rows, c);
        Tensor dst = Tensor.allocate(arena, DataType.F32, rows, c);
        Tensor mean = Tensor.allocate(arena, DataType.F32, rows);
        Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
        norm.forwardTraining(src, dst, gamma, beta, mean, variance);
        Tensor dx = Tensor.allocate(arena, DataType.F32, rows, c);
        Tensor dGamma = Tensor.allocate(arena, DataType.F32, c);
        norm.backward(
                Tensor.ofFloats(arena, dy, rows, c),
                src,
                mean,
                variance,
                gamma,
                dx,
                dGamma,
                Tensor.allocate(arena, DataType.F32, c));
        return new float[][] {dst.toFloatArray(), dx.toFloatArray(), dGamma.toFloatArray()};
    }
}
