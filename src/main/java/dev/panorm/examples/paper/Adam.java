package dev.panorm.examples.paper;

import java.util.List;

/** Adam (Kingma and Ba, 2014), the optimizer of the paper's MNIST experiment; clears the gradients after each step. */
final class Adam {
    private static final double BETA1 = 0.9;
    private static final double BETA2 = 0.999;
    private static final double EPS = 1e-8;

    private final List<Param> params;
    private final double learningRate;
    private final float[][] m;
    private final float[][] v;
    private int t;

    Adam(List<Param> params, double learningRate) {
        this.params = List.copyOf(params);
        this.learningRate = learningRate;
        this.m = new float[params.size()][];
        this.v = new float[params.size()][];
        for (int i = 0; i < params.size(); i++) {
            m[i] = new float[params.get(i).value().length];
            v[i] = new float[params.get(i).value().length];
        }
    }

    void step() {
        t++;
        double step = learningRate * Math.sqrt(1 - Math.pow(BETA2, t)) / (1 - Math.pow(BETA1, t));
        for (int i = 0; i < params.size(); i++) {
            float[] w = params.get(i).value();
            float[] g = params.get(i).grad();
            float[] mi = m[i];
            float[] vi = v[i];
            for (int j = 0; j < w.length; j++) {
                mi[j] = (float) (BETA1 * mi[j] + (1 - BETA1) * g[j]);
                vi[j] = (float) (BETA2 * vi[j] + (1 - BETA2) * g[j] * g[j]);
                w[j] -= (float) (step * mi[j] / (Math.sqrt(vi[j]) + EPS));
                g[j] = 0;
            }
        }
    }
}
