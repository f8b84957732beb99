package dev.panorm;

/**
 * One backend's residual add fused with the norm, and its int8 output ({@link LayerNorm#forwardResidual},
 * {@link LayerNorm#forwardQuantized}, {@link LayerNorm#backwardResidual}). As for {@link Kernel}, every
 * argument has been checked ({@link CallChecks#forwardFused}), absent tensors are null and there is at
 * least one row. Each call returns the backend that ran it.
 */
interface FusedKernel {

    /**
     * {@code s = (src + residual) + bias} into {@code sum} when given, then the norm of {@code s} (as stored in
     * {@code sum}) into {@code dst}; {@code residual} null means {@code s = src}. {@code mean}/{@code variance}
     * are written by {@link Pass#FORWARD_TRAINING} and null for inference. An S8 {@code dst} is quantized with
     * each row's scale written to {@code dstScales} or, when that is null, with the static {@code dstScale}.
     */
    Backend forward(
            Pass pass,
            Tensor src,
            Tensor residual,
            Tensor bias,
            Tensor sum,
            Tensor dst,
            Tensor scale,
            Tensor shift,
            Tensor mean,
            Tensor variance,
            Tensor dstScales,
            float dstScale,
            long rows);

    /**
     * The norm's backward pass on {@code sum}, with the incoming gradient {@code diffSum} (null: none) added to
     * {@code diffSrc}; {@code diffScale}/{@code diffShift} are overwritten with sums over all rows.
     */
    Backend backward(
            Tensor diffDst,
            Tensor diffSum,
            Tensor sum,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift,
            long rows);

    /** Releases native resources. Called once, when no call is in flight. */
    default void close() {}
}
