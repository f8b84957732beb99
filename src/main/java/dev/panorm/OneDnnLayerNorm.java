package dev.panorm;

import java.util.ArrayList;
import java.util.List;

/**
 * The oneDNN backend: a {@link OneDnnPlan} per call signature (pass, data types, shapes, strides and
 * thread count), built on first use and cached. A signature oneDNN cannot run is remembered and served
 * by the Java backend instead, so callers never see the difference except in speed; ask
 * {@link #backend} which one runs.
 *
 * <p>Thread safety: a plan's execution contexts serve one call at a time, and concurrent calls take
 * their own (creating one if all are busy). Beyond {@link #MAX_PLANS} signatures, plans are
 * evicted least recently used first and freed when their last call returns.
 */
final class OneDnnLayerNorm implements LayerNormKernel {
    /** Plans kept; each holds a little JIT code and a few descriptors. */
    static final int MAX_PLANS = 64;
    /**
     * With automatic threads, calls on fewer elements than this use one thread: OpenMP's team start-up
     * and barrier cost more than a second core saves on small tensors (the measurements: 1x768
     * takes 0.64 us on one thread and 1.43 us on two; 512x1024 takes 61 us and 32 us).
     */
    static final long SINGLE_THREAD_BELOW = 1 << 16;
    /** Per Java thread, the OpenMP thread count panorm last set on it (0: not yet). */
    private static final ThreadLocal<int[]> OPENMP_THREADS = ThreadLocal.withInitial(() -> new int[1]);

    private final LayerNormConfig config;
    private final JavaLayerNorm java;
    private final java.lang.foreign.MemorySegment engine;
    /** The threads a call may use, or 0 to choose per shape. */
    private final int threads;
    private final int maxThreads;

    private final Object lock = new Object();
    private final List<OneDnnPlan> plans = new ArrayList<>();  // guarded by lock
    private final List<Rejected> rejected = new ArrayList<>(); // guarded by lock
    private long clock;                                        // guarded by lock

    /** A signature oneDNN cannot run, and why. */
    private record Rejected(CallSignature signature, String reason) {}

    /** @param threads the OpenMP threads a call may use; 0 for one on small tensors and all on large ones */
    OneDnnLayerNorm(LayerNormConfig config, int threads) {
        this.config = config;
        this.java = new JavaLayerNorm(config);
        this.engine = OneDnn.runtime().engine();
        this.maxThreads = OpenMp.maxThreads();
        this.threads = threads;
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
        OneDnnPlan plan = acquire(pass, rows, src, dst, scale, shift, mean, variance, diffDst, diffSrc, diffScale, diffShift);
        if (plan == null) {
            return pass.forward ? java.forward(pass, src, dst, scale, shift, mean, variance, rows)
                    : java.backward(pass, diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift, rows);
        }
        OneDnnPlan.Context context = null;
        try {
            synchronized (lock) {
                context = plan.pollIdle();
            }
            if (context == null) {
                context = plan.newContext();
            }
            int[] openMp = OPENMP_THREADS.get();
            if (openMp[0] != plan.signature.threads) { // compositions' helper primitives read it when they run
                OpenMp.setThreads(plan.signature.threads);
                openMp[0] = plan.signature.threads;
            }
            context.execute(src, dst, scale, shift, mean, variance, diffDst, diffSrc, diffScale, diffShift);
        } finally {
            release(plan, context);
        }
        return Backend.ONEDNN;
    }

    @Override
    public String implementation(Tensor src, Tensor dst, Tensor scale, Tensor shift, long rows) {
        Pass pass = Pass.FORWARD_INFERENCE;
        OneDnnPlan plan = acquire(pass, rows, src, dst, scale, shift, null, null, null, null, null, null);
        if (plan != null) {
            release(plan, null);
            int used = plan.signature.threads;
            return plan.implementation + (used > 1 ? ", " + used + " threads" : "");
        }
        int used = threadsFor(src.elementCount());
        long key = CallSignature.key(pass, used, src, dst, scale, shift, null, null, null, null);
        synchronized (lock) {
            for (Rejected entry : rejected) {
                if (entry.signature().matches(key, pass, used, src, dst, scale, shift, null, null, null, null)) {
                    return "java:scalar (" + entry.reason() + ")";
                }
            }
        }
        return "java:scalar";
    }

    @Override
    public void close() {
        synchronized (lock) {
            for (OneDnnPlan plan : plans) {
                plan.free();
            }
            plans.clear();
            rejected.clear();
        }
    }

    private static Tensor[] roles(Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance,
                                  Tensor diffDst, Tensor diffSrc, Tensor diffScale, Tensor diffShift) {
        return new Tensor[] {src, dst, scale, shift, mean, variance, diffDst, diffSrc, diffScale, diffShift};
    }

    /**
     * The plan for this signature, created if needed, marked in use and most recently used; null if
     * oneDNN cannot run it.
     */
    private OneDnnPlan acquire(Pass pass, long rows, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean,
                               Tensor variance, Tensor diffDst, Tensor diffSrc, Tensor diffScale, Tensor diffShift) {
        int used = threadsFor(src.elementCount());
        long key = CallSignature.key(pass, used, src, dst, scale, shift, diffDst, diffSrc, diffScale, diffShift);
        synchronized (lock) {
            for (int i = 0; i < plans.size(); i++) { // indexed: no iterator on the hot path
                OneDnnPlan plan = plans.get(i);
                if (plan.signature.matches(key, pass, used, src, dst, scale, shift, diffDst, diffSrc, diffScale, diffShift)) {
                    plan.lastUsed = ++clock;
                    plan.users++;
                    return plan;
                }
            }
            for (int i = 0; i < rejected.size(); i++) {
                if (rejected.get(i).signature().matches(key, pass, used, src, dst, scale, shift, diffDst, diffSrc,
                        diffScale, diffShift)) {
                    return null;
                }
            }
            Tensor[] tensors = roles(src, dst, scale, shift, mean, variance, diffDst, diffSrc, diffScale, diffShift);
            CallSignature signature = new CallSignature(pass, used, src, dst, scale, shift, diffDst, diffSrc, diffScale,
                    diffShift);
            OneDnnPlan plan;
            // oneDNN reads the calling thread's OpenMP thread count when it creates a primitive.
            int previous = OpenMp.maxThreads();
            OpenMp.setThreads(used);
            try {
                plan = new OneDnnPlan(config, engine, java, signature, rows, tensors);
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
                evictLeastRecentlyUsed();
            }
            plans.add(plan);
            plan.lastUsed = ++clock;
            plan.users++;
            return plan;
        }
    }

    private void release(OneDnnPlan plan, OneDnnPlan.Context context) {
        synchronized (lock) {
            if (context != null) {
                plan.release(context);
            }
            if (--plan.users == 0 && plan.evicted) {
                plan.free();
            }
        }
    }

    private void evictLeastRecentlyUsed() {
        OneDnnPlan oldest = plans.getFirst();
        for (OneDnnPlan plan : plans) {
            if (plan.lastUsed < oldest.lastUsed) {
                oldest = plan;
            }
        }
        plans.remove(oldest);
        oldest.evicted = true;
        if (oldest.users == 0) {
            oldest.free();
        }
    }
}
