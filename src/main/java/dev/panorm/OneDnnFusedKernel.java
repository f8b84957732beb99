package dev.panorm;

/**
 * The fused operations on oneDNN, which has no fused primitive (3.8.1): a binary primitive for the residual add,
 * {@code s = (x + r) + bias}, then layer normalization of {@code s} ({@link OneDnnKernel}); backward, the norm's
 * backward pass, then a binary add of the incoming gradient for {@code s}. Two passes over memory where the Java
 * kernel makes one, kept for {@link Backend#ONEDNN}'s promise and for AUTO to weigh
 * ({@code docs/benchmarks.md}, "Residual add and int8 output").
 *
 * <p>Without {@code sum}, {@code s} goes to {@code dst} and is normalized there in place, so no buffer is needed;
 * that takes a float32 {@code dst}, since {@code s} is float32 when not stored. What oneDNN cannot take (int8
 * output, that case with a half-precision {@code dst}, strided layouts, in-place gradients it would overwrite
 * before reading) runs in the Java kernel, as a whole call.
 */
final class OneDnnFusedKernel implements FusedKernel {
    private final OneDnnKernel oneDnn;
    private final FusedKernel java;

    OneDnnFusedKernel(OneDnnKernel oneDnn, FusedKernel java) {
        this.oneDnn = oneDnn;
        this.java = java;
    }

    @Override
    public Backend forward(
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
            long rows) {
        Tensor s = sum != null ? sum : dst.dataType() == DataType.F32 ? dst : null;
        if (residual == null || dst.dataType() == DataType.S8 || s == null) {
            return java.forward(
                    pass, src, residual, bias, sum, dst, scale, shift, mean, variance, dstScales, dstScale, rows);
        }
        // In place, s is src or residual: make it the first addend, which oneDNN may overwrite as it goes.
        boolean swap = CallChecks.overlaps(s, residual);
        Tensor first = swap ? residual : src;
        Tensor second = swap ? src : residual;
        OneDnnPlan.Context add = oneDnn.addPlan(first, second, bias, s, rows);
        if (add == null) {
            return java.forward(
                    pass, src, residual, bias, sum, dst, scale, shift, mean, variance, dstScales, dstScale, rows);
        }
        OneDnnKernel.add(add, first, second, bias, s);
        return oneDnn.forwardAfterAdd(pass, s, dst, scale, shift, mean, variance, rows);
    }

    @Override
    public Backend backward(
            Tensor diffDst,
            Tensor diffSum,
            Tensor sum,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift,
            long rows) {
        // diffSum must be read after the norm's backward pass has written diffSrc: not in place, and addable. A
        // half-precision diffSrc is rounded twice, the norm's gradient and then the sum, as PyTorch's autograd adds
        // two bf16 gradients; the Java kernel, twice as slow on large bf16 calls here, rounds once (docs/accuracy.md).
        OneDnnPlan.Context add = null;
        if (diffSum != null) {
            add = CallChecks.overlaps(diffSrc, diffSum) ? null : oneDnn.addPlan(diffSrc, diffSum, null, diffSrc, rows);
            if (add == null) {
                return java.backward(diffDst, diffSum, sum, mean, variance, scale, diffSrc, diffScale, diffShift, rows);
            }
        }
        Backend ran = oneDnn.backward(
                Pass.BACKWARD, diffDst, sum, mean, variance, scale, diffSrc, diffScale, diffShift, rows);
        if (add != null) {
            OneDnnKernel.add(add, diffSrc, diffSum, null, diffSrc);
        }
        return ran;
    }

    @Override
    public void close() {
        java.close();
    }
}
