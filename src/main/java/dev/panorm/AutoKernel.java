package dev.panorm;

import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * {@link Backend#AUTO}: per call, the backend a cost model says is fastest, without timing anything,
 * so the same call always takes the same path (and gives the same bits) in every run.
 *
 * <p>The model, from panorm's benchmarks ({@code docs/benchmarks.md}): oneDNN has a fixed cost per
 * call of about 0.8 us, the Java Vector API kernel almost none; per element, on one thread, oneDNN
 * is 1.0 to 1.4 times faster depending on the shape, and its second thread pays off from about 2^16
 * elements. So the Java kernel takes the calls it vectorizes (float32 rows with unit stride) of up to
 * {@link #javaUpTo} elements, and single rows of any length (oneDNN splits work by rows, so one row
 * gets one thread either way); oneDNN takes everything else, on one OpenMP thread below
 * {@link OneDnnKernel#SINGLE_THREAD_BELOW} elements and on all of them above. Layouts oneDNN
 * cannot take, and everything when oneDNN cannot be loaded, run in Java; the latter is logged once per
 * process, with the reason.
 *
 * <p>Override the crossover with the system property {@code panorm.auto.javaUpTo} (elements per
 * call; 0 sends every call oneDNN can take to oneDNN), or pick a backend explicitly.
 */
final class AutoKernel implements Kernel {
    /** Forward calls (inference, training, global statistics) of at most this many elements go to Java. */
    static final long FORWARD_JAVA_UP_TO = Long.getLong("panorm.auto.javaUpTo", 16 * 768);
    /**
     * Backward calls of at most this many elements go to Java: oneDNN 3.8.1's backward is the slower one up to there.
     */
    static final long BACKWARD_JAVA_UP_TO = Long.getLong("panorm.auto.javaUpTo", 1 << 16);

    private static final System.Logger LOG = System.getLogger("dev.panorm");
    private static final AtomicBoolean WARNED = new AtomicBoolean();

    private final LayerNormConfig config;
    private final Kernel java;
    private final boolean vectorized;
    /** Null when oneDNN cannot be loaded. */
    private final OneDnnKernel oneDnn;

    AutoKernel(LayerNormConfig config, int threads, CallCounter calls) {
        this.config = config;
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

    /** The crossover for {@code pass}: calls of at most this many elements run in Java. */
    static long javaUpTo(Pass pass) {
        return pass.forward ? FORWARD_JAVA_UP_TO : BACKWARD_JAVA_UP_TO;
    }

    /** Whether the cost model sends a call on {@code src} and the other tensors (null: absent) to the Java kernels. */
    private boolean runsInJava(Pass pass, Tensor src, Tensor a, Tensor b, Tensor c, Tensor d, Tensor e) {
        if (oneDnn == null) {
            return true;
        }
        int axes = config.normalizedAxes();
        long elements = src.elementCount();
        boolean small = elements <= javaUpTo(pass) || elements == config.normalizedSize(); // one row
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
