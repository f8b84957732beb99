package dev.panorm.examples.paper;

import dev.panorm.Backend;
import java.util.ArrayList;
import java.util.List;

/**
 * Claim 3 of the paper: layer normalization computes the same thing in training and at test time, and
 * each example's output depends on that example alone; batch normalization does neither.
 */
final class Consistency {
    private Consistency() {}

    /**
     * A trained layer-normalized model evaluated on the test set by one backend: in one call over the whole
     * set, one example at a time, and with the training-mode pass ({@code forwardTraining}) over the whole set.
     *
     * @param differingAlone logits that are not bit-identical between one at a time and the whole set
     * @param largestAlone the largest absolute difference between them
     * @param differingTraining logits not bit-identical between the training-mode and the test-mode pass
     * @param testError the test error of the whole-set pass
     */
    record LayerNormCheck(
            Training.Spec spec,
            Backend backend,
            int logits,
            int differingAlone,
            double largestAlone,
            int differingTraining,
            double largestTraining,
            double testError) {}

    /**
     * A trained batch-normalized model's test error with its running statistics (what is reported), with the
     * statistics of the whole test set as one batch, and with those of batches of 4 test examples; and the
     * fraction of predictions that change from the first to the last.
     */
    record BatchNormCheck(Training.Spec spec, double running, double wholeSet, double batchesOf4, double changed) {}

    /** Re-creates the trained model on each backend (same parameters) and compares its outputs bit for bit. */
    static List<LayerNormCheck> layerNorm(Training.Built trained, Training.Shape shape, Digits test) {
        List<LayerNormCheck> checks = new ArrayList<>();
        for (Backend backend : Backend.values()) {
            try (Training.Built model = new Training.Built(trained.spec, shape, backend)) {
                model.copyParameters(trained);
                int n = test.size();
                float[] whole = model.model.logits(test.images(), n, false);
                float[] alone = new float[whole.length];
                for (int i = 0; i < n; i++) {
                    float[] one = model.model.logits(test.image(i), 1, false);
                    System.arraycopy(one, 0, alone, i * Digits.CLASSES, Digits.CLASSES);
                }
                float[] training = model.model.logits(test.images(), n, true);
                checks.add(new LayerNormCheck(
                        trained.spec,
                        backend,
                        whole.length,
                        differing(whole, alone),
                        largest(whole, alone),
                        differing(whole, training),
                        largest(whole, training),
                        Training.errorOf(whole, test)));
            }
        }
        return checks;
    }

    /** Evaluates a trained batch-normalized model in three ways; changes its running statistics, so call it last. */
    static BatchNormCheck batchNorm(Training.Built trained, Digits test) {
        Classifier model = trained.model;
        int n = test.size() / 4 * 4; // batches of 4 need whole batches: batch normalization cannot take 1
        float[] running = model.logits(test.images(), test.size(), false);
        float[] wholeSet = model.logits(test.images(), test.size(), true);
        float[] batches = new float[n * Digits.CLASSES];
        for (int i = 0; i < n; i += 4) {
            float[] x = java.util.Arrays.copyOfRange(test.images(), i * Digits.PIXELS, (i + 4) * Digits.PIXELS);
            System.arraycopy(model.logits(x, 4, true), 0, batches, i * Digits.CLASSES, 4 * Digits.CLASSES);
        }
        int changed = 0;
        int wrong = 0;
        for (int i = 0; i < n; i++) {
            int p = Ops.argmax(batches, i, Digits.CLASSES);
            changed += p == Ops.argmax(running, i, Digits.CLASSES) ? 0 : 1;
            wrong += p == test.labels()[i] ? 0 : 1;
        }
        return new BatchNormCheck(
                trained.spec,
                Training.errorOf(running, test),
                Training.errorOf(wholeSet, test),
                (double) wrong / n,
                (double) changed / n);
    }

    private static int differing(float[] a, float[] b) {
        int count = 0;
        for (int i = 0; i < a.length; i++) {
            count += Float.floatToRawIntBits(a[i]) == Float.floatToRawIntBits(b[i]) ? 0 : 1;
        }
        return count;
    }

    private static double largest(float[] a, float[] b) {
        double max = 0;
        for (int i = 0; i < a.length; i++) {
            max = Math.max(max, Math.abs(a[i] - b[i]));
        }
        return max;
    }
}
