package dev.panorm.examples.paper;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.function.DoubleSupplier;

/**
 * Compares analytic gradients with central finite differences of the loss, coordinate by coordinate. The
 * models compute in float32, so the step is large (parameters are of order 0.1 to 1)
 * and the loss is summed in double; the error is measured against the largest gradient of the same array (or a
 * tenth of the largest of all, if that is larger).
 */
final class GradientCheck {
    private GradientCheck() {}

    /**
     * @param params the parameters, whose {@code grad()} already holds the analytic gradient of {@code loss}
     * @param loss evaluates the loss at the current parameter values
     * @param step the finite-difference step
     * @param tolerance the largest accepted {@code |numeric - analytic| / scale}
     * @return the largest such error over all arrays
     */
    static double check(List<Param> params, DoubleSupplier loss, double step, double tolerance) {
        double largest = 1e-6;
        for (Param p : params) {
            for (float g : p.grad()) {
                largest = Math.max(largest, Math.abs(g));
            }
        }
        double worst = 0;
        for (Param p : params) {
            float[] w = p.value();
            // An array whose gradient is (near) zero, like a bias that batch normalization cancels, is measured
            // against a tenth of the model's largest gradient: float rounding alone moves its numeric value.
            double scale = 0.1 * largest;
            for (float g : p.grad()) {
                scale = Math.max(scale, Math.abs(g));
            }
            double worstHere = 0;
            int worstIndex = -1;
            double worstNumeric = 0;
            for (int i = 0; i < w.length; i++) {
                float original = w[i];
                w[i] = (float) (original + step);
                double plus = loss.getAsDouble();
                w[i] = (float) (original - step);
                double minus = loss.getAsDouble();
                w[i] = original;
                double numeric = (plus - minus) / (2 * step);
                double error = Math.abs(numeric - p.grad()[i]) / scale;
                if (error > worstHere) {
                    worstHere = error;
                    worstIndex = i;
                    worstNumeric = numeric;
                }
            }
            int at = worstIndex;
            double numericAt = worstNumeric;
            double errorHere = worstHere;
            double scaleHere = scale;
            assertTrue(
                    errorHere <= tolerance,
                    () -> p.name() + "[" + at + "]: analytic " + p.grad()[at] + ", numeric " + numericAt + ", error "
                            + errorHere + " of the largest gradient " + scaleHere);
            worst = Math.max(worst, worstHere);
        }
        return worst;
    }

    static void zeroGradients(List<Param> params) {
        for (Param p : params) {
            java.util.Arrays.fill(p.grad(), 0);
        }
    }
}
