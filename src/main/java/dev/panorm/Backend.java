package dev.panorm;

/** Which implementation computes a {@link LayerNorm}. The results agree within the documented tolerance. */
public enum Backend {
    /** oneDNN's layer normalization primitive, called through the FFM API. */
    ONEDNN,
    /** panorm's own kernels in plain Java: no native code, statistics accumulated in double. */
    JAVA
}
