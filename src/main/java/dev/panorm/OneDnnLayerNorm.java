package dev.panorm;

import java.util.ArrayList;
import java.util.List;

/**
 * The oneDNN backend: a {@link OneDnnPlan} per call signature (pass, data types, shapes and
 * strides), built on first use and cached. A signature oneDNN cannot run is remembered and served
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

    private final LayerNormConfig config;
    private final JavaLayerNorm java;
    private final java.lang.foreign.MemorySegment engine;

    private final Object lock = new Object();
    private final List<OneDnnPlan> plans = new ArrayList<>();  // guarded by lock
    private final List<Rejected> rejected = new ArrayList<>(); // guarded by lock
    private long clock;                                        // guarded by lock

    /** A signature oneDNN cannot run, and why. */
    private record Rejected(OneDnnPlan.Signature signature, String reason) {}

    OneDnnLayerNorm(LayerNormConfig config) {
        this.config = config;
        this.java = new JavaLayerNorm(config);
        this.engine = OneDnn.runtime().engine();
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
            return plan.implementation;
        }
        synchronized (lock) {
            for (Rejected entry : rejected) {
                if (entry.signature().matches(pass, src, dst, scale, shift, null, null, null, null, null, null)) {
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
        synchronized (lock) {
            for (OneDnnPlan plan : plans) {
                if (plan.matches(pass, src, dst, scale, shift, mean, variance, diffDst, diffSrc,
                        diffScale, diffShift)) {
                    plan.lastUsed = ++clock;
                    plan.users++;
                    return plan;
                }
            }
            for (Rejected entry : rejected) {
                if (entry.signature().matches(pass, src, dst, scale, shift, mean, variance, diffDst, diffSrc, diffScale,
                        diffShift)) {
                    return null;
                }
            }
            Tensor[] tensors = roles(src, dst, scale, shift, mean, variance, diffDst, diffSrc, diffScale, diffShift);
            OneDnnPlan.Signature signature = OneDnnPlan.Signature.of(pass, tensors);
            OneDnnPlan plan;
            try {
                plan = new OneDnnPlan(config, engine, java, signature, rows, tensors);
            } catch (OneDnnPlan.Unsupported e) {
                if (rejected.size() >= MAX_PLANS) {
                    rejected.removeFirst();
                }
                rejected.add(new Rejected(signature, e.getMessage()));
                return null;
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
