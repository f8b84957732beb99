package dev.panorm;

import dev.panorm.internal.dnnl.Dnnl;
import dev.panorm.internal.dnnl.dnnl_exec_arg_t;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.ref.WeakReference;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.Consumer;

/**
 * What oneDNN runs for one call signature (pass, and the data type, shape and strides of every
 * tensor): one or more primitives, with a little per-row glue in Java between them.
 *
 * <ul>
 *   <li>Layer normalization: one layer-normalization primitive.</li>
 *   <li>Precise statistics: panorm computes each row's mean and variance in double; oneDNN normalizes
 *       with them as global statistics (the mean rounded to float, no scale or shift), then a binary
 *       primitive adds back, per row, the part of the mean that float could not hold, with the scale
 *       and shift as its post-ops.</li>
 *   <li>RMS forward: panorm computes each row's mean square (one pass, in double), then oneDNN
 *       normalizes with zero mean and the mean square as global statistics. (oneDNN's own route to the
 *       mean square, a p-norm reduction, has only a reference implementation in 3.8.1, far slower than
 *       this whole pass.)</li>
 *   <li>RMS backward: layer-normalization backward with zero mean gives the RMS gradient minus
 *       {@code rstd * mean(dy * gamma)}; a matmul (or reduction) computes {@code sum(dy * gamma)} per
 *       row and a binary primitive adds the missing term.</li>
 *   <li>Residual add ({@link #residualAdd}), the first half of the fused operations on oneDNN: one binary
 *       primitive, {@code dst = src + diff_dst}, plus {@code shift} per channel as a post-op when given. The
 *       roles carry the addends because a plan binds tensors by role: src and diff_dst are the two
 *       addends, shift the bias, dst the sum.</li>
 * </ul>
 *
 * <p>Each of these builds its own steps; Java work a step needs first (the statistics, the RMS row
 * term) belongs to that step and runs just before it.
 *
 * <p>A signature oneDNN cannot take (a layout it cannot describe, or {@code dnnl_unimplemented})
 * throws {@link Unsupported} from the constructor; the caller then falls back to the Java backend.
 */
final class OneDnnPlan {
    /** The call signature or configuration cannot run on oneDNN; the message says why. */
    static final class Unsupported extends Exception {
        private static final long serialVersionUID = 1L;

        Unsupported(String reason) {
            super(reason, null, false, false);
        }
    }

    /**
     * Java work a step needs done just before it runs, given the call's src and statistics (null where
     * absent) and the context's own buffers.
     */
    @FunctionalInterface
    private interface Glue {
        void run(Context context, Tensor src, Tensor mean, Tensor variance);
    }

    /**
     * One primitive, with per argument the role bound to it, and the Java work it needs first (or null).
     */
    private record Step(
            MemorySegment primitive,
            Role[] roles,
            int[] arguments,
            MemorySegment[] descriptors,
            MemorySegment scratchpadDesc,
            long scratchpadBytes,
            Glue before) {}

    final Pass pass;
    final long rows;
    /** Whether this is a residual-add plan, not a normalization. */
    private final boolean residualAdd;

    final CallSignature signature;
    final String implementation;
    /**
     * Whether a call is short enough for critical downcalls ({@link OneDnnExecute}): decided once, not per call and
     * step.
     */
    private final boolean shortCalls;

    private final LayerNormConfig config;
    private final MemorySegment engine;
    /** Computes the statistics that precise and RMS forward plans take from Java. */
    private final ScalarKernel scalar;

    private final PlanMemory nativeMemory = new PlanMemory();
    private final List<Step> steps = new ArrayList<>();
    private final ArrayDeque<Context> idle = new ArrayDeque<>(); // guarded by the owner's lock
    private final List<Context> contexts = new ArrayList<>(); // every one made; guarded by the owner's lock
    /** Set when the owner drops the plan from its cache; its memory is freed once the calls that might use it end. */
    volatile boolean retired;
    /**
     * Whether a call used the plan since {@link PlanCache}'s eviction sweep last passed it (a plan's first
     * call does not count, so plans used once go first): set by calls, only when clear, and cleared by the
     * sweep. Plain, so approximate, which a second chance can afford.
     */
    boolean referenced;

    /**
     * Builds the primitives for {@code call}'s signature.
     *
     * @throws Unsupported if oneDNN cannot run this signature
     */
    OneDnnPlan(LayerNormConfig config, MemorySegment engine, ScalarKernel scalar, CallSignature signature, Call call)
            throws Unsupported {
        this(config, engine, scalar, signature, call, false);
    }

    /**
     * Builds the residual add {@code dst = (src + diffDst) + shift} for {@code call}'s signature (the roles as the
     * class comment says).
     *
     * @throws Unsupported if oneDNN cannot run it
     */
    static OneDnnPlan residualAdd(LayerNormConfig config, MemorySegment engine, CallSignature signature, Call call)
            throws Unsupported {
        return new OneDnnPlan(config, engine, null, signature, call, true);
    }

