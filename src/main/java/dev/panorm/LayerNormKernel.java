package dev.panorm;

/**
 * One backend's layer normalization. {@link LayerNorm} validates every argument before it calls
 * a kernel, so kernels get contiguous float32 tensors of matching shapes, live memory, and at
 * least one row; they never see a call after {@link #close()}.
 */
interface LayerNormKernel {

    /** Forward inference over {@code rows} rows of {@code config().normalizedSize()} elements. */
    void forward(Tensor src, Tensor dst, Tensor scale, Tensor shift, long rows);

    /** A name for the implementation that runs {@code rows} rows, e.g. oneDNN's {@code jit:avx512_core}. */
    String implementation(long rows);

    /** Releases native resources. Called once, when no call is in flight. */
    void close();
}
