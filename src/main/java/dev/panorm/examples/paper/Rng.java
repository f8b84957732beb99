package dev.panorm.examples.paper;

import java.util.SplittableRandom;

/** Seeded randomness: shuffles and weight initialization. */
final class Rng {
    private Rng() {}

    /** A uniformly random permutation of 0..n-1. */
    static int[] permutation(int n, SplittableRandom random) {
        int[] order = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        shuffle(order, random);
        return order;
    }

    /** Fisher-Yates, in place. */
    static void shuffle(int[] order, SplittableRandom random) {
        for (int i = order.length - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    }

    /** Fills {@code w} with N(0, std^2). */
    static void gaussian(float[] w, double std, SplittableRandom random) {
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (std * random.nextGaussian());
        }
    }
}
