package dev.panorm;

import java.util.Locale;

/**
 * The tensors a call binds, by what they are to the computation: the caller's ten, then the
 * per-row and scratch buffers a oneDNN plan keeps for itself.
 */
enum Role {
    SRC,
    DST,
    SCALE,
    SHIFT,
    MEAN,
    VARIANCE,
    DIFF_DST,
    DIFF_SRC,
    DIFF_SCALE,
    DIFF_SHIFT,
    /** All zeros: RMS normalization has no mean. */
    ZERO_MEAN,
    /** The statistics of a call that does not hand them to the caller. */
    OWN_MEAN,
    OWN_VARIANCE,
    /** One float per row: the precise mean's correction, or RMS backward's {@code sum(dy * gamma)} term. */
    ROW_TERM,
    /** A gradient the caller did not ask for, in memory oneDNN allocates. */
    DISCARDED,
    /** A composed pass's float32 intermediate, so that its last step rounds to the output type once. */
    NORMALIZED;

    /** How many roles the caller fills ({@link #SRC} to {@link #DIFF_SHIFT}); the rest are a plan's own. */
    static final int CALLER = DIFF_SHIFT.ordinal() + 1;

    /** oneDNN's name for the argument, for messages: {@code src}, {@code diff_dst}, ... */
    String argumentName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
