package dev.panorm;

import dev.panorm.internal.cache.AutoProfile;
import java.lang.foreign.MemorySegment;

/**
 * The oneDNN backend: a {@link OneDnnPlan} per call signature (pass, data types, shapes, strides and
 * thread count), built on first use and kept in a {@link PlanCache}. A signature oneDNN cannot run is
 * remembered and served by the Java backend instead, so callers never see the difference except in
 * speed; {@link LayerNorm#lastBackend()} tells which one ran.
 *
 * <p>Calls cost little more than oneDNN's own: a thread repeating a recent signature finds its own
 * execution context without a lock, binds only addresses that changed, and executes.
 */
final class OneDnnKernel implements Kernel {
    /**
     * With automatic threads, float32 calls on fewer elements than this use one thread: OpenMP's team start-up
     * and barrier cost more than a second core saves on small tensors (docs/benchmarks.md, "Measurements behind the
     * code").
     */
    static final long SINGLE_THREAD_BELOW = 1 << 15;

    /**
     * The same for half-precision data where the call computes the statistics: oneDNN's bf16 and f16 kernels spend
     * more per element there, so the second thread pays off earlier, alone and after other shapes (bf16 32x768: 5.09
     * us on one thread, 4.77 on two; 24x768: 4.09 and 4.20; 7x4096 in a cycle of shapes: 11.9 and 10.6;
     * docs/benchmarks.md, "Half precision: oneDNN's threads and wide rows"). With given statistics, where one thread
     * won alone up to about 2^16 elements but lost in the cycle, half precision keeps float32's threshold.
     */
    static final long HALF_SINGLE_THREAD_BELOW = 3 << 13;

    /**
     * Whether the CPU is AMD's. The two thresholds above were measured on an Intel Xeon, where oneDNN's second
     * thread costs 2 to 3 us per call. On the AMD EPYC (Zen 5) measured it cost 5 to 7 us (float32 forward 64x768:
     * 6.3 us on one thread, 10.4 on two), and AUTO took up to 2.2 times the best choice on float32 and 3.3 on bf16
     * between 2^15 and 2^17 elements. There the second thread pays off from 3 x 2^15 elements for forward and float32
     * backward, 2^17 for float32 with given statistics and half-precision backward, and 2^18 for half precision with
     * given statistics, as {@code panorm tune} measured it there (three runs on float32, two on bf16;
     * docs/benchmarks.md, "oneDNN's second thread on AMD"). {@code panorm tune} measures any other machine.
     */
    static final boolean AMD = AutoProfile.Key.cpuVendor().equals("AuthenticAMD");

    /**
     * Whether oneDNN's second thread costs as on the AMD EPYC (Zen 5) measured ({@link #AMD}): on AMD CPUs other than
     * those of family 25 with AVX-512 (Zen 4). On the EPYC Zen 4 measured it costs as on the Intel Xeon (float32
     * forward 16x4096: 16.3 us on one thread, 10.4 on two), and two {@code panorm tune} runs chose oneDNN's second
     * thread from 12,288 to 32,768 elements; with these counts and Intel's crossovers AUTO's mean time over the
     * runs' sweeps went from 1.03 to 1.10 of the best to 1.00 to 1.05 (docs/benchmarks.md, "A fourth machine kind").
     */
    static final boolean COSTLY_SECOND_THREAD = AMD && !(AutoProfile.Key.cpuFamily() == 25 && Avx512.PRESENT);

    /** Whether the CPU has AVX-512 ({@code avx512f}), asked of /proc/cpuinfo once, and only on AMD CPUs. */
    static final class Avx512 {
        static final boolean PRESENT = AutoProfile.Key.cpuHasFlag("avx512f");

        private Avx512() {}
    }

    private final LayerNormConfig config;
    /** Computes the statistics that precise and RMS plans take from Java. */
    private final ScalarKernel scalar;
    /** Runs what oneDNN cannot. */
    private final Kernel java;

    private final MemorySegment engine;
    /** The threads a call may use, or 0 to choose per shape. */
    private final int threads;
    /** With {@code threads} 0: one thread below this many elements, by data type and pass; null: the built-in rule. */
    private final long[][] singleThreadBelowByPass;

    private final int maxThreads;
    private final PlanCache plans;
    /** The residual adds of the fused operations ({@link #add}), kept apart from the normalizations' plans. */
    private final PlanCache sums;

