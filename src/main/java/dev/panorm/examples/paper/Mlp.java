package dev.panorm.examples.paper;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.IntFunction;

/**
 * The permutation-invariant network of the paper's Figure 6, scaled to the data: fully connected layers
 * {@code sizes[0] -> ... -> sizes[n]}, each hidden layer's summed inputs normalized (or not) before its ReLU,
 * the last layer's logits left alone as in the paper, softmax cross-entropy on top.
 */
final class Mlp implements Classifier {
    private final int[] sizes;
    private final Param[] weights;
    private final Param[] biases;
    private final Norm[] norms; // per hidden layer; null entries: no normalization
    // Activations of the last training-mode forward pass, for the backward pass.
    private final float[][] inputs;
    private final float[][] normalized;

    /**
     * @param norms makes the normalization of a hidden layer of the given width, or returns null for none
     */
    Mlp(int[] sizes, IntFunction<Norm> norms, SplittableRandom random) {
        this.sizes = sizes.clone();
        int layers = sizes.length - 1;
        this.weights = new Param[layers];
        this.biases = new Param[layers];
        this.norms = new Norm[layers - 1];
        this.inputs = new float[layers][];
        this.normalized = new float[layers - 1][];
        for (int k = 0; k < layers; k++) {
            weights[k] = new Param("w" + k, sizes[k] * sizes[k + 1]);
            biases[k] = new Param("b" + k, sizes[k + 1]);
            Rng.gaussian(weights[k].value(), Math.sqrt(2.0 / sizes[k]), random); // He initialization, for ReLU
            if (k < layers - 1) {
                this.norms[k] = norms.apply(sizes[k + 1]);
            }
        }
    }

    @Override
    public List<Param> params() {
        List<Param> all = new ArrayList<>();
        for (int k = 0; k < weights.length; k++) {
            all.add(weights[k]);
            all.add(biases[k]);
            if (k < norms.length && norms[k] != null) {
                all.addAll(norms[k].params());
            }
        }
        return all;
    }

    @Override
    public int classes() {
        return sizes[sizes.length - 1];
    }

    /** The logits of {@code rows} examples; in training mode also keeps the activations for {@link #backward}. */
    @Override
    public float[] logits(float[] x, int rows, boolean training) {
        float[] a = x;
        for (int k = 0; k < weights.length; k++) {
            int in = sizes[k];
            int out = sizes[k + 1];
            float[] z = new float[rows * out];
            Ops.linear(a, rows, in, weights[k].value(), biases[k].value(), z, out);
            if (training) {
                inputs[k] = a;
            }
            if (k == weights.length - 1) {
                return z;
            }
            float[] n = z;
            if (norms[k] != null) {
                n = new float[rows * out];
                norms[k].forward(z, n, rows, training);
            }
            if (training) {
                normalized[k] = n;
            }
            float[] relu = new float[rows * out];
            for (int i = 0; i < relu.length; i++) {
                relu[i] = Math.max(n[i], 0);
            }
            a = relu;
        }
        throw new AssertionError("unreachable");
    }

    /**
     * Adds the gradients of the loss whose gradient with respect to the logits is {@code dLogits} into the parameters.
     */
    void backward(float[] dLogits, int rows) {
        float[] d = dLogits;
        for (int k = weights.length - 1; k >= 0; k--) {
            int in = sizes[k];
            int out = sizes[k + 1];
            float[] dIn = k > 0 ? new float[rows * in] : null;
            Ops.linearBackward(
                    inputs[k], d, rows, in, out, weights[k].value(), weights[k].grad(), biases[k].grad(), dIn);
            if (k == 0) {
                return;
            }
            // dIn is the gradient with respect to the ReLU of layer k-1's normalized values.
            float[] n = normalized[k - 1];
            for (int i = 0; i < dIn.length; i++) {
                if (n[i] <= 0) {
                    dIn[i] = 0;
                }
            }
            if (norms[k - 1] != null) {
                float[] dz = new float[rows * in];
                norms[k - 1].backward(dIn, dz, rows);
                dIn = dz;
            }
            d = dIn;
        }
    }

    /** One training-mode forward and backward pass over a batch; returns its mean loss. */
    @Override
    public double gradients(float[] x, int[] labels, int[] index, int rows) {
        float[] logits = logits(x, rows, true);
        float[] dLogits = new float[logits.length];
        double loss = Ops.crossEntropy(logits, rows, classes(), labels, index, dLogits);
        backward(dLogits, rows);
        return loss / rows;
    }
}
