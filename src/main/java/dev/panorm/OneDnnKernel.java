package dev.panorm;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * The oneDNN backend: a {@link OneDnnPlan} per call signature (pass, data types, shapes, strides and
 * thread count), built on first use and cached. A signature oneDNN cannot run is remembered and served
 * by the Java backend instead, so callers never see the difference except in speed; ask
 * {@link #backend} which one runs.
 *
 * <p>Calls cost little more than oneDNN's own: each Java thread keeps the execution contexts (stream,
 * memory objects, bound addresses) of the signatures it used last, for itself alone, so a repeated
 * call takes no lock and binds nothing. Only a thread's first call on a signature takes the lock, to
 * find or build the plan and a context. Beyond {@link #MAX_PLANS} signatures, plans are dropped least
 * recently used first, and their native memory is freed once no call of the {@code LayerNorm} is in
 * flight (threads that still hold their contexts notice the plan is retired and do not use it), on a
 * background thread: freeing a plan on the caller's thread added about 0.35 ms to the call that
 * evicted it ({@code StartupBenchmark.firstCallOnNewShape} with 80 {@code warmShapes}).
 */
final class OneDnnKernel implements Kernel {
    /** Plans kept; each holds a little JIT code and a few descriptors. */
    static final int MAX_PLANS = 64;
    /** Contexts a thread keeps: enough for a model alternating a few shapes (prefill, decode, ...). */
    private static final int HOT_CONTEXTS = 4;
    /**
     * With automatic threads, calls on fewer elements than this use one thread: OpenMP's team start-up
     * and barrier cost more than a second core saves on small tensors (the measurements: 1x768
     * takes 0.64 us on one thread and 1.43 us on two; 512x1024 takes 61 us and 32 us).
     */
    static final long SINGLE_THREAD_BELOW = 1 << 16;
    /** Per Java thread, the OpenMP thread count panorm last set on it (0: not yet). */
    private static final ThreadLocal<int[]> OPENMP_THREADS = ThreadLocal.withInitial(() -> new int[1]);

    private final LayerNormConfig config;
    /** Computes the statistics that precise and RMS plans take from Java. */
    private final ScalarKernel scalar;
    /** Runs what oneDNN cannot. */
    private final Kernel java;
    private final java.lang.foreign.MemorySegment engine;
    private final CallCounter calls;
    /** The threads a call may use, or 0 to choose per shape. */
    private final int threads;
    private final int maxThreads;
    private final ThreadLocal<Hot> hot = ThreadLocal.withInitial(Hot::new);

    private final Object lock = new Object();
    private final List<OneDnnPlan> plans = new ArrayList<>();   // guarded by lock
    private final List<Rejected> rejected = new ArrayList<>();  // guarded by lock
    private final List<OneDnnPlan> retired = new ArrayList<>(); // guarded by lock
    private volatile boolean hasRetired;
    /** Retired plans handed to the {@link Reaper} and not freed yet; guarded by lock. */
    private int freeing;
    private long clock;                                         // racy: an approximate recency

    /** The daemon thread that frees retired plans, shared by every oneDNN {@code LayerNorm}; started on first use. */
    private static final class Reaper {
        static final ExecutorService THREAD = Executors.newSingleThreadExecutor(task -> {
            Thread thread = new Thread(task, "panorm-plan-reaper");
            thread.setDaemon(true);
            return thread;
        });
    }

    /** A signature oneDNN cannot run, and why. */
    private record Rejected(CallSignature signature, String reason) {}

    /** One thread's contexts, most recently used first, and its OpenMP setting. */
    private static final class Hot {
        final OneDnnPlan.Context[] contexts = new OneDnnPlan.Context[HOT_CONTEXTS];
        final int[] openMpThreads = OPENMP_THREADS.get();
    }

    /**
     * @param threads the OpenMP threads a call may use; 0 for one on small tensors and all on large ones
     * @param calls the owning {@code LayerNorm}'s calls in flight
     * @param java the kernel for the signatures oneDNN cannot run
     */
    OneDnnKernel(LayerNormConfig config, int threads, CallCounter calls, Kernel java) {
        this.config = config;
        this.scalar = new ScalarKernel(config);
        this.java = java;
        this.engine = OneDnn.runtime().engine();
        this.maxThreads = OpenMp.maxThreads();
        this.threads = threads;
        this.calls = calls;
    }

    /** The OpenMP threads for a call on {@code elements} elements. */
    private int threadsFor(long elements) {
        if (threads > 0) {
            return threads;
        }
        return elements < SINGLE_THREAD_BELOW ? 1 : maxThreads;
    }

    @Override
    public Backend forward(Pass pass, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance,
                           long rows) {
        return run(pass, rows, src, dst, scale, shift, mean, variance, null, null, null, null);
    }

    @Override
    public Backend backward(Pass pass, Tensor diffDst, Tensor src, Tensor mean, Tensor variance, Tensor scale,
                            Tensor diffSrc, Tensor diffScale, Tensor diffShift, long rows) {
        return run(pass, rows, src, null, scale, null, mean, variance, diffDst, diffSrc, diffScale, diffShift);
    }

    private Backend run(Pass pass, long rows, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean,
                        Tensor variance, Tensor diffDst, Tensor diffSrc, Tensor diffScale, Tensor diffShift) {
        int used = threadsFor(src.elementCount());
        long key = CallSignature.key(pass, used, src, dst, scale, shift, diffDst, diffSrc, diffScale, diffShift);
        Hot mine = hot.get();
        OneDnnPlan.Context context = null;
        for (OneDnnPlan.Context candidate : mine.contexts) {
            if (candidate != null && !candidate.plan.retired && candidate.plan.signature.matches(key, pass, used, src,
                    dst, scale, shift, diffDst, diffSrc, diffScale, diffShift)) {
                context = candidate;
                break;
            }
        }
        if (context == null) {
            context = checkOut(mine, key, pass, used, rows, src, dst, scale, shift, mean, variance, diffDst, diffSrc,
                    diffScale, diffShift);
            if (context == null) {
                return pass.forward ? java.forward(pass, src, dst, scale, shift, mean, variance, rows)
                        : java.backward(pass, diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift, rows);
            }
        }
        context.plan.lastUsed = ++clock;
        if (mine.openMpThreads[0] != used) { // oneDNN reads it when a primitive runs
            OpenMp.setThreads(used);
            mine.openMpThreads[0] = used;
        }
        context.execute(src, dst, scale, shift, mean, variance, diffDst, diffSrc, diffScale, diffShift);
        return Backend.ONEDNN;
    }

    /**
     * A context of the plan for this signature (built if needed), put first among the thread's own;
     * the one it displaces goes back to its plan. Null if oneDNN cannot run the signature.
     */
    private OneDnnPlan.Context checkOut(Hot mine, long key, Pass pass, int used, long rows, Tensor src, Tensor dst,
                                        Tensor scale, Tensor shift, Tensor mean, Tensor variance, Tensor diffDst,
                                        Tensor diffSrc, Tensor diffScale, Tensor diffShift) {
        synchronized (lock) {
            OneDnnPlan plan = find(key, pass, used, rows, src, dst, scale, shift, mean, variance, diffDst, diffSrc,
                    diffScale, diffShift);
            if (plan == null) {
                return null;
            }
            OneDnnPlan.Context context = plan.lend();
            OneDnnPlan.Context displaced = mine.contexts[HOT_CONTEXTS - 1];
            if (displaced != null && !displaced.plan.retired) {
                displaced.plan.release(displaced);
            }
            System.arraycopy(mine.contexts, 0, mine.contexts, 1, HOT_CONTEXTS - 1);
            mine.contexts[0] = context;
            return context;
        }
    }

    /** The plan for this signature, built if needed; null if oneDNN cannot run it. Holds the lock. */
    private OneDnnPlan find(long key, Pass pass, int used, long rows, Tensor src, Tensor dst, Tensor scale, Tensor shift,
                            Tensor mean, Tensor variance, Tensor diffDst, Tensor diffSrc, Tensor diffScale,
                            Tensor diffShift) {
        for (OneDnnPlan plan : plans) {
            if (plan.signature.matches(key, pass, used, src, dst, scale, shift, diffDst, diffSrc, diffScale, diffShift)) {
                return plan;
            }
        }
        for (Rejected entry : rejected) {
            if (entry.signature().matches(key, pass, used, src, dst, scale, shift, diffDst, diffSrc, diffScale,
                    diffShift)) {
                return null;
            }
        }
        Call call = new Call(pass, rows, src, dst, scale, shift, mean, variance, diffDst, diffSrc, diffScale, diffShift);
        CallSignature signature = new CallSignature(call, used);
        OneDnnPlan plan;
        // oneDNN reads the calling thread's OpenMP thread count when it creates a primitive.
        int previous = OpenMp.maxThreads();
        OpenMp.setThreads(used);
        try {
            plan = new OneDnnPlan(config, engine, scalar, signature, call);
        } catch (OneDnnPlan.Unsupported e) {
            if (rejected.size() >= MAX_PLANS) {
                rejected.removeFirst();
            }
            rejected.add(new Rejected(signature, e.getMessage()));
            return null;
        } finally {
            OpenMp.setThreads(previous);
            OPENMP_THREADS.get()[0] = previous;
        }
        if (plans.size() >= MAX_PLANS) {
            retireLeastRecentlyUsed();
        }
        plans.add(plan);
        return plan;
    }

    private void retireLeastRecentlyUsed() {
        OneDnnPlan oldest = plans.getFirst();
        for (OneDnnPlan plan : plans) {
            if (plan.lastUsed < oldest.lastUsed) {
                oldest = plan;
            }
        }
        plans.remove(oldest);
        oldest.retired = true;
        retired.add(oldest);
        hasRetired = true;
    }

    /**
     * Hands retired plans to the {@link Reaper} if no call is in flight. A call that starts later sees
     * them retired (the flag is written before the count is read here, and read after the call's count
     * goes up), so none can be using them.
     */
    @Override
    public void quiescent() {
        if (!hasRetired) {
            return;
        }
        synchronized (lock) {
            if (calls.inFlight() == 0 && !retired.isEmpty()) {
                List<OneDnnPlan> doomed = List.copyOf(retired);
                retired.clear();
                hasRetired = false;
                freeing += doomed.size();
                Reaper.THREAD.execute(() -> {
                    doomed.forEach(OneDnnPlan::free);
                    synchronized (lock) {
                        freeing -= doomed.size();
                        lock.notifyAll();
                    }
                });
            }
        }
    }

    @Override
    public String implementation(Tensor src, Tensor dst, Tensor scale, Tensor shift, long rows) {
        Pass pass = Pass.FORWARD_INFERENCE;
        int used = threadsFor(src.elementCount());
        long key = CallSignature.key(pass, used, src, dst, scale, shift, null, null, null, null);
        synchronized (lock) {
            OneDnnPlan plan = find(key, pass, used, rows, src, dst, scale, shift, null, null, null, null, null, null);
            if (plan != null) {
                return plan.implementation + (used > 1 ? ", " + used + " threads" : "");
            }
            for (Rejected entry : rejected) {
                if (entry.signature().matches(key, pass, used, src, dst, scale, shift, null, null, null, null)) {
                    return java.implementation(src, dst, scale, shift, rows) + " (" + entry.reason() + ")";
                }
            }
        }
        return java.implementation(src, dst, scale, shift, rows);
    }

    /** Plans whose native objects are allocated: cached, retired or being freed (for leak tests). */
    int allocatedPlans() {
        synchronized (lock) {
            return plans.size() + retired.size() + freeing;
        }
    }

    /** Plans in the cache (for tests). */
    int cachedPlans() {
        synchronized (lock) {
            return plans.size();
        }
    }

    /** Contexts (streams and memory objects) the cached plans have made (for leak tests). */
    int allocatedContexts() {
        synchronized (lock) {
            return plans.stream().mapToInt(OneDnnPlan::contexts).sum();
        }
    }

    @Override
    public void close() {
        synchronized (lock) {
            for (OneDnnPlan plan : plans) {
                plan.retired = true; // threads holding its contexts must not use them
                plan.free();
            }
            retired.forEach(OneDnnPlan::free);
            plans.clear();
            retired.clear();
            rejected.clear();
            // Return only once the reaper has freed what it was handed, so close() frees everything.
            boolean interrupted = false;
            while (freeing > 0) {
                try {
                    lock.wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
        java.close();
    }
}
