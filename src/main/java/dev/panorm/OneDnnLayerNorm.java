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
 * The oneDNN backend: one forward-inference primitive per row count, built on first use and
 * cached. A call binds the caller's segments to the primitive's memory objects and executes it;
 * nothing is allocated on that path.
 *
 * <p>Thread safety: streams and memory objects belong to an execution {@link Context}, and a
 * context serves one call at a time, so concurrent calls each take their own from the plan's pool
 * (creating one if all are busy). Plans beyond {@link #MAX_PLANS} row counts are evicted least
 * recently used first, and freed when their last call returns.
 */
final class OneDnnLayerNorm implements LayerNormKernel {
    /** Row counts whose primitives are kept; each holds a little JIT code and a few descriptors. */
    static final int MAX_PLANS = 64;

    private final LayerNormConfig config;
    private final MemorySegment engine;
    private final int flags;

    private final Object lock = new Object();
    private final List<Plan> plans = new ArrayList<>(); // guarded by lock
    private long clock;                                 // guarded by lock

    OneDnnLayerNorm(LayerNormConfig config) {
        this.config = config;
        this.engine = OneDnn.runtime().engine();
        this.flags = (config.scale() ? Dnnl.dnnl_use_scale() : 0) | (config.shift() ? Dnnl.dnnl_use_shift() : 0)
                | Dnnl.dnnl_normalization_flags_none();
    }

    @Override
    public void forward(Tensor src, Tensor dst, Tensor scale, Tensor shift, long rows) {
        Plan plan;
        Context context;
        synchronized (lock) {
            plan = planFor(rows);
            plan.users++;
            context = plan.idle.poll();
        }
        try {
            if (context == null) {
                context = plan.newContext();
            }
            context.execute(src, dst, scale, shift);
        } finally {
            synchronized (lock) {
                if (context != null) {
                    plan.idle.push(context);
                }
                if (--plan.users == 0 && plan.evicted) {
                    plan.free();
                }
            }
        }
    }

    @Override
    public String implementation(long rows) {
        synchronized (lock) {
            return planFor(rows).implementation;
        }
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

    /** The plan for {@code rows}, created if needed; marks it most recently used. Holds {@code lock}. */
    private Plan planFor(long rows) {
        Plan found = null;
        for (Plan plan : plans) {
            if (plan.rows == rows) {
                found = plan;
                break;
            }
        }
        if (found == null) {
            if (plans.size() >= MAX_PLANS) {
                evictLeastRecentlyUsed();
            }
            found = new Plan(rows);
            plans.add(found);
        }
        found.lastUsed = ++clock;
        return found;
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

    private String describe(long rows) {
        return "layer normalization forward inference of F32[" + rows + ", " + config.normalizedSize() + "], eps "
                + (float) config.eps() + ", scale " + config.scale() + ", shift " + config.shift();
    }

    /** Reads the handle a {@code dnnl_*_create} call wrote and ties its destruction to {@code arena}. */
    private static MemorySegment own(MemorySegment out, Arena arena, Consumer<MemorySegment> destroy) {
        MemorySegment handle = out.get(ValueLayout.ADDRESS, 0);
        handle.reinterpret(arena, destroy);
        // The plain handle has global scope, so passing it to a downcall costs no liveness check;
        // the plan's reference counting is what keeps it alive.
        return handle;
    }

    /** The primitive for one row count, and the pool of contexts that execute it. */
    private final class Plan {
        final long rows;
        final Arena arena = Arena.ofShared();
        final MemorySegment dataDesc;
        final MemorySegment channelDesc;
        final MemorySegment scratchpadDesc;
        final long scratchpadBytes;
        final MemorySegment primitive;
        final String implementation;
        final ArrayDeque<Context> idle = new ArrayDeque<>();
        int users;       // guarded by lock
        boolean evicted; // guarded by lock
        long lastUsed;   // guarded by lock

        Plan(long rows) {
            this.rows = rows;
            String context = describe(rows);
            try (Arena scratch = Arena.ofConfined()) {
                MemorySegment out = scratch.allocate(ValueLayout.ADDRESS);
                MemorySegment dims = scratch.allocateFrom(ValueLayout.JAVA_LONG, rows, config.normalizedSize());
                OneDnn.check(Dnnl.dnnl_memory_desc_create_with_tag(out, 2, dims, Dnnl.dnnl_f32(), Dnnl.dnnl_ab()),
                        "dnnl_memory_desc_create_with_tag", context);
                dataDesc = own(out, arena, Dnnl::dnnl_memory_desc_destroy);
                OneDnn.check(Dnnl.dnnl_memory_desc_create_with_tag(out, 1, dims.asSlice(8), Dnnl.dnnl_f32(), Dnnl.dnnl_a()),
                        "dnnl_memory_desc_create_with_tag", context);
                channelDesc = own(out, arena, Dnnl::dnnl_memory_desc_destroy);

                OneDnn.check(Dnnl.dnnl_primitive_attr_create(out), "dnnl_primitive_attr_create", context);
                MemorySegment attr = own(out, scratch, Dnnl::dnnl_primitive_attr_destroy);
                // User-managed scratchpad: each context owns its own, so concurrent calls never share one.
                OneDnn.check(Dnnl.dnnl_primitive_attr_set_scratchpad_mode(attr, Dnnl.dnnl_scratchpad_mode_user()),
                        "dnnl_primitive_attr_set_scratchpad_mode", context);

                OneDnn.check(Dnnl.dnnl_layer_normalization_forward_primitive_desc_create(out, engine,
                                Dnnl.dnnl_forward_inference(), dataDesc, dataDesc, MemorySegment.NULL,
                                (float) config.eps(), flags, attr),
                        "dnnl_layer_normalization_forward_primitive_desc_create", context);
                MemorySegment primitiveDesc = own(out, arena, Dnnl::dnnl_primitive_desc_destroy);

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

        Context newContext() {
            return new Context(this); // a shared arena allocates and registers cleanups thread-safely
        }

        void free() {
            arena.close();
        }
    }

    /** A stream, memory objects bound to the caller's segments, and the argument array for one call at a time. */
    private final class Context {
        final Plan plan;
        final MemorySegment stream;
        final MemorySegment src;
        final MemorySegment dst;
        final MemorySegment scale;
        final MemorySegment shift;
        final MemorySegment args;
        final int argCount;
        // The addresses the memory objects point at, so an unchanged binding costs no native call.
        long srcAddress;
        long dstAddress;
        long scaleAddress;
        long shiftAddress;

        Context(Plan plan) {
            this.plan = plan;
            String context = describe(plan.rows);
            Arena arena = plan.arena;
            try (Arena scratch = Arena.ofConfined()) {
                MemorySegment out = scratch.allocate(ValueLayout.ADDRESS);
                OneDnn.check(Dnnl.dnnl_stream_create(out, engine, Dnnl.dnnl_stream_default_flags()),
                        "dnnl_stream_create", context);
                stream = own(out, arena, Dnnl::dnnl_stream_destroy);
                src = memory(out, plan.dataDesc, MemorySegment.NULL, arena, context);
                dst = memory(out, plan.dataDesc, MemorySegment.NULL, arena, context);
                scale = config.scale() ? memory(out, plan.channelDesc, MemorySegment.NULL, arena, context) : null;
                shift = config.shift() ? memory(out, plan.channelDesc, MemorySegment.NULL, arena, context) : null;
                MemorySegment scratchpad = plan.scratchpadBytes > 0
                        ? memory(out, plan.scratchpadDesc, Dnnl.DNNL_MEMORY_ALLOCATE(), arena, context) : null;

                argCount = 2 + (scale != null ? 1 : 0) + (shift != null ? 1 : 0) + (scratchpad != null ? 1 : 0);
                MemorySegment array = dnnl_exec_arg_t.allocateArray(argCount, arena);
                int i = 0;
                i = arg(array, i, Dnnl.DNNL_ARG_SRC(), src);
                i = arg(array, i, Dnnl.DNNL_ARG_DST(), dst);
                i = arg(array, i, Dnnl.DNNL_ARG_SCALE(), scale);
                i = arg(array, i, Dnnl.DNNL_ARG_SHIFT(), shift);
                arg(array, i, Dnnl.DNNL_ARG_SCRATCHPAD(), scratchpad);
                args = MemorySegment.ofAddress(array.address()); // global scope: no liveness check per call
            }
        }

        private static MemorySegment memory(MemorySegment out, MemorySegment desc, MemorySegment handle, Arena arena,
                                            String context) {
            OneDnn.check(Dnnl.dnnl_memory_create(out, desc, OneDnn.runtime().engine(), handle), "dnnl_memory_create",
                    context);
            return own(out, arena, Dnnl::dnnl_memory_destroy);
        }

        private static int arg(MemorySegment array, int index, int kind, MemorySegment memory) {
            if (memory == null) {
                return index;
            }
            MemorySegment slot = dnnl_exec_arg_t.asSlice(array, index);
            dnnl_exec_arg_t.arg(slot, kind);
            dnnl_exec_arg_t.memory(slot, memory);
            return index + 1;
        }

        void execute(Tensor srcTensor, Tensor dstTensor, Tensor scaleTensor, Tensor shiftTensor) {
            srcAddress = bind(src, srcTensor, srcAddress);
            dstAddress = bind(dst, dstTensor, dstAddress);
            if (scale != null) {
                scaleAddress = bind(scale, scaleTensor, scaleAddress);
            }
            if (shift != null) {
                shiftAddress = bind(shift, shiftTensor, shiftAddress);
            }
            int status = Dnnl.dnnl_primitive_execute(plan.primitive, stream, argCount, args);
            if (status == Dnnl.dnnl_success()) {
                status = Dnnl.dnnl_stream_wait(stream);
            }
            if (status != Dnnl.dnnl_success()) {
                // The memory objects may still point at the caller's segments: forget the bindings.
                srcAddress = dstAddress = scaleAddress = shiftAddress = 0;
                OneDnn.check(status, "dnnl_primitive_execute", describe(plan.rows));
            }
        }

        private long bind(MemorySegment memory, Tensor tensor, long bound) {
            MemorySegment segment = tensor.segment();
            long address = segment.address();
            if (address != bound) {
                int status = Dnnl.dnnl_memory_set_data_handle(memory, segment);
                if (status != Dnnl.dnnl_success()) {
                    OneDnn.check(status, "dnnl_memory_set_data_handle", describe(plan.rows));
                }
            }
            return address;
        }
    }
}
