package dev.panorm;

import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * {@link Backend#AUTO}: per call, the backend {@link AutoModel} says is fastest for the call's kind (pass,
 * RMS or precise statistics), data type and size, without timing anything, so the same call always takes
 * the same path (and gives the same bits) in every run.
 *
 * <p>The Java kernel takes the calls it vectorizes (float32 rows with unit stride) of up to the model's
 * crossover for their kind, and single rows of any length where the crossover is not zero (oneDNN
 * splits work by rows, so one row gets one thread either way); oneDNN takes everything else. Layouts
 * oneDNN cannot take, and everything when oneDNN cannot be loaded, run in Java; the latter is logged
 * once per process, with the reason.
 *
 * <p>Override the float32 crossovers with the system property {@code panorm.auto.javaUpTo} (elements
 * per call; 0 sends every call oneDNN can take to oneDNN), or pick a backend explicitly.
 */
final class AutoKernel implements Kernel {
    private static final System.Logger LOG = System.getLogger("dev.panorm");
    private static final AtomicBoolean WARNED = new AtomicBoolean();

    private final LayerNormConfig config;
    /** The model's crossovers for this configuration, by data type and pass. */
    private final long[][] javaUpTo;

    private final Kernel java;
    private final boolean vectorized;
    /** Null when oneDNN cannot be loaded. */
    private final OneDnnKernel oneDnn;

    AutoKernel(LayerNormConfig config, int threads, CallCounter calls) {
        this.config = config;
        this.javaUpTo = AutoModel.BUILT_IN.byPass(config);
        this.java = JavaKernels.create(config, threads);
        this.vectorized = JavaKernels.vectorized();
        Optional<NativeLibraryException> failure = OneDnn.loadFailure();
        failure.ifPresent(AutoKernel::warnOnce);
        this.oneDnn = failure.isEmpty() ? new OneDnnKernel(config, threads, calls, java) : null;
    }

    /** Says once per process why every AUTO call runs in Java: a slower path nobody asked for should not be silent. */
    private static void warnOnce(NativeLibraryException failure) {
        if (WARNED.compareAndSet(false, true)) {
            LOG.log(
                    System.Logger.Level.WARNING,
                    "panorm: oneDNN cannot be loaded, so Backend.AUTO runs every call " + "in the Java kernels: "
                            + failure.getMessage());
        }
    }

    /** Whether the cost model sends a call on {@code src} and the other tensors (null: absent) to the Java kernels. */
    private boolean runsInJava(Pass pass, Tensor src, Tensor a, Tensor b, Tensor c, Tensor d, Tensor e) {
        if (oneDnn == null) {
            return true;
        }
        int axes = config.normalizedAxes();
        long elements = src.elementCount();
        long upTo = javaUpTo[src.dataType().ordinal()][pass.ordinal()];
        boolean small = elements <= upTo || upTo > 0 && elements == config.normalizedSize(); // one row
        return vectorized
                && small
                && JavaKernels.vectorizes(axes, src)
                && JavaKernels.vectorizes(axes, a)
                && JavaKernels.vectorizes(axes, b)
                && JavaKernels.vectorizes(axes, c)
                && JavaKernels.vectorizes(axes, d)
                && JavaKernels.vectorizes(axes, e);
    }

    @Override
    public Backend forward(
            Pass pass, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance, long rows) {
        Kernel kernel = runsInJava(pass, src, dst, scale, shift, null, null) ? java : oneDnn;
        return kernel.forward(pass, src, dst, scale, shift, mean, variance, rows);
    }

    @Override
    public Backend backward(
            Pass pass,
            Tensor diffDst,
            Tensor src,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift,
            long rows) {
        Kernel kernel = runsInJava(pass, src, diffDst, diffSrc, scale, diffScale, diffShift) ? java : oneDnn;
        return kernel.backward(pass, diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift, rows);
    }

    @Override
    public String implementation(Tensor src, Tensor dst, Tensor scale, Tensor shift, long rows) {
        Pass pass = Pass.FORWARD_INFERENCE;
        return "auto: "
                + (runsInJava(pass, src, dst, scale, shift, null, null) ? java : oneDnn)
                        .implementation(src, dst, scale, shift, rows);
    }

    @Override
    public void quiescent() {
        if (oneDnn != null) {
            oneDnn.quiescent();
        }
    }

    @Override
    public void close() {
        if (oneDnn != null) {
            oneDnn.close(); // closes java too
        } else {
            java.close();
        }
    }
}
