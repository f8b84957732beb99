package dev.panorm;

import dev.panorm.internal.dnnl.Dnnl;
import dev.panorm.internal.dnnl.dnnl_exec_arg_t;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * The oneDNN backend: one primitive per {@link Pass} and row count, built on first use and cached.
 * A call binds the caller's segments to the primitive's memory objects and executes it; nothing is
 * allocated on that path.
 *
 * <p>Thread safety: streams and memory objects belong to an execution {@link Context}, and a
 * context serves one call at a time, so concurrent calls each take their own from the plan's pool
 * (creating one if all are busy). Plans beyond {@link #MAX_PLANS} are evicted least recently used
 * first, and freed when their last call returns.
 */
final class OneDnnLayerNorm implements LayerNormKernel {
    /** Plans kept; each holds a little JIT code and a few descriptors. */
    static final int MAX_PLANS = 64;

    // The tensors a primitive can take, as indices into a context's memory objects.
    private static final int SRC = 0;
    private static final int DST = 1;
    private static final int SCALE = 2;
    private static final int SHIFT = 3;
    private static final int MEAN = 4;
    private static final int VARIANCE = 5;
    private static final int DIFF_DST = 6;
    private static final int DIFF_SRC = 7;
    private static final int DIFF_SCALE = 8;
    private static final int DIFF_SHIFT = 9;
    private static final int ROLES = 10;
    private static final int[] ARGUMENT = {Dnnl.DNNL_ARG_SRC(), Dnnl.DNNL_ARG_DST(), Dnnl.DNNL_ARG_SCALE(),
            Dnnl.DNNL_ARG_SHIFT(), Dnnl.DNNL_ARG_MEAN(), Dnnl.DNNL_ARG_VARIANCE(), Dnnl.DNNL_ARG_DIFF_DST(),
            Dnnl.DNNL_ARG_DIFF_SRC(), Dnnl.DNNL_ARG_DIFF_SCALE(), Dnnl.DNNL_ARG_DIFF_SHIFT()};

    private final LayerNormConfig config;
    private final MemorySegment engine;

    private final Object lock = new Object();
    private final List<Plan> plans = new ArrayList<>(); // guarded by lock
    private long clock;                                 // guarded by lock

    OneDnnLayerNorm(LayerNormConfig config) {
        this.config = config;
        this.engine = OneDnn.runtime().engine();
    }

    @Override
    public void forward(Pass pass, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance,
                        long rows) {
        Plan plan = acquire(pass, rows);
        Context context = null;
        try {
            context = plan.context();
            context.bind(SRC, src);
            context.bind(DST, dst);
            context.bind(SCALE, scale);
            context.bind(SHIFT, shift);
            context.bind(MEAN, mean);
            context.bind(VARIANCE, variance);
            context.execute();
        } finally {
            release(plan, context);
        }
    }

    @Override
    public void backward(Pass pass, Tensor diffDst, Tensor src, Tensor mean, Tensor variance, Tensor scale,
                         Tensor diffSrc, Tensor diffScale, Tensor diffShift, long rows) {
        Plan plan = acquire(pass, rows);
        Context context = null;
        try {
            context = plan.context();
            context.bind(SRC, src);
            context.bind(DIFF_DST, diffDst);
            context.bind(MEAN, mean);
            context.bind(VARIANCE, variance);
            context.bind(SCALE, scale);
            context.bind(DIFF_SRC, diffSrc);
            context.bind(DIFF_SCALE, diffScale);
            context.bind(DIFF_SHIFT, diffShift);
            context.execute();
        } finally {
            release(plan, context);
        }
    }

    @Override
    public String implementation(Pass pass, long rows) {
        Plan plan = acquire(pass, rows);
        release(plan, null);
        return plan.implementation;
    }

    @Override
    public void close() {
        synchronized (lock) {
            for (Plan plan : plans) {
                plan.free();
            }
            plans.clear();
        }
    }

    /** The plan for {@code pass} and {@code rows}, created if needed, marked in use and most recently used. */
    private Plan acquire(Pass pass, long rows) {
        synchronized (lock) {
            Plan found = null;
            for (Plan plan : plans) {
                if (plan.rows == rows && plan.pass == pass) {
                    found = plan;
                    break;
                }
            }
            if (found == null) {
                if (plans.size() >= MAX_PLANS) {
                    evictLeastRecentlyUsed();
                }
                found = new Plan(pass, rows);
                plans.add(found);
            }
            found.lastUsed = ++clock;
            found.users++;
            return found;
        }
    }

    private void release(Plan plan, Context context) {
        synchronized (lock) {
            if (context != null) {
                plan.idle.push(context);
            }
            if (--plan.users == 0 && plan.evicted) {
                plan.free();
            }
        }
    }

    private void evictLeastRecentlyUsed() {
        Plan oldest = plans.getFirst();
        for (Plan plan : plans) {
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

    private String describe(Pass pass, long rows) {
        return "layer normalization " + pass.name().toLowerCase(java.util.Locale.ROOT).replace('_', ' ') + " of F32["
                + rows + ", " + config.normalizedSize() + "], eps " + (float) config.eps() + ", scale " + config.scale()
                + ", shift " + config.shift();
    }

    /** Reads the handle a {@code dnnl_*_create} call wrote and ties its destruction to {@code arena}. */
    private static MemorySegment own(MemorySegment out, Arena arena, Consumer<MemorySegment> destroy) {
        MemorySegment handle = out.get(ValueLayout.ADDRESS, 0);
        handle.reinterpret(arena, destroy);
        // The plain handle has global scope, so passing it to a downcall costs no liveness check;
        // the plan's reference counting is what keeps it alive.
        return handle;
    }

    /** The primitive for one pass and row count, and the pool of contexts that execute it. */
    private final class Plan {
        final Pass pass;
        final long rows;
        final Arena arena = Arena.ofShared();
        /** The memory descriptor of each role this primitive takes, null for the others. */
        final MemorySegment[] descriptors = new MemorySegment[ROLES];
        final MemorySegment scratchpadDesc;
        final long scratchpadBytes;
        /** A role whose memory the context allocates and the caller never sees (a discarded gradient), or -1. */
        final int ownedGradient;
        final MemorySegment primitive;
        final String implementation;
        final ArrayDeque<Context> idle = new ArrayDeque<>(); // guarded by lock
        int users;       // guarded by lock
        boolean evicted; // guarded by lock
        long lastUsed;   // guarded by lock

        Plan(Pass pass, long rows) {
            this.pass = pass;
            this.rows = rows;
            String context = describe(pass, rows);
            try (Arena scratch = Arena.ofConfined()) {
                MemorySegment out = scratch.allocate(ValueLayout.ADDRESS);
                MemorySegment dims = scratch.allocateFrom(ValueLayout.JAVA_LONG, rows, config.normalizedSize());
                MemorySegment data = descriptor(out, 2, dims, Dnnl.dnnl_ab(), context);
                MemorySegment channels = descriptor(out, 1, dims.asSlice(8), Dnnl.dnnl_a(), context);
                MemorySegment statistics = descriptor(out, 1, dims, Dnnl.dnnl_a(), context);

                OneDnn.check(Dnnl.dnnl_primitive_attr_create(out), "dnnl_primitive_attr_create", context);
                MemorySegment attr = own(out, scratch, Dnnl::dnnl_primitive_attr_destroy);
                // User-managed scratchpad: each context owns its own, so concurrent calls never share one.
                OneDnn.check(Dnnl.dnnl_primitive_attr_set_scratchpad_mode(attr, Dnnl.dnnl_scratchpad_mode_user()),
                        "dnnl_primitive_attr_set_scratchpad_mode", context);

                // oneDNN 3.8 has no backward_data with a scale (dnnl_unimplemented), although dx depends on it:
                // that pass runs as a full backward whose scale gradient goes to memory the context owns.
                boolean discardScaleGradient = !pass.forward && !pass.parameterGradients && config.scale();
                boolean shiftFlag = config.shift() && (pass.forward || pass.parameterGradients);
                int flags = (config.scale() ? Dnnl.dnnl_use_scale() : 0) | (shiftFlag ? Dnnl.dnnl_use_shift() : 0)
                        | (pass.globalStatistics ? Dnnl.dnnl_use_global_stats() : 0);
                float eps = (float) config.eps();
                MemorySegment primitiveDesc;
                if (pass.forward) {
                    int propagation = pass == Pass.FORWARD_TRAINING ? Dnnl.dnnl_forward_training() : Dnnl.dnnl_forward_inference();
                    OneDnn.check(Dnnl.dnnl_layer_normalization_forward_primitive_desc_create(out, engine, propagation,
                            data, data, statistics, eps, flags, attr),
                            "dnnl_layer_normalization_forward_primitive_desc_create", context);
                    primitiveDesc = own(out, arena, Dnnl::dnnl_primitive_desc_destroy);
                    descriptors[SRC] = descriptors[DST] = data;
                    if (pass.usesStatistics()) {
                        descriptors[MEAN] = descriptors[VARIANCE] = statistics;
                    }
                    descriptors[SHIFT] = config.shift() ? channels : null;
                } else {
                    // oneDNN wants the matching forward-training primitive descriptor as a hint.
                    OneDnn.check(Dnnl.dnnl_layer_normalization_forward_primitive_desc_create(out, engine,
                            Dnnl.dnnl_forward_training(), data, data, statistics, eps, flags, attr),
                            "dnnl_layer_normalization_forward_primitive_desc_create", context + " (backward hint)");
                    MemorySegment hint = own(out, scratch, Dnnl::dnnl_primitive_desc_destroy);
                    int propagation = pass.parameterGradients || discardScaleGradient ? Dnnl.dnnl_backward()
                            : Dnnl.dnnl_backward_data();
                    OneDnn.check(Dnnl.dnnl_layer_normalization_backward_primitive_desc_create(out, engine, propagation,
                            data, data, data, statistics, eps, flags, hint, attr),
                            "dnnl_layer_normalization_backward_primitive_desc_create", context);
                    primitiveDesc = own(out, arena, Dnnl::dnnl_primitive_desc_destroy);
                    descriptors[SRC] = descriptors[DIFF_DST] = descriptors[DIFF_SRC] = data;
                    descriptors[MEAN] = descriptors[VARIANCE] = statistics;
                    descriptors[DIFF_SCALE] = config.scale() && (pass.parameterGradients || discardScaleGradient) ? channels : null;
                    descriptors[DIFF_SHIFT] = shiftFlag ? channels : null;
                }
                descriptors[SCALE] = config.scale() ? channels : null;
                ownedGradient = discardScaleGradient ? DIFF_SCALE : -1;

                OneDnn.check(Dnnl.dnnl_primitive_desc_query(primitiveDesc, Dnnl.dnnl_query_impl_info_str(), 0, out),
                        "dnnl_primitive_desc_query", context);
                implementation = out.get(ValueLayout.ADDRESS, 0).reinterpret(256).getString(0);
                scratchpadDesc = Dnnl.dnnl_primitive_desc_query_md(primitiveDesc, Dnnl.dnnl_query_scratchpad_md(), 0);
                scratchpadBytes = scratchpadDesc.equals(MemorySegment.NULL) ? 0 : Dnnl.dnnl_memory_desc_get_size(scratchpadDesc);

                OneDnn.check(Dnnl.dnnl_primitive_create(out, primitiveDesc), "dnnl_primitive_create", context);
                primitive = own(out, arena, Dnnl::dnnl_primitive_destroy);
            } catch (RuntimeException e) {
                arena.close();
                throw e;
            }
        }

        private MemorySegment descriptor(MemorySegment out, int rank, MemorySegment dims, int tag, String context) {
            OneDnn.check(Dnnl.dnnl_memory_desc_create_with_tag(out, rank, dims, Dnnl.dnnl_f32(), tag),
                    "dnnl_memory_desc_create_with_tag", context);
            return own(out, arena, Dnnl::dnnl_memory_desc_destroy);
        }

        /** An idle context, or a new one if all are busy. */
        Context context() {
            Context context;
            synchronized (lock) {
                context = idle.poll();
            }
            // A shared arena allocates and registers cleanups thread-safely; the plan is in use, so alive.
            return context != null ? context : new Context(this);
        }

        void free() {
            arena.close();
        }
    }

    /** A stream, memory objects bound to the caller's segments, and the argument array, for one call at a time. */
    private final class Context {
        final Plan plan;
        final MemorySegment stream;
        final MemorySegment[] memory = new MemorySegment[ROLES];
        /** The address each memory object points at, so an unchanged binding costs no native call. */
        final long[] bound = new long[ROLES];
        final MemorySegment args;
        final int argCount;

        Context(Plan plan) {
            this.plan = plan;
            String context = describe(plan.pass, plan.rows);
            Arena arena = plan.arena;
            try (Arena scratch = Arena.ofConfined()) {
                MemorySegment out = scratch.allocate(ValueLayout.ADDRESS);
                OneDnn.check(Dnnl.dnnl_stream_create(out, engine, Dnnl.dnnl_stream_default_flags()),
                        "dnnl_stream_create", context);
                stream = own(out, arena, Dnnl::dnnl_stream_destroy);
                int count = 0;
                for (int role = 0; role < ROLES; role++) {
                    if (plan.descriptors[role] != null) {
                        MemorySegment handle = role == plan.ownedGradient ? Dnnl.DNNL_MEMORY_ALLOCATE() : MemorySegment.NULL;
                        memory[role] = memory(out, plan.descriptors[role], handle, arena, context);
                        count++;
                    }
                }
                MemorySegment scratchpad = plan.scratchpadBytes > 0
                        ? memory(out, plan.scratchpadDesc, Dnnl.DNNL_MEMORY_ALLOCATE(), arena, context) : null;
                argCount = count + (scratchpad != null ? 1 : 0);
                MemorySegment array = dnnl_exec_arg_t.allocateArray(argCount, arena);
                int slot = 0;
                for (int role = 0; role < ROLES; role++) {
                    if (memory[role] != null) {
                        argument(array, slot++, ARGUMENT[role], memory[role]);
                    }
                }
                if (scratchpad != null) {
                    argument(array, slot, Dnnl.DNNL_ARG_SCRATCHPAD(), scratchpad);
                }
                args = MemorySegment.ofAddress(array.address()); // global scope: no liveness check per call
            }
        }

        private MemorySegment memory(MemorySegment out, MemorySegment desc, MemorySegment handle, Arena arena,
                                     String context) {
            OneDnn.check(Dnnl.dnnl_memory_create(out, desc, engine, handle), "dnnl_memory_create", context);
            return own(out, arena, Dnnl::dnnl_memory_destroy);
        }

        private static void argument(MemorySegment array, int index, int kind, MemorySegment memory) {
            MemorySegment slot = dnnl_exec_arg_t.asSlice(array, index);
            dnnl_exec_arg_t.arg(slot, kind);
            dnnl_exec_arg_t.memory(slot, memory);
        }

        /** Points the memory object for {@code role} at {@code tensor}'s segment; nothing if the primitive does not take it. */
        void bind(int role, Tensor tensor) {
            MemorySegment target = memory[role];
            if (target == null || tensor == null) {
                return;
            }
            MemorySegment segment = tensor.segment();
            long address = segment.address();
            if (address != bound[role]) {
                int status = Dnnl.dnnl_memory_set_data_handle(target, segment);
                if (status != Dnnl.dnnl_success()) {
                    OneDnn.check(status, "dnnl_memory_set_data_handle", describe(plan.pass, plan.rows));
                }
                bound[role] = address;
            }
        }

        void execute() {
            int status = Dnnl.dnnl_primitive_execute(plan.primitive, stream, argCount, args);
            if (status == Dnnl.dnnl_success()) {
                status = Dnnl.dnnl_stream_wait(stream);
            }
            if (status != Dnnl.dnnl_success()) {
                java.util.Arrays.fill(bound, 0); // re-bind everything next time
                OneDnn.check(status, "dnnl_primitive_execute", describe(plan.pass, plan.rows));
            }
        }
    }
}
