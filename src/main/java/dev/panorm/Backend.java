package dev.panorm;

/**
 * Which implementation computes a {@link LayerNorm}. All of them agree within the tolerances the
 * README documents.
 */
public enum Backend {
    /**
     * The default: for each call signature (pass, data types, shape), the fastest of oneDNN (with one
     * thread or all of them) and the Java kernels, chosen by timing them briefly the first time the
     * signature is seen and remembered for the life of the {@code LayerNorm}.
     */
    AUTO,
    /** oneDNN's layer normalization primitive, called through the FFM API. */
    ONEDNN,
    /**
     * panorm's fastest pure-Java kernels: the Vector API ones when the JVM runs with
     * {@code --add-modules jdk.incubator.vector}, else the scalar ones (with one warning).
     */
    JAVA,
    /** panorm's scalar Java kernels: short, readable, statistics accumulated in double. */
    JAVA_SCALAR
}
