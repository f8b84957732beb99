package dev.panorm;

/**
 * Which implementation computes a {@link LayerNorm}. All of them agree within the tolerances of
 * {@code docs/accuracy.md}.
 *
 * <p>Guide: {@code docs/api.md} (backends); how {@link #AUTO} chooses: {@code docs/performance.md}.
 */
public enum Backend {
    /**
     * The default: per call, oneDNN or the Java Vector API kernels, whichever a fixed cost model from
     * panorm's benchmarks says is faster for the operation (layer or RMS normalization, precise
     * statistics), pass, data types, layout, size and row length. Nothing is timed, so in a warm process a given call
     * always takes the same path and gives the same bits, whatever ran before it. Two passing exceptions
     * keep a process's first calls fast: calls meant for Java go to oneDNN until a background thread
     * (started once they add up to 2^26 elements) has seen the Java kernels compiled, and a call meant for
     * oneDNN on a new shape runs in Java while oneDNN's plan for it is built in the background; the property
     * {@code panorm.auto.adaptive=false} turns both off. A call with a tensor on the Java heap runs in Java
     * (oneDNN reads native memory only), through native copies of those tensors. When oneDNN cannot be
     * loaded, everything runs in Java, and one warning per process ({@link System.Logger} {@code dev.panorm})
     * says why.
     */
    AUTO,
    /**
     * oneDNN's layer normalization primitive, called through the FFM API; calls whose data types or
     * layout oneDNN cannot take correctly (strided data, bf16/f16 scale and shift) run in the Java kernels.
     */
    ONEDNN,
    /**
     * panorm's fastest pure-Java kernels: the Vector API ones when the JVM runs with
     * {@code --add-modules jdk.incubator.vector}, else the scalar ones (with one warning).
     */
    JAVA,
    /** panorm's scalar Java kernels: short, readable, statistics accumulated in double. */
    JAVA_SCALAR
}
