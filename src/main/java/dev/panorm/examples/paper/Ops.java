package dev.panorm.examples.paper;

import java.util.Arrays;

/**
 * The dense arithmetic of the example, on row-major float arrays: a matrix of {@code rows x cols} is
 * {@code m[r * cols + c]}. Loops run with the innermost index over contiguous memory so that C2 vectorizes them.
 */
final class Ops {
    private Ops() {}

    /** {@code out = x w (+ bias)}: x is rows x in, w is in x outCols, bias (optional) outCols; out is overwritten. */
    static void linear(float[] x, int rows, int in, float[] w, float[] bias, float[] out, int outCols) {
        for (int r = 0; r < rows; r++) {
            int o = r * outCols;
            if (bias != null) {
                System.arraycopy(bias, 0, out, o, outCols);
            } else {
                Arrays.fill(out, o, o + outCols, 0f);
            }
            for (int i = 0; i < in; i++) {
                float xi = x[r * in + i];
                if (xi == 0) {
                    continue; // zero pixels and ReLU zeros are common; skipping them changes no value
                }
                int wi = i * outCols;
                for (int j = 0; j < outCols; j++) {
                    out[o + j] += xi * w[wi + j];
                }
            }
        }
    }

    /**
     * The backward pass of {@link #linear}: adds {@code x^T dOut} into {@code dW} and the column sums of
     * {@code dOut} into {@code dBias} (if not null), and adds {@code dOut w^T} into {@code dx} (if not null).
     */
    static void linearBackward(
            float[] x, float[] dOut, int rows, int in, int outCols, float[] w, float[] dW, float[] dBias, float[] dx) {
        for (int r = 0; r < rows; r++) {
            int o = r * outCols;
            if (dBias != null) {
                for (int j = 0; j < outCols; j++) {
                    dBias[j] += dOut[o + j];
                }
            }
            for (int i = 0; i < in; i++) {
                int wi = i * outCols;
                float xi = x[r * in + i];
                if (xi != 0) {
                    for (int j = 0; j < outCols; j++) {
                        dW[wi + j] += xi * dOut[o + j];
                    }
                }
                if (dx != null) {
                    float s = 0;
                    for (int j = 0; j < outCols; j++) {
                        s += dOut[o + j] * w[wi + j];
                    }
                    dx[r * in + i] += s;
                }
            }
        }
    }

    /**
     * Softmax cross-entropy of {@code rows} rows of {@code classes} logits against {@code labels[index[r]]} (or
     * {@code labels[r]} if {@code index} is null). Writes the gradient of the mean loss into {@code dLogits} (if not
     * null) and returns the summed loss.
     */
    static double crossEntropy(float[] logits, int rows, int classes, int[] labels, int[] index, float[] dLogits) {
        double total = 0;
        for (int r = 0; r < rows; r++) {
            int o = r * classes;
            double max = Double.NEGATIVE_INFINITY;
            for (int k = 0; k < classes; k++) {
                max = Math.max(max, logits[o + k]);
            }
            double sum = 0;
            for (int k = 0; k < classes; k++) {
                sum += Math.exp(logits[o + k] - max);
            }
            int label = labels[index == null ? r : index[r]];
            total += Math.log(sum) - (logits[o + label] - max);
            if (dLogits != null) {
                for (int k = 0; k < classes; k++) {
                    double p = Math.exp(logits[o + k] - max) / sum;
                    dLogits[o + k] = (float) ((p - (k == label ? 1 : 0)) / rows);
                }
            }
        }
        return total;
    }

    /** The index of the largest logit of row {@code r}. */
    static int argmax(float[] logits, int r, int classes) {
        int best = 0;
        for (int k = 1; k < classes; k++) {
            if (logits[r * classes + k] > logits[r * classes + best]) {
                best = k;
            }
        }
        return best;
    }

    static float sigmoid(float x) {
        return (float) (1 / (1 + Math.exp(-x)));
    }
}