    /**
     * @param threads the OpenMP threads a call may use; 0 for one on small tensors and all on large ones
     * @param calls the owning {@code LayerNorm}'s calls in flight
     * @param java the kernel for the signatures oneDNN cannot run
     */
    OneDnnKernel(LayerNormConfig config, int threads, CallCounter calls, Kernel java) {
        this(config, threads, calls, java, null);
    }

    /**
     * As above, with {@code threads} 0 taking one thread below {@code singleThreadBelow[type][pass]} elements (AUTO's
     * model: a profile's thread counts), or as {@link #singleThreadBelow} says where that is null.
     */
    OneDnnKernel(LayerNormConfig config, int threads, CallCounter calls, Kernel java, long[][] singleThreadBelow) {
        this.config = config;
        this.scalar = new ScalarKernel(config);
        this.java = java;
        this.engine = OneDnn.runtime().engine();
        this.maxThreads = OpenMp.defaultThreads();
        // OMP_NUM_THREADS (default: the cores) caps every call; more threads only oversubscribe the cores, and
        // thousands made OpenMP's thread creation crash the JVM.
        this.threads = Math.min(threads, maxThreads);
        this.singleThreadBelowByPass = singleThreadBelow;
        this.plans = new PlanCache(calls, this::build);
        this.sums = new PlanCache(calls, this::buildSum);
    }

    /**
     * The OpenMP threads for a call of {@code pass} on {@code rows} rows of {@code elements} elements of {@code
     * type}. A forward pass on one row gets one thread: oneDNN splits forward work by rows, so a second thread would
     * only wait.
     */
    int threadsFor(Pass pass, DataType type, long rows, long elements) {
        if (threads > 0) {
            return threads;
        }
        long below = singleThreadBelowByPass != null
                ? singleThreadBelowByPass[type.ordinal()][pass.ordinal()]
                : singleThreadBelow(pass, type);
        return elements < below || rows == 1 && pass.forward ? 1 : maxThreads;
    }

    /** With automatic threads, calls of {@code pass} on {@code type} use one thread below this many elements. */
    static long singleThreadBelow(Pass pass, DataType type) {
        boolean computesStatistics = pass.forward && !pass.globalStatistics;
        boolean half = type != DataType.F32;
        if (COSTLY_SECOND_THREAD) {
            if (pass.forward) {
                return computesStatistics ? 3 << 15 : half ? 1 << 18 : 1 << 17;
            }
            return half ? 1 << 17 : 3 << 15;
        }
        return half && computesStatistics ? HALF_SINGLE_THREAD_BELOW : SINGLE_THREAD_BELOW;
    }

    private OneDnnPlan build(CallSignature signature, Call call) throws OneDnnPlan.Unsupported {
        // oneDNN reads the calling thread's OpenMP thread count when it creates a primitive.
        OpenMp.setThreads(OpenMp.threadsSetOnCallingThread(), signature.threads);
        return new OneDnnPlan(config, engine, scalar, signature, call);
    }

    private OneDnnPlan buildSum(CallSignature signature, Call call) throws OneDnnPlan.Unsupported {
        OpenMp.setThreads(OpenMp.threadsSetOnCallingThread(), signature.threads);
        return OneDnnPlan.residualAdd(config, engine, signature, call);
    }

    /**
     * The calling thread's plan for {@code sum = (first + second) + bias} (bias per channel, or null) on {@code rows}
     * rows, built if new, for {@link #add}; null where oneDNN cannot run it (a strided layout, or only reference
     * code for the types). Each addition is rounded to float32 and the result to {@code sum}'s type; {@code sum}
     * may be {@code first} itself.
     */
    OneDnnPlan.Context addPlan(Tensor first, Tensor second, Tensor bias, Tensor sum, long rows) {
        Pass pass = Pass.FORWARD_INFERENCE; // the add's plans have a cache of their own, so no pass of their own
        // float32's thresholds for every type, as for the norm after it (forwardAfterAdd)
        int used = threadsFor(pass, DataType.F32, rows, first.elementCount());
        long key = CallSignature.key(pass, used, first, sum, null, bias, second, null, null, null);
        PlanCache.Recent recent = sums.recent(key, pass, used, first, sum, null, bias, second, null, null, null);
        if (recent == null) {
            recent = sums.checkOut(
                    new Call(pass, rows, first, sum, null, bias, null, null, second, null, null, null), used);
        }
        return recent.context();
    }

    /** Runs {@code plan}, from {@link #addPlan} on these tensors' layouts, on these tensors. */
    static void add(OneDnnPlan.Context plan, Tensor first, Tensor second, Tensor bias, Tensor sum) {
        plan.execute(first, sum, null, bias, null, null, second, null, null, null);
    }

