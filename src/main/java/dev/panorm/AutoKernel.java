package dev.panorm;

import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * {@link Backend#AUTO}: per call, the backend {@link AutoModel} says is fastest for the call's kind (pass,
 * RMS or precise statistics), data type and size, without timing anything, so in a warm process the same
 * call always takes the same path (and gives the same bits), whatever ran before it.
 *
 * <p>The Java kernel takes the calls it vectorizes (rows with unit stride) of up to the model's crossover
 * for their kind and data type, from its second crossover on where it has one, and single rows of any length
 * where the model says so; oneDNN takes everything else. Layouts
 * oneDNN cannot take, calls with a tensor on the Java heap (oneDNN reads native memory only; the Java kernels copy
 * such a tensor), and everything when oneDNN cannot be loaded, run in Java; the last is logged once per process,
 * with the reason.
 *
 * <p>Two deliberate exceptions, both passing, keep a process's first calls off slow paths:
 *
 * <ul>
 *   <li>Cold kernels: until {@link KernelWarmup} has seen the vector kernels for the call's direction run
 *       at compiled speed (on a background thread, started once such calls add up to
 *       {@link KernelWarmup#START_AFTER_ELEMENTS} elements, each call counting {@link KernelWarmup#CALL_ELEMENTS}
 *       more; it takes about a second in a fresh JVM, and no time
 *       once another operation warmed them), calls the model sends to Java go to oneDNN.</li>
 *   <li>New signatures: a call the model sends to oneDNN, on a signature whose plan is not built yet, runs
 *       in the (warm) Java kernel while a background thread builds the plan; later calls go to oneDNN.
 *       A first call does not wait about a millisecond for a plan, and batches of varying length never do.</li>
 * </ul>
 *
 * Either can change a result's last bits (not its accuracy) for the calls concerned. The system property
 * {@code panorm.auto.adaptive=false} turns both off: the model alone decides from the first call, and
 * plans are built on the calling thread, as {@link Backend#ONEDNN} builds them.
 *
 * <p>The crossovers are the built-in model's, or those of the profile {@code panorm tune} wrote for this machine
 * ({@link AutoModel#current()}). Override the float32 ones with the system property {@code
 * panorm.auto.javaUpTo} (elements per call; 0 sends every call oneDNN can take to oneDNN), or pick a backend
 * explicitly.
 */
final class AutoKernel implements Kernel {
    private static final System.Logger LOG = System.getLogger("dev.panorm");
    private static final AtomicBoolean WARNED = new AtomicBoolean();

    private final LayerNormConfig config;
    /** The model's crossovers for this configuration, by data type and pass. */
    private final long[][] javaUpTo;
    /** Its second crossovers: Java again from there, indexed as {@link #javaUpTo}. */
    private final long[][] javaFrom;
    /** Whether the model sends single rows of any length to Java, indexed as {@link #javaUpTo}. */
    private final boolean[][] singleRows;

    private final Kernel java;
    /**
     * The Java kernel on the calling thread alone, for calls that wait for a plan: the plan is built on
     * another core meanwhile, which a split call would compete with.
     */
    private final Kernel javaAlone;

    private final boolean vectorized;
    /** Null when oneDNN cannot be loaded. */
    private final OneDnnKernel oneDnn;
    /**
     * Whether the vector kernels were seen warm, by {@link #warmIndex}: plain, since a stale false costs one
     * volatile read.
     */
    private final boolean[] warm = new boolean[2 * DataType.values().length];

    AutoKernel(LayerNormConfig config, int threads, CallCounter calls) {
        this(config, threads, calls, AutoModel.current());
    }

    /** With {@code model} in place of the process's (for tests). */
    AutoKernel(LayerNormConfig config, int threads, CallCounter calls, AutoModel model) {
        this.config = config;
        this.javaUpTo = model.byPass(config);
        this.javaFrom = model.javaFromByPass(config);
        this.singleRows = model.singleRowsByPass(config);
        this.java = JavaKernels.create(config, threads);
        this.javaAlone = threads == 1 ? java : JavaKernels.create(config, 1);
        this.vectorized = JavaKernels.vectorized();
        Optional<NativeLibraryException> failure = OneDnn.loadFailure();
        failure.ifPresent(AutoKernel::warnOnce);
        this.oneDnn = failure.isEmpty()
                ? new OneDnnKernel(config, threads, calls, java, model.oneDnnSingleThreadBelowByPass(config))
                : null;
    }

    /** The oneDNN kernel, or null when oneDNN cannot be loaded: {@link AutoFusedKernel} shares its plans. */
    OneDnnKernel oneDnn() {
        return oneDnn;
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

    /** Whether the cost model sends a call of {@code pass} on {@code src} to Java (given that Java takes it). */
    boolean modelPrefersJava(Pass pass, Tensor src) {
        long elements = src.elementCount();
        int type = src.dataType().ordinal();
        return elements <= javaUpTo[type][pass.ordinal()]
                || elements >= javaFrom[type][pass.ordinal()]
                || singleRows[type][pass.ordinal()] && elements == config.normalizedSize();
    }

    /** Whether the vector kernels take these tensors (null: absent) as they are. */
    private boolean vectorizes(Tensor src, Tensor a, Tensor b, Tensor c, Tensor d, Tensor e) {
        int axes = config.normalizedAxes();
        return vectorized
                && JavaKernels.vectorizes(axes, src)
                && JavaKernels.vectorizes(axes, a)
                && JavaKernels.vectorizes(axes, b)
                && JavaKernels.vectorizes(axes, c)
                && JavaKernels.vectorizes(axes, d)
                && JavaKernels.vectorizes(axes, e);
    }

    private static int warmIndex(boolean forward, Tensor src) {
        return 2 * src.dataType().ordinal() + (forward ? 0 : 1);
    }

    /**
     * Whether the vector kernels for this direction and {@code src}'s data type run compiled
     * ({@link KernelWarmup}), which counts the call.
     */
    private boolean javaWarm(boolean forward, Tensor src) {
        int index = warmIndex(forward, src);
        if (warm[index]) {
            return true;
        }
        return warm[index] = KernelWarmup.warm(config, forward, src);
    }

    /**
     * Where a call goes: {@link #JAVA} where a tensor lies on the heap (the Java kernels copy it; oneDNN takes only
     * native memory), or the model prefers Java and the kernel is warm, {@link #ONEDNN_OR_JAVA} where the model
     * prefers oneDNN but Java can run the call while oneDNN's plan is built, else {@link #ONEDNN} (oneDNN runs what
     * it cannot take in Java itself). {@code src} and {@code a} to {@code e} are the tensors whose layout the vector
     * kernels must take; {@code f} and {@code g} the call's others, checked for the heap alone.
     */
    private int route(Pass pass, Tensor src, Tensor a, Tensor b, Tensor c, Tensor d, Tensor e, Tensor f, Tensor g) {
        if (oneDnn == null || OwnedMemory.onHeap(src, a, b, c, d, e, f, g, null, null, null)) {
            return JAVA;
        }
        if (!vectorizes(src, a, b, c, d, e)) {
            return ONEDNN;
        }
        boolean warm = javaWarm(pass.forward, src);
        if (modelPrefersJava(pass, src)) {
            return warm ? JAVA : ONEDNN; // cold: oneDNN until the Java kernel is compiled
        }
        return warm && KernelWarmup.ENABLED ? ONEDNN_OR_JAVA : ONEDNN;
    }

    private static final int JAVA = 0;
    private static final int ONEDNN = 1;
    private static final int ONEDNN_OR_JAVA = 2;

    @Override
    public Backend forward(
            Pass pass, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance, long rows) {
        return switch (route(pass, src, dst, scale, shift, null, null, mean, variance)) {
            case JAVA -> java.forward(pass, src, dst, scale, shift, mean, variance, rows);
            case ONEDNN -> oneDnn.forward(pass, src, dst, scale, shift, mean, variance, rows);
            default -> {
                Backend ran = oneDnn.forwardIfPlanned(pass, src, dst, scale, shift, mean, variance, rows);
                yield ran != null ? ran : javaAlone.forward(pass, src, dst, scale, shift, mean, variance, rows);
            }
        };
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
        return switch (route(pass, src, diffDst, diffSrc, scale, diffScale, diffShift, mean, variance)) {
            case JAVA -> java.backward(pass, diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift, rows);
            case ONEDNN ->
                oneDnn.backward(pass, diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift, rows);
            default -> {
                Backend ran = oneDnn.backwardIfPlanned(
                        pass, diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift, rows);
                yield ran != null
                        ? ran
                        : javaAlone.backward(
                                pass, diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift, rows);
            }
        };
    }

    /** Names the path a warm process takes for a forward inference on these tensors. */
    @Override
    public String implementation(Tensor src, Tensor dst, Tensor scale, Tensor shift, long rows) {
        Pass pass = Pass.FORWARD_INFERENCE;
        boolean inJava = oneDnn == null
                || OwnedMemory.onHeap(src, dst, scale, shift, null, null, null, null, null, null, null)
                || vectorizes(src, dst, scale, shift, null, null) && modelPrefersJava(pass, src);
        return "auto: " + (inJava ? java : oneDnn).implementation(src, dst, scale, shift, rows);
    }

    /** Waits until oneDNN's plans are no longer built in the background (for tests). */
    void awaitPlans() throws InterruptedException {
        if (oneDnn != null) {
            oneDnn.plans().awaitBackgroundBuild();
        }
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
        if (javaAlone != java) {
            javaAlone.close();
        }
    }
}
