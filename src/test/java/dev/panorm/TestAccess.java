package dev.panorm;

/**
 * The package-private test helpers that tests in other packages (dev.panorm.arrow) need: the seeded
 * inputs and the documented tolerance against the double-precision reference. Test code only.
 */
public final class TestAccess {
    private TestAccess() {}

    /** {@code n} values drawn from N(mean, std^2), as {@link TestData#gaussian(int, double, double, long)}. */
    public static float[] gaussian(int n, double mean, double std, long seed) {
        return TestData.gaussian(n, mean, std, seed);
    }

    /** Asserts that {@code actual} is the layer normalization of {@code x} within the backend's tolerance (README, "Accuracy"). */
    public static void assertForward(Backend backend, float[] x, int rows, int c, float[] gamma, float[] beta,
                                     double eps, float[] actual) {
        Accuracy.assertForward(backend, x, rows, c, gamma, beta, eps, actual);
    }
}
