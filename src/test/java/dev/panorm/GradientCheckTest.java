package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import java.util.function.Function;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The reference backward pass against central finite differences, all in double: the gradient of
 * {@code loss = sum(w * y)} with respect to x, gamma and beta, for a random weighting w (which is
 * then dLoss/dy). With h = 1e-6 the difference quotient is accurate to about h^2 plus 1e-16/h, so
 * agreement to 1e-7 (relative) cannot happen by accident.
 */
class GradientCheckTest {
    private static final double H = 1e-6;

    @ParameterizedTest(name = "[{0}, {1}] global={2}")
    @CsvSource({
        "1, 1, false",
        "3, 2, false",
        "4, 5, false",
        "2, 16, false",
        "5, 7, false",
        "1, 1, true",
        "3, 2, true",
        "4, 5, true",
        "2, 16, true"
    })
    void referenceGradientsMatchFiniteDifferences(int rows, int c, boolean global) {
        SplittableRandom random = new SplittableRandom(rows * 100L + c);
        double[] x = values(random, rows * c, 0.5, 2);
        double[] gamma = values(random, c, 1, 0.5);
        double[] beta = values(random, c, 0, 1);
        double[] w = values(random, rows * c, 0, 1);
        double eps = 1e-3;
        // Global statistics are constants: made up here, and held fixed while x moves.
        Reference.Statistics fixed =
                global ? new Reference.Statistics(values(random, rows, 0, 1), values(random, rows, 2, 0.5)) : null;
        Function<double[][], Double> loss = p -> {
            double[] y = fixed == null
                    ? Reference.forward(p[0], rows, c, p[1], p[2], eps)
                    : Reference.forward(p[0], rows, c, p[1], p[2], eps, fixed);
            double sum = 0;
            for (int i = 0; i < y.length; i++) {
                sum += w[i] * y[i];
            }
            return sum;
        };
        Reference.Gradients analytic = Reference.backward(
                w, x, rows, c, global ? fixed : Reference.statistics(x, rows, c), gamma, eps, global);
        double[][] parameters = {x, gamma, beta};
        double[][] expected = {analytic.dx(), analytic.dgamma(), analytic.dbeta()};
        String[] names = {"dx", "dgamma", "dbeta"};
        for (int p = 0; p < parameters.length; p++) {
            for (int i = 0; i < parameters[p].length; i++) {
                double saved = parameters[p][i];
                parameters[p][i] = saved + H;
                double up = loss.apply(parameters);
                parameters[p][i] = saved - H;
                double down = loss.apply(parameters);
                parameters[p][i] = saved;
                double numeric = (up - down) / (2 * H);
                assertEquals(numeric, expected[p][i], 1e-7 * (1 + Math.abs(numeric)), names[p] + "[" + i + "]");
            }
        }
    }

    @ParameterizedTest(name = "RMS [{0}, {1}]")
    @CsvSource({"1, 1", "3, 2", "4, 5", "2, 16"})
    void referenceRmsGradientsMatchFiniteDifferences(int rows, int c) {
        SplittableRandom random = new SplittableRandom(rows * 1000L + c);
        double[] x = values(random, rows * c, 0.5, 2);
        double[] gamma = values(random, c, 1, 0.5);
        double[] beta = values(random, c, 0, 1);
        double[] w = values(random, rows * c, 0, 1);
        double eps = 1e-3;
        Function<double[][], Double> loss = p -> {
            double[] y = Reference.rmsForward(p[0], rows, c, p[1], p[2], eps);
            double sum = 0;
            for (int i = 0; i < y.length; i++) {
                sum += w[i] * y[i];
            }
            return sum;
        };
        Reference.Gradients analytic =
                Reference.backward(w, x, rows, c, Reference.rmsStatistics(x, rows, c), gamma, eps, false, true);
        double[][] parameters = {x, gamma, beta};
        double[][] expected = {analytic.dx(), analytic.dgamma(), analytic.dbeta()};
        for (int p = 0; p < parameters.length; p++) {
            for (int i = 0; i < parameters[p].length; i++) {
                double saved = parameters[p][i];
                parameters[p][i] = saved + H;
                double up = loss.apply(parameters);
                parameters[p][i] = saved - H;
                double down = loss.apply(parameters);
                parameters[p][i] = saved;
                double numeric = (up - down) / (2 * H);
                assertEquals(numeric, expected[p][i], 1e-7 * (1 + Math.abs(numeric)), "parameter " + p + "[" + i + "]");
            }
        }
    }

    private static double[] values(SplittableRandom random, int n, double mean, double spread) {
        double[] out = new double[n];
        for (int i = 0; i < n; i++) {
            out[i] = mean + spread * (random.nextDouble() * 2 - 1);
        }
        return out;
    }
}
