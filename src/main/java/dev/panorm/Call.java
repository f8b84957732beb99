package dev.panorm;

/**
 * One call's arguments by role, absent tensors null: what a oneDNN plan and its signature are built
 * from. Only a thread's first call on a signature makes one. A repeated call passes its tensors
 * themselves: its path is too large for C2 to inline whole ("already compiled into a big method"),
 * so a record would escape and cost 64 bytes per call, and a reused mutable one would cost G1 a
 * write barrier per tensor.
 */
record Call(
        Pass pass,
        long rows,
        Tensor src,
        Tensor dst,
        Tensor scale,
        Tensor shift,
        Tensor mean,
        Tensor variance,
        Tensor diffDst,
        Tensor diffSrc,
        Tensor diffScale,
        Tensor diffShift) {

    /** A forward call, with {@link Kernel#forward}'s arguments. */
    static Call forward(
            Pass pass, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance, long rows) {
        return new Call(pass, rows, src, dst, scale, shift, mean, variance, null, null, null, null);
    }

    /**
     * This call with each tensor's layout over none of the caller's memory ({@link Tensor#layout}): what a plan built
     * in the background keeps until it runs, so that the caller's memory can be freed meanwhile.
     */
    Call layout() {
        return new Call(
                pass,
                rows,
                Tensor.layout(src),
                Tensor.layout(dst),
                Tensor.layout(scale),
                Tensor.layout(shift),
                Tensor.layout(mean),
                Tensor.layout(variance),
                Tensor.layout(diffDst),
                Tensor.layout(diffSrc),
                Tensor.layout(diffScale),
                Tensor.layout(diffShift));
    }

    /** The caller's tensor in {@code role}; null if absent or if the role is a plan's own. */
    Tensor tensor(Role role) {
        return tensor(role, src, dst, scale, shift, mean, variance, diffDst, diffSrc, diffScale, diffShift);
    }

    /** The tensor in {@code role} among a call's tensors given in {@link Role}'s order; null for a plan's own roles. */
    static Tensor tensor(
            Role role,
            Tensor src,
            Tensor dst,
            Tensor scale,
            Tensor shift,
            Tensor mean,
            Tensor variance,
            Tensor diffDst,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift) {
        return switch (role) {
            case SRC -> src;
            case DST -> dst;
            case SCALE -> scale;
            case SHIFT -> shift;
            case MEAN -> mean;
            case VARIANCE -> variance;
            case DIFF_DST -> diffDst;
            case DIFF_SRC -> diffSrc;
            case DIFF_SCALE -> diffScale;
            case DIFF_SHIFT -> diffShift;
            default -> null;
        };
    }
}
