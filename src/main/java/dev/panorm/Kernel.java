package dev.panorm;

/**
 * One backend's layer normalization. {@link LayerNorm} validates every argument before it calls
 * a kernel ({@link CallChecks}), so kernels get tensors of matching shapes, live memory, finite
 * global statistics, non-overlapping outputs and at least one row; absent optional tensors are
 * {@code null}. Statistics handed back to a backward pass are not checked: NaN in them must
 * propagate. Kernels never see a call after {@link #close()}. Each call returns the backend that
 * actually ran it.
 */
interface Kernel {

    /**
     * A forward pass over {@code rows} rows: {@code mean}/{@code variance} are written by
     * {@link Pass#FORWARD_TRAINING}, read by {@link Pass#FORWARD_GLOBAL}, and null for inference.
     */
    Backend forward(
            Pass pass, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance, long rows);

    /**
     * A backward pass over {@code rows} rows. {@code diffScale}/{@code diffShift} are overwritten with
     * sums over all rows, and are null for the data-only passes or when not configured.
     */
    Backend backward(
            Pass pass,
            Tensor diffDst,
            Tensor src,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift,
            long rows);

    /** A name for the implementation that runs a forward inference on these tensors, e.g. oneDNN's {@code jit:uni}. */
    String implementation(Tensor src, Tensor dst, Tensor scale, Tensor shift, long rows);

    /**
     * Called after each call of the owning {@code LayerNorm}: the moment to free native memory that earlier calls might
     * have been using, once they have ended ({@link CallCounter#ended}).
     */
    default void quiescent() {}

    /** Releases native resources. Called once, when no call is in flight. */
    void close();
}
