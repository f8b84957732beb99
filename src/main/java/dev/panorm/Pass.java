package dev.panorm;

/**
 * The computations a {@link LayerNorm} can run, as oneDNN distinguishes them: a propagation kind
 * and whether the statistics are computed or given ({@code use_global_stats}).
 */
enum Pass {
    /** Forward inference: statistics computed and discarded. */
    FORWARD_INFERENCE(true, false, false, false),
    /** Forward training: statistics computed and written out for the backward pass. */
    FORWARD_TRAINING(true, true, false, false),
    /** Forward with statistics given by the caller. */
    FORWARD_GLOBAL(true, false, true, false),
    /** Backward: gradients for the input and, where configured, scale and shift. */
    BACKWARD(false, false, false, true),
    /** Backward for the input only (frozen parameters). */
    BACKWARD_DATA(false, false, false, false),
    /** Backward with the statistics treated as constants. */
    BACKWARD_GLOBAL(false, false, true, true),
    /** Backward for the input only, statistics treated as constants. */
    BACKWARD_DATA_GLOBAL(false, false, true, false);

    final boolean forward;
    final boolean writesStatistics;
    final boolean globalStatistics;
    final boolean parameterGradients;

    Pass(boolean forward, boolean writesStatistics, boolean globalStatistics, boolean parameterGradients) {
        this.forward = forward;
        this.writesStatistics = writesStatistics;
        this.globalStatistics = globalStatistics;
        this.parameterGradients = parameterGradients;
    }

    /** Whether mean and variance take part at all. */
    boolean usesStatistics() {
        return this != FORWARD_INFERENCE;
    }
}