    private OneDnnPlan(
            LayerNormConfig config,
            MemorySegment engine,
            ScalarKernel scalar,
            CallSignature signature,
            Call call,
            boolean residualAdd)
            throws Unsupported {
        this.config = config;
        this.residualAdd = residualAdd;
        this.engine = engine;
        this.scalar = scalar;
        this.pass = signature.pass;
        this.rows = call.rows();
        this.shortCalls = rows * config.normalizedSize() < OneDnnExecute.SHORT_BELOW;
        this.signature = signature;
        try (Arena scratch = Arena.ofConfined()) {
            Builder builder = new Builder(scratch, Geometry.of(config, call), call);
            if (residualAdd) {
                implementation = builder.residualAdd();
            } else if (config.rms()) {
                implementation = pass.forward ? builder.rmsForward() : builder.rmsBackward();
            } else {
                implementation = computesStatistics(config, pass) && (config.preciseStatistics() || longRows(config))
                        ? builder.precise()
                        : builder.layer();
            }
        } catch (Unsupported | RuntimeException e) {
            nativeMemory.close();
            throw e;
        }
    }

    /**
     * Rows longer than this get their statistics from Java in double, as with precise statistics: oneDNN sums them
     * in float32, with an error that grows with the row's length. A forward pass on one row of N(0, 1) values stayed
     * within docs/accuracy.md's bound up to 2^19 elements (0.37 of it) and exceeded it beyond: 1.10 at 2^20, 2.68 at
     * 2^21, 7.40 at 2^22 (with given statistics, or the Java kernels: 0.15 to 0.25).
     */
    static final long FLOAT_STATISTICS_UP_TO = 1 << 19;

    /** Whether oneDNN's statistics would exceed the accuracy bound on {@code config}'s rows. */
    static boolean longRows(LayerNormConfig config) {
        return config.normalizedSize() > FLOAT_STATISTICS_UP_TO;
    }

    /** Whether {@code pass} computes layer normalization's statistics (RMS's come from Java in any case). */
    private static boolean computesStatistics(LayerNormConfig config, Pass pass) {
        return !config.rms() && pass.forward && !pass.globalStatistics;
    }

    /**
     * A context for the calling thread to keep: an idle one, else one whose thread has ended, else a new
     * one. Threads keep contexts without returning them, so without the second choice a long-lived
     * operation called from short-lived threads (virtual threads, a cached pool) would grow one context
     * per thread for ever. The caller holds the owner's lock.
     */
    Context lend() {
        Context context = idle.poll();
        if (context == null) { // every context is held by a thread: take one whose thread has ended
            for (Context candidate : contexts) {
                Thread holder = candidate.holder.get();
                if (holder == null || !holder.isAlive()) {
                    context = candidate; // an ended thread cannot be using it
                    break;
                }
            }
        }
        if (context == null) {
            // PlanMemory allocates and registers handles thread-safely; the plan is in use, so alive.
            context = new Context();
            contexts.add(context);
        }
        context.holder = new WeakReference<>(Thread.currentThread());
        context.openMpThreads = OpenMp.threadsSetOnCallingThread();
        return context;
    }

    /** Returns a context for reuse; the caller holds the owner's lock. */
    void release(Context context) {
        idle.push(context);
    }

    /** How many contexts this plan has made (for leak tests); the caller holds the owner's lock. */
    int contexts() {
        return contexts.size();
    }

    void free() {
        nativeMemory.close();
    }

    /**
     * Throws {@link OneDnnException} if {@code status} is a failure, describing the plan only then: a new
     * shape's plan checks a dozen calls, in code the JIT has not compiled yet.
     */
    private void check(int status, String call) {
        if (status != Dnnl.dnnl_success()) {
            OneDnn.check(status, call, describe());
        }
    }

    String describe() {
        if (residualAdd) {
            return "residual add (src + diff_dst + shift)" + signature.describeTensors() + ", " + signature.threads
                    + (signature.threads == 1 ? " thread" : " threads");
        }
        return (config.rms() ? "RMS normalization " : "layer normalization ")
                + pass.name().toLowerCase(Locale.ROOT).replace('_', ' ') + signature.describeTensors() + ", eps "
                + (float) config.eps() + ", " + signature.threads + (signature.threads == 1 ? " thread" : " threads");
    }

    /**
     * Reads the handle a {@code dnnl_*_create} call wrote and ties its destruction to the plan's: the handle has global
     * scope, so passing it to a downcall costs no liveness check; the owner frees the plan only once no call can be
     * using it (CallCounter), which is what keeps it alive.
     */
    private MemorySegment own(MemorySegment out, Consumer<MemorySegment> destroy) {
        return nativeMemory.own(out.get(ValueLayout.ADDRESS, 0), destroy);
    }