    @Override
    public Backend forward(
            Pass pass, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance, long rows) {
        return run(true, src.dataType(), pass, rows, src, dst, scale, shift, mean, variance, null, null, null, null);
    }

    /**
     * As {@link #forward}, on the sum that {@link #add} wrote: with float32's thread thresholds whatever the data type,
     * as the add had. Two primitives per call start the OpenMP team twice, and half precision's earlier second thread
     * lost there (fused bf16 forward 7x4096: 8.2 us with one thread for both, 9.1 with two, 11.3 with one for the add
     * and two for the norm; docs/benchmarks.md, "Half precision: oneDNN's threads and wide rows").
     */
    Backend forwardAfterAdd(
            Pass pass, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance, long rows) {
        return run(true, DataType.F32, pass, rows, src, dst, scale, shift, mean, variance, null, null, null, null);
    }

    /**
     * As {@link #forward}, but null instead of building a new signature's plan on the calling thread: the
     * plan is then built on a background thread ({@link PlanCache#tryCheckOut}), and nothing is computed.
     */
    Backend forwardIfPlanned(
            Pass pass, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance, long rows) {
        return run(false, src.dataType(), pass, rows, src, dst, scale, shift, mean, variance, null, null, null, null);
    }

    /** As {@link #backward}, but null instead of building a new signature's plan, as {@link #forwardIfPlanned}. */
    Backend backwardIfPlanned(
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
        return run(
                false,
                src.dataType(),
                pass,
                rows,
                src,
                null,
                scale,
                null,
                mean,
                variance,
                diffDst,
                diffSrc,
                diffScale,
                diffShift);
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
        return run(
                true,
                src.dataType(),
                pass,
                rows,
                src,
                null,
                scale,
                null,
                mean,
                variance,
                diffDst,
                diffSrc,
                diffScale,
                diffShift);
    }

    /**
     * Runs either pass; the tensors come by role, in {@link Role}'s order, absent ones null. Without {@code wait},
     * returns null where the plan is still to be built. The thread count follows {@code threadsAs}'s thresholds:
     * src's data type, except after the fused add ({@link #forwardAfterAdd}).
     */
    private Backend run(
            boolean wait,
            DataType threadsAs,
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
        int used = threadsFor(pass, threadsAs, rows, src.elementCount());
        long key = CallSignature.key(pass, used, src, dst, scale, shift, diffDst, diffSrc, diffScale, diffShift);
        PlanCache.Recent recent =
                plans.recent(key, pass, used, src, dst, scale, shift, diffDst, diffSrc, diffScale, diffShift);
        if (recent == null) {
            if (!wait && plans.buildingInBackground()) {
                return null; // as tryCheckOut would, without making a Call: calls meanwhile allocate nothing
            }
            Call call = new Call(
                    pass, rows, src, dst, scale, shift, mean, variance, diffDst, diffSrc, diffScale, diffShift);
            recent = wait ? plans.checkOut(call, used) : plans.tryCheckOut(call, used);
            if (recent == null) {
                return null;
            }
        }
        if (recent.context() == null) { // oneDNN cannot run this signature
            return pass.forward
                    ? java.forward(pass, src, dst, scale, shift, mean, variance, rows)
                    : java.backward(pass, diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift, rows);
        }
        recent.context().execute(src, dst, scale, shift, mean, variance, diffDst, diffSrc, diffScale, diffShift);
        return Backend.ONEDNN;
    }

    @Override
    public void quiescent() {
        plans.quiescent();
        sums.quiescent();
    }

    @Override
    public String implementation(Tensor src, Tensor dst, Tensor scale, Tensor shift, long rows) {
        Call call = Call.forward(Pass.FORWARD_INFERENCE, src, dst, scale, shift, null, null, rows);
        int used = threadsFor(Pass.FORWARD_INFERENCE, src.dataType(), rows, src.elementCount());
        OneDnnPlan plan = plans.plan(call, used);
        if (plan != null) {
            return plan.implementation + (used > 1 ? ", " + used + " threads" : "");
        }
        String reason = plans.rejection(call, used);
        return java.implementation(src, dst, scale, shift, rows) + (reason == null ? "" : " (" + reason + ")");
    }

    /** The plans (for lifecycle tests). */
    PlanCache plans() {
        return plans;
    }

    @Override
    public void close() {
        plans.close();
        sums.close();
        java.close();
    }
}
