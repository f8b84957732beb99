package dev.panorm;

import java.util.SplittableRandom;

/** Seeded test inputs, so that every failure can be replayed. */
final class TestData {
    private TestData() {}

    /** {@code n} values drawn from N(mean, std^2). */
    static float[] gaussian(int n, double mean, double std, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) (mean + std * gaussian(random));
        }
        return values;
    }

    static double gaussian(SplittableRandom random) {
        return Math.sqrt(-2 * Math.log(1 - random.nextDouble())) * Math.cos(2 * Math.PI * random.nextDouble());
    }
}