    /** As above, destroyed when {@code owner}, an arena of the plan's build, closes. */
    private static MemorySegment own(MemorySegment out, Arena owner, Consumer<MemorySegment> destroy) {
        MemorySegment handle = out.get(ValueLayout.ADDRESS, 0);
        handle.reinterpret(owner, destroy);
        return handle;
    }

    private static int dnnlType(DataType type) {
        return switch (type) {
            case F32 -> Dnnl.dnnl_f32();
            case BF16 -> Dnnl.dnnl_bf16();
            case F16 -> Dnnl.dnnl_f16();
            case S8 -> throw new IllegalArgumentException("no oneDNN plan takes S8"); // CallChecks rejects it
        };
    }

    /** RMS backward's row term: {@code term[row] = rstd * sum(dy * gamma) / C}, in place over the row sums. */
    private void rmsRowTerm(MemorySegment sums, Tensor variance) {
        double c = config.normalizedSize();
        float eps = (float) config.eps();
        for (long row = 0; row < rows; row++) {
            float var = variance.segment().getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, row);
            double rstd = 1 / Math.sqrt(var + eps);
            sums.setAtIndex(
                    ValueLayout.JAVA_FLOAT, row, (float) (rstd * sums.getAtIndex(ValueLayout.JAVA_FLOAT, row) / c));
        }
    }

    /**
     * How the call's tensors map to oneDNN dimensions: {@code [rows, C]}. Only C-contiguous data goes
     * to oneDNN: its JIT layer normalization (3.8.1) checks just that the last stride is 1 and then
     * walks the rows as if they were dense ({@code N * C_padded} in {@code jit_uni_layer_normalization.cpp}),
     * so padded rows or column windows would silently give wrong results. Those run in Java.
     */
    private record Geometry(long rows, long c) {
        static Geometry of(LayerNormConfig config, Call call) throws Unsupported {
            for (Role role : new Role[] {Role.SRC, Role.DST, Role.DIFF_DST, Role.DIFF_SRC}) {
                Tensor tensor = call.tensor(role);
                if (tensor != null && !tensor.isContiguous()) {
                    throw new Unsupported(
                            "oneDNN's layer normalization takes only C-contiguous data, and " + tensor + " is strided");
                }
            }
            return new Geometry(call.rows(), config.normalizedSize());
        }

        long[] dataDims() {
            return new long[] {rows, c};
        }

        long[] rowDims() {
            return new long[] {rows};
        }

        /** A per-row value broadcast against data. */
        long[] rowColumnDims() {
            return new long[] {rows, 1};
        }

        /** A per-channel value broadcast against data. */
        long[] channelRowDims() {
            return new long[] {1, c};
        }
    }

    /** A step's arguments as they are gathered: per argument, its role, oneDNN's argument kind and descriptor. */
    private static final class Arguments {
        final List<Role> roles = new ArrayList<>();
        final List<Integer> kinds = new ArrayList<>();
        final List<MemorySegment> descriptors = new ArrayList<>();

        Arguments add(Role role, int kind, MemorySegment descriptor) {
            roles.add(role);
            kinds.add(kind);
            descriptors.add(descriptor);
            return this;
        }
    }

    /** Creates the descriptors and primitives; each strategy's method returns the implementation's name. */
    private final class Builder {
        private final Arena scratch;
        private final Geometry geometry;
        private final Call call;
        private final MemorySegment out;

        Builder(Arena scratch, Geometry geometry, Call call) {
            this.scratch = scratch;
            this.geometry = geometry;
            this.call = call;
            this.out = scratch.allocate(ValueLayout.ADDRESS);
        }

        /** Plain layer normalization: one primitive. */
        String layer() throws Unsupported {
            return layerNormalization(
                    pass,
                    true,
                    given(Role.MEAN, Role.OWN_MEAN),
                    given(Role.VARIANCE, Role.OWN_VARIANCE),
                    pass.forward ? Role.DST : Role.DIFF_SRC,
                    null);
        }

        /** Statistics in Java, normalization with them, then the row correction with scale and shift. */
        String precise() throws Unsupported {
            Role mean = given(Role.MEAN, Role.OWN_MEAN);
            Role variance = given(Role.VARIANCE, Role.OWN_VARIANCE);
            Role normalized = intermediate(Role.DST);
            Glue statistics = (context, src, givenMean, givenVariance) -> scalar.preciseStatistics(
                    src,
                    rows,
                    context.segment(givenMean, Role.OWN_MEAN),
                    context.segment(givenVariance, Role.OWN_VARIANCE),
                    context.buffer(Role.ROW_TERM));
            return "java:statistics + "
                    + layerNormalization(Pass.FORWARD_GLOBAL, false, mean, variance, normalized, statistics) + " + "
                    + addRowTerm(normalized, Role.DST, config.scale() || config.shift(), null);
        }

        /** The mean square in Java (unless given), then normalization with zero mean. */
        String rmsForward() throws Unsupported {
            Role variance = given(Role.VARIANCE, Role.OWN_VARIANCE);
            if (pass.globalStatistics) {
                return layerNormalization(Pass.FORWARD_GLOBAL, true, Role.ZERO_MEAN, variance, Role.DST, null);
            }
            Glue meanSquare = (context, src, mean, givenVariance) ->
                    scalar.statistics(src, rows, null, context.segment(givenVariance, Role.OWN_VARIANCE));
            return "java:mean-square + "
                    + layerNormalization(Pass.FORWARD_GLOBAL, true, Role.ZERO_MEAN, variance, Role.DST, meanSquare);
        }

        /** The row sums, layer-normalization backward with zero mean, then the row term it left out. */
        String rmsBackward() throws Unsupported {
            if (pass.globalStatistics) {
                return layerNormalization(pass, true, Role.ZERO_MEAN, Role.VARIANCE, Role.DIFF_SRC, null);
            }
            // The row sums read diffDst first: in place, the layer-normalization step overwrites it.
            String dot = rowDot();
            Role normalized = intermediate(Role.DIFF_SRC);
            String layer = layerNormalization(pass, true, Role.ZERO_MEAN, Role.VARIANCE, normalized, null);
            Glue rowTerm = (context, src, mean, variance) -> rmsRowTerm(context.buffer(Role.ROW_TERM), variance);
            return dot + " + " + layer + " + " + addRowTerm(normalized, Role.DIFF_SRC, false, rowTerm);
        }

        /** {@code dst = (src + diff_dst) + shift}: one binary primitive, the bias broadcast per channel as a post-op. */
        String residualAdd() throws Unsupported {
            return binaryAdd(Role.SRC, Role.DIFF_DST, data(Role.DIFF_DST), Role.DST, false, call.shift() != null, null);
        }

        /** {@code role} if the caller passes that tensor, else the plan's own buffer {@code own}. */
        private Role given(Role role, Role own) {
            return call.tensor(role) != null ? role : own;
        }

        private MemorySegment descriptor(DataType type, long[] dims, long[] strides) {
            check(
                    Dnnl.dnnl_memory_desc_create_with_strides(
                            out,
                            dims.length,
                            scratch.allocateFrom(ValueLayout.JAVA_LONG, dims),
                            dnnlType(type),
                            scratch.allocateFrom(ValueLayout.JAVA_LONG, strides)),
                    "dnnl_memory_desc_create_with_strides");
            return own(out, Dnnl::dnnl_memory_desc_destroy);
        }

        private MemorySegment dense(DataType type, long[] dims) {
            long[] strides = new long[dims.length];
            long stride = 1;
            for (int i = dims.length - 1; i >= 0; i--) {
                strides[i] = stride;
                stride *= dims[i];
            }
            return descriptor(type, dims, strides);
        }

        private MemorySegment data(Role role) {
            return dense(
                    role == Role.NORMALIZED ? DataType.F32 : call.tensor(role).dataType(), geometry.dataDims());
        }

        /**
         * Where a composed pass's first step writes its result: the output itself when it is float32, else a
         * float32 buffer, so that the output is rounded to its type once, by the last step, and not twice.
         */
        private Role intermediate(Role output) {
            return call.tensor(output).dataType() == DataType.F32 ? output : Role.NORMALIZED;
        }

        private MemorySegment userScratchpadAttr() {
            check(Dnnl.dnnl_primitive_attr_create(out), "dnnl_primitive_attr_create");
            MemorySegment attr = own(out, scratch, Dnnl::dnnl_primitive_attr_destroy);
            // User-managed scratchpad: each context owns its own, so concurrent calls never share one.
            check(
                    Dnnl.dnnl_primitive_attr_set_scratchpad_mode(attr, Dnnl.dnnl_scratchpad_mode_user()),
                    "dnnl_primitive_attr_set_scratchpad_mode");
            return attr;
        }

        /**
         * Any failure to create a primitive descriptor means oneDNN cannot run this configuration (usually
         * {@code dnnl_unimplemented}; {@code dnnl_invalid_arguments} for shapes it refuses, such as a
         * reduction over a single element): {@link Unsupported}, so Java runs it instead.
         */
        private MemorySegment primitiveDesc(int status, String function) throws Unsupported {
            checkDesc(status, function);
            return own(out, Dnnl::dnnl_primitive_desc_destroy);
        }

        /** As above, the descriptor freed with {@code owner}: a hint the plan needs only while it is built. */
        private MemorySegment primitiveDesc(int status, String function, Arena owner) throws Unsupported {
            checkDesc(status, function);
            return own(out, owner, Dnnl::dnnl_primitive_desc_destroy);
        }

        private void checkDesc(int status, String function) throws Unsupported {
            if (status != Dnnl.dnnl_success()) {
                throw new Unsupported(
                        function + " returned " + OneDnnStatus.of(status).nativeName() + " for " + describe());
            }
        }

        /**
         * Records a primitive with its arguments and the Java work it needs first (or null). oneDNN's
         * reference implementations ({@code ref:*}) are refused: slower than panorm's scalar Java kernel, and
         * less accurate (sequential float sums) than the bound the tests hold oneDNN to ({@code docs/data-types.md}).
         */
        private String add(MemorySegment primitiveDesc, Arguments arguments, Glue before) throws Unsupported {
            check(
                    Dnnl.dnnl_primitive_desc_query(primitiveDesc, Dnnl.dnnl_query_impl_info_str(), 0, out),
                    "dnnl_primitive_desc_query");
            String name = out.get(ValueLayout.ADDRESS, 0).reinterpret(256).getString(0);
            if (name.startsWith("ref")) {
                throw new Unsupported("oneDNN offers only its slow reference code, " + name + ", here");
            }
            MemorySegment scratchpad =
                    Dnnl.dnnl_primitive_desc_query_md(primitiveDesc, Dnnl.dnnl_query_scratchpad_md(), 0);
            long scratchpadBytes =
                    scratchpad.equals(MemorySegment.NULL) ? 0 : Dnnl.dnnl_memory_desc_get_size(scratchpad);
            check(Dnnl.dnnl_primitive_create(out, primitiveDesc), "dnnl_primitive_create");
            steps.add(new Step(
                    own(out, Dnnl::dnnl_primitive_destroy),
                    arguments.roles.toArray(Role[]::new),
                    arguments.kinds.stream().mapToInt(Integer::intValue).toArray(),
                    arguments.descriptors.toArray(MemorySegment[]::new),
                    scratchpad,
                    scratchpadBytes,
                    before));
            return name;
        }

        /**
         * A layer-normalization primitive for {@code layerPass}, applying the configured scale and shift
         * if {@code affine}, with its mean, variance and output (dst or diff_src) bound to the given roles.
         */
        private String layerNormalization(
                Pass layerPass, boolean affine, Role meanRole, Role varianceRole, Role outputRole, Glue before)
                throws Unsupported {
            boolean scale = config.scale() && affine;
            boolean shift = config.shift() && affine && (layerPass.forward || layerPass.parameterGradients);
            // oneDNN 3.8 has no backward_data with a scale (dnnl_unimplemented), although dx depends on it:
            // that pass runs as a full backward whose scale gradient goes to memory the context owns.
            boolean discardScaleGradient = !layerPass.forward && !layerPass.parameterGradients && scale;
            int flags = (scale ? Dnnl.dnnl_use_scale() : 0)
                    | (shift ? Dnnl.dnnl_use_shift() : 0)
                    | (layerPass.globalStatistics ? Dnnl.dnnl_use_global_stats() : 0);
            DataType parameterType = parameterType(Role.SCALE, Role.SHIFT);
            DataType diffParameterType = parameterType(Role.DIFF_SCALE, Role.DIFF_SHIFT);
            MemorySegment statisticsDesc = dense(DataType.F32, geometry.rowDims());
            MemorySegment channels = dense(parameterType, new long[] {geometry.c()});
            float eps = (float) config.eps();
            MemorySegment attr = userScratchpadAttr();
            Arguments arguments = new Arguments();
            MemorySegment src = data(Role.SRC);
            MemorySegment output = data(outputRole);
            if (layerPass.forward) {
                MemorySegment desc = primitiveDesc(
                        Dnnl.dnnl_layer_normalization_forward_primitive_desc_create_v2(
                                out,
                                engine,
                                layerPass == Pass.FORWARD_TRAINING
                                        ? Dnnl.dnnl_forward_training()
                                        : Dnnl.dnnl_forward_inference(),
                                src,
                                output,
                                statisticsDesc,
                                dnnlType(parameterType),
                                eps,
                                flags,
                                attr),
                        "dnnl_layer_normalization_forward_primitive_desc_create_v2");
                arguments.add(Role.SRC, Dnnl.DNNL_ARG_SRC(), src).add(outputRole, Dnnl.DNNL_ARG_DST(), output);
                if (layerPass.usesStatistics()) {
                    arguments
                            .add(meanRole, Dnnl.DNNL_ARG_MEAN(), statisticsDesc)
                            .add(varianceRole, Dnnl.DNNL_ARG_VARIANCE(), statisticsDesc);
                }
                if (scale) {
                    arguments.add(Role.SCALE, Dnnl.DNNL_ARG_SCALE(), channels);
                }
                if (shift) {
                    arguments.add(Role.SHIFT, Dnnl.DNNL_ARG_SHIFT(), channels);
                }
                return add(desc, arguments, before);
            }
            MemorySegment diffDst = data(Role.DIFF_DST);
            // On CPUs without native float16 (AMD Zen 5) oneDNN has no forward training for f16, not even as a hint.
            MemorySegment hint = primitiveDesc(
                    Dnnl.dnnl_layer_normalization_forward_primitive_desc_create_v2(
                            out,
                            engine,
                            Dnnl.dnnl_forward_training(),
                            src,
                            src,
                            statisticsDesc,
                            dnnlType(parameterType),
                            eps,
                            flags,
                            attr),
                    "dnnl_layer_normalization_forward_primitive_desc_create_v2 (backward hint)",
                    scratch);
            // Without scale and shift there are no parameter gradients, and oneDNN takes only backward_data.
            int propagation = layerPass.parameterGradients && (scale || shift) || discardScaleGradient
                    ? Dnnl.dnnl_backward()
                    : Dnnl.dnnl_backward_data();
            MemorySegment desc = primitiveDesc(
                    Dnnl.dnnl_layer_normalization_backward_primitive_desc_create_v2(
                            out,
                            engine,
                            propagation,
                            output,
                            diffDst,
                            src,
                            statisticsDesc,
                            dnnlType(diffParameterType),
                            dnnlType(parameterType),
                            eps,
                            flags,
                            hint,
                            attr),
                    "dnnl_layer_normalization_backward_primitive_desc_create_v2");
            arguments
                    .add(Role.SRC, Dnnl.DNNL_ARG_SRC(), src)
                    .add(Role.DIFF_DST, Dnnl.DNNL_ARG_DIFF_DST(), diffDst)
                    .add(outputRole, Dnnl.DNNL_ARG_DIFF_SRC(), output)
                    .add(meanRole, Dnnl.DNNL_ARG_MEAN(), statisticsDesc)
                    .add(varianceRole, Dnnl.DNNL_ARG_VARIANCE(), statisticsDesc);
            MemorySegment diffChannels = dense(diffParameterType, new long[] {geometry.c()});
            if (scale) {
                arguments
                        .add(Role.SCALE, Dnnl.DNNL_ARG_SCALE(), channels)
                        .add(
                                discardScaleGradient ? Role.DISCARDED : Role.DIFF_SCALE,
                                Dnnl.DNNL_ARG_DIFF_SCALE(),
                                diffChannels);
            }
            if (shift) {
                arguments.add(Role.DIFF_SHIFT, Dnnl.DNNL_ARG_DIFF_SHIFT(), diffChannels);
            }
            return add(desc, arguments, before);
        }

        /** RMS backward: sum(dy * gamma) per row (or sum(dy) without a scale) into the row term. */
        private String rowDot() throws Unsupported {
            MemorySegment diffDst = data(Role.DIFF_DST);
            MemorySegment sums = dense(DataType.F32, geometry.rowColumnDims());
            Arguments arguments = new Arguments().add(Role.DIFF_DST, Dnnl.DNNL_ARG_SRC(), diffDst);
            if (!config.scale()) {
                MemorySegment desc = primitiveDesc(
                        Dnnl.dnnl_reduction_primitive_desc_create(
                                out, engine, Dnnl.dnnl_reduction_sum(), diffDst, sums, 0f, 0f, userScratchpadAttr()),
                        "dnnl_reduction_primitive_desc_create");
                return add(desc, arguments.add(Role.ROW_TERM, Dnnl.DNNL_ARG_DST(), sums), null);
            }
            // sum_c dy[r, c] * gamma[c]: a matmul of dy [..., C] with gamma as a [C, 1] weight.
            MemorySegment weights = dense(call.scale().dataType(), new long[] {geometry.c(), 1});
            MemorySegment desc = primitiveDesc(
                    Dnnl.dnnl_matmul_primitive_desc_create(
                            out, engine, diffDst, weights, MemorySegment.NULL, sums, userScratchpadAttr()),
                    "dnnl_matmul_primitive_desc_create");
            return add(
                    desc,
                    arguments
                            .add(Role.SCALE, Dnnl.DNNL_ARG_WEIGHTS(), weights)
                            .add(Role.ROW_TERM, Dnnl.DNNL_ARG_DST(), sums),
                    null);
        }

        /**
         * {@code output = input + row term}, broadcast over each row (in place when the roles are equal); with
         * {@code affine} then multiplied by the scale and shifted, as post-ops (the precise forward's last step).
         */
        private String addRowTerm(Role inputRole, Role outputRole, boolean affine, Glue before) throws Unsupported {
            MemorySegment rowTerm = dense(DataType.F32, geometry.rowColumnDims());
            return binaryAdd(
                    inputRole,
                    Role.ROW_TERM,
                    rowTerm,
                    outputRole,
                    affine && config.scale(),
                    affine && config.shift(),
                    before);
        }

        /**
         * {@code output = first + second} (in place when the first and output roles are equal), one binary
         * primitive; then, as post-ops per channel, multiplied by the call's scale if {@code scale} and plus its
         * shift if {@code shift}.
         */
        private String binaryAdd(
                Role firstRole,
                Role secondRole,
                MemorySegment second,
                Role outputRole,
                boolean scale,
                boolean shift,
                Glue before)
                throws Unsupported {
            MemorySegment first = data(firstRole);
            MemorySegment output = data(outputRole);
            Arguments arguments = new Arguments()
                    .add(firstRole, Dnnl.DNNL_ARG_SRC_0(), first)
                    .add(secondRole, Dnnl.DNNL_ARG_SRC_1(), second)
                    .add(outputRole, Dnnl.DNNL_ARG_DST(), output);
            MemorySegment attr = userScratchpadAttr();
            if (scale || shift) {
                check(Dnnl.dnnl_post_ops_create(out), "dnnl_post_ops_create");
                MemorySegment postOps = own(out, scratch, Dnnl::dnnl_post_ops_destroy);
                int index = 0;
                if (scale) {
                    MemorySegment gamma = dense(call.scale().dataType(), geometry.channelRowDims());
                    check(
                            Dnnl.dnnl_post_ops_append_binary(postOps, Dnnl.dnnl_binary_mul(), gamma),
                            "dnnl_post_ops_append_binary");
                    arguments.add(Role.SCALE, postOpArgument(index++), gamma);
                }
                if (shift) {
                    MemorySegment beta = dense(call.shift().dataType(), geometry.channelRowDims());
                    check(
                            Dnnl.dnnl_post_ops_append_binary(postOps, Dnnl.dnnl_binary_add(), beta),
                            "dnnl_post_ops_append_binary");
                    arguments.add(Role.SHIFT, postOpArgument(index), beta);
                }
                check(Dnnl.dnnl_primitive_attr_set_post_ops(attr, postOps), "dnnl_primitive_attr_set_post_ops");
            }
            MemorySegment desc = primitiveDesc(
                    Dnnl.dnnl_binary_primitive_desc_create(
                            out, engine, Dnnl.dnnl_binary_add(), first, second, output, attr),
                    "dnnl_binary_primitive_desc_create");
            return add(desc, arguments, before);
        }

        /** The one data type of scale and shift (or their gradients); f32 when there are none. */
        private DataType parameterType(Role first, Role second) throws Unsupported {
            DataType a = call.tensor(first) == null ? null : call.tensor(first).dataType();
            DataType b =
                    call.tensor(second) == null ? null : call.tensor(second).dataType();
            if (a != null && b != null && a != b) {
                throw new Unsupported("oneDNN takes one data type for scale and shift, got " + a + " and " + b);
            }
            return a != null ? a : b != null ? b : DataType.F32;
        }
    }

    private static int postOpArgument(int index) {
        return Dnnl.DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE() * (index + 1) | Dnnl.DNNL_ARG_SRC_1();
    }

    /**
     * A stream, memory objects for every step, and the plan's own per-row buffers, for one thread at a time:
     * the thread that took it from {@link #lend}.
     */
    final class Context {
        final OneDnnPlan plan = OneDnnPlan.this;
        /** The thread that last took this context from the plan; guarded by the owner's lock. */
        private WeakReference<Thread> holder;
        /** The holder's record of its OpenMP thread count ({@link OpenMp#threadsSetOnCallingThread}). */
        private int[] openMpThreads;

        private final MemorySegment stream;
        /** Per step, per argument: the memory object. */
        private final MemorySegment[][] memory;
        /** Per step: the argument array. */
        private final MemorySegment[] args;

        private final int[] argCounts;
        /** Per step, per argument: the address bound last, so an unchanged binding costs no native call. */
        private final long[][] bound;
        /** The plan's own buffers, by role ordinal (null for the caller's roles). */
        private final MemorySegment[] buffers = new MemorySegment[Role.values().length];

        Context() {
            try (Arena scratch = Arena.ofConfined()) {
                MemorySegment out = scratch.allocate(ValueLayout.ADDRESS);
                check(Dnnl.dnnl_stream_create(out, engine, Dnnl.dnnl_stream_default_flags()), "dnnl_stream_create");
                stream = own(out, Dnnl::dnnl_stream_destroy);
                memory = new MemorySegment[steps.size()][];
                args = new MemorySegment[steps.size()];
                argCounts = new int[steps.size()];
                bound = new long[steps.size()][];
                for (int s = 0; s < steps.size(); s++) {
                    Step step = steps.get(s);
                    int count = step.roles().length;
                    memory[s] = new MemorySegment[count];
                    bound[s] = new long[count];
                    MemorySegment scratchpad = step.scratchpadBytes() > 0
                            ? memory(out, step.scratchpadDesc(), Dnnl.DNNL_MEMORY_ALLOCATE())
                            : null;
                    argCounts[s] = count + (scratchpad != null ? 1 : 0);
                    MemorySegment array = dnnl_exec_arg_t.allocateArray(argCounts[s], nativeMemory);
                    for (int i = 0; i < count; i++) {
                        memory[s][i] = memory(out, step.descriptors()[i], handle(step.roles()[i]));
                        argument(array, i, step.arguments()[i], memory[s][i]);
                    }
                    if (scratchpad != null) {
                        argument(array, count, Dnnl.DNNL_ARG_SCRATCHPAD(), scratchpad);
                    }
                    args[s] = MemorySegment.ofAddress(array.address()); // global scope: no liveness check per call
                }
            }
        }

        /** The memory a role starts bound to: the caller's comes with each call, the plan's own is made here. */
        private MemorySegment handle(Role role) {
            if (role == Role.DISCARDED) {
                return Dnnl.DNNL_MEMORY_ALLOCATE();
            }
            if (role.ordinal() < Role.CALLER) {
                return MemorySegment.NULL;
            }
            if (buffers[role.ordinal()] == null) {
                long floats = role == Role.NORMALIZED ? rows * config.normalizedSize() : rows;
                buffers[role.ordinal()] = nativeMemory.allocate(Float.BYTES * Math.max(floats, 1), 64); // zeroed
            }
            return buffers[role.ordinal()];
        }

        private MemorySegment memory(MemorySegment out, MemorySegment desc, MemorySegment handle) {
            check(Dnnl.dnnl_memory_create(out, desc, engine, handle), "dnnl_memory_create");
            return own(out, Dnnl::dnnl_memory_destroy);
        }

        private static void argument(MemorySegment array, int index, int kind, MemorySegment memory) {
            MemorySegment slot = dnnl_exec_arg_t.asSlice(array, index);
            dnnl_exec_arg_t.arg(slot, kind);
            dnnl_exec_arg_t.memory(slot, memory);
        }

        /** The plan's own buffer for {@code role}. */
        private MemorySegment buffer(Role role) {
            return buffers[role.ordinal()];
        }

        /** The caller's tensor's memory if given, else the plan's own buffer {@code own}. */
        private MemorySegment segment(Tensor given, Role own) {
            return given != null ? given.segment() : buffer(own);
        }

        /**
         * Runs the plan on the caller's tensors (absent ones null).
         *
         * @throws IllegalStateException if another thread closed a tensor's arena before a step; no step runs on
         *     freed memory, since each holds every tensor's arena open while oneDNN runs
         */
        void execute(
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
            OpenMp.setThreads(openMpThreads, signature.threads); // oneDNN reads it when a primitive runs
            for (int s = 0; s < steps.size(); s++) {
                Step step = steps.get(s);
                if (step.before() != null) {
                    step.before().run(this, src, mean, variance);
                }
                Role[] roles = step.roles();
                for (int i = 0; i < roles.length; i++) {
                    Tensor tensor = Call.tensor(
                            roles[i], src, dst, scale, shift, mean, variance, diffDst, diffSrc, diffScale, diffShift);
                    if (tensor != null) { // null: absent, or the plan's own buffer, bound once
                        bind(s, i, tensor.segment());
                    }
                }
                int status = OneDnnExecute.executeAndWait(
                        shortCalls,
                        step.primitive(),
                        stream,
                        argCounts[s],
                        args[s],
                        src,
                        dst,
                        scale,
                        shift,
                        mean,
                        variance,
                        diffDst,
                        diffSrc,
                        diffScale,
                        diffShift);
                if (status != Dnnl.dnnl_success()) {
                    for (long[] addresses : bound) {
                        Arrays.fill(addresses, 0); // re-bind everything next time
                    }
                    check(status, "dnnl_primitive_execute");
                }
            }
        }

        private void bind(int step, int argument, MemorySegment segment) {
            long address = segment.address();
            if (address != bound[step][argument]) {
                try {
                    check(
                            Dnnl.dnnl_memory_set_data_handle(memory[step][argument], segment),
                            "dnnl_memory_set_data_handle");
                } catch (IllegalStateException e) { // the linker refused an arena closed since the checks
                    throw CallChecks.closedDuringCall(e);
                }
                bound[step][argument] = address;
            }
        }
    }
}
