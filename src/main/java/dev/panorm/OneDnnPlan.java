package dev.panorm;

import dev.panorm.internal.dnnl.Dnnl;
import dev.panorm.internal.dnnl.dnnl_exec_arg_t;

import java.lang.foreign.Arena;
import java.lang.ref.WeakReference;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
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
 *       mean square, a p-norm reduction, has only a reference implementation in 3.8.1, more than ten
 *       times slower than this whole pass.)</li>
 *   <li>RMS backward: layer-normalization backward with zero mean gives the RMS gradient minus
 *       {@code rstd * mean(dy * gamma)}; a matmul (or reduction) computes {@code sum(dy * gamma)} per
 *       row and a binary primitive adds the missing term.</li>
 * </ul>
 *
 * <p>A signature oneDNN cannot take (a layout it cannot describe, or {@code dnnl_unimplemented})
 * throws {@link Unsupported} from the constructor; the caller then falls back to the Java backend.
 */
final class OneDnnPlan {
    // Roles: the tensors a call binds. The first ten come from the caller, the rest are the plan's own.
    static final int SRC = 0;
    static final int DST = 1;
    static final int SCALE = 2;
    static final int SHIFT = 3;
    static final int MEAN = 4;
    static final int VARIANCE = 5;
    static final int DIFF_DST = 6;
    static final int DIFF_SRC = 7;
    static final int DIFF_SCALE = 8;
    static final int DIFF_SHIFT = 9;
    static final int CALLER_ROLES = 10;
    /** Per-row float buffers owned by each context. */
    private static final int ZERO_MEAN = 10;      // all zeros: RMS has no mean
    private static final int OWN_MEAN = 11;       // statistics of an inference call
    private static final int OWN_VARIANCE = 12;
    private static final int ROW_TERM = 13;       // precise correction, RMS sum of squares or backward term
    private static final int DISCARDED = 14;      // a gradient the caller did not ask for (library-allocated)
    private static final int NORMALIZED = 15;     // float32 output of a composed pass, before its last step rounds it
    private static final int ROLES = 16;

    /** The call signature or configuration cannot run on oneDNN; the message says why. */
    static final class Unsupported extends Exception {
        private static final long serialVersionUID = 1L;

        Unsupported(String reason) {
            super(reason, null, false, false);
        }
    }

    private enum Strategy { LAYER, PRECISE, RMS_FORWARD, RMS_BACKWARD }

    final Pass pass;
    final long rows;
    /** Whether a call is short enough for critical downcalls ({@link OneDnnExecute}): decided once, not per call and step. */
    private final boolean shortCalls;
    final String implementation;
    private final LayerNormConfig config;
    private final MemorySegment engine;
    private final ScalarKernel scalar;
    private final Strategy strategy;
    final CallSignature signature;
    private final Arena arena = Arena.ofShared();
    private final List<Step> steps = new ArrayList<>();
    private final ArrayDeque<Context> idle = new ArrayDeque<>(); // guarded by the owner's lock
    private final List<Context> contexts = new ArrayList<>();    // every one made; guarded by the owner's lock
    /** Set when the owner drops the plan from its cache; its memory is freed once no call is in flight. */
    volatile boolean retired;
    /** For least-recently-used eviction; written without synchronization, so approximate. */
    long lastUsed;

    /** One primitive and, per argument, the role bound to it. */
    private record Step(MemorySegment primitive, int[] roles, int[] arguments, MemorySegment[] descriptors,
                        MemorySegment scratchpadDesc, long scratchpadBytes) {}

    /**
     * Builds the primitives for {@code tensors} (indexed by role; null where absent).
     *
     * @throws Unsupported if oneDNN cannot run this signature
     */
    OneDnnPlan(LayerNormConfig config, MemorySegment engine, ScalarKernel scalar, CallSignature signature, long rows,
               Tensor[] tensors) throws Unsupported {
        this.config = config;
        this.engine = engine;
        this.scalar = scalar;
        this.pass = signature.pass;
        this.rows = rows;
        this.shortCalls = rows * config.normalizedSize() < OneDnnExecute.SHORT_BELOW;
        this.signature = signature;
        if (config.rms()) {
            strategy = pass.forward ? Strategy.RMS_FORWARD : Strategy.RMS_BACKWARD;
        } else {
            strategy = config.preciseStatistics() && pass.forward && !pass.globalStatistics ? Strategy.PRECISE
                    : Strategy.LAYER;
        }
        try (Arena scratch = Arena.ofConfined()) {
            Geometry geometry = Geometry.of(config, tensors, rows);
            Builder builder = new Builder(scratch, geometry, tensors);
            implementation = builder.build();
        } catch (Unsupported | RuntimeException e) {
            arena.close();
            throw e;
        }
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
            // A shared arena allocates and registers cleanups thread-safely; the plan is in use, so alive.
            context = new Context();
            contexts.add(context);
        }
        context.holder = new WeakReference<>(Thread.currentThread());
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
        arena.close();
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
        StringBuilder text = new StringBuilder((config.rms() ? "RMS normalization " : "layer normalization ")
                + pass.name().toLowerCase(Locale.ROOT).replace('_', ' '));
        String[] names = {"src", "dst", "scale", "shift", "diff_dst", "diff_src", "diff_scale", "diff_shift"};
        for (int role = 0; role < names.length; role++) {
            String tensor = signature.describe(role);
            if (tensor != null) {
                text.append(", ").append(names[role]).append(' ').append(tensor);
            }
        }
        return text.append(", eps ").append((float) config.eps()).append(", ").append(signature.threads)
                .append(signature.threads == 1 ? " thread" : " threads").toString();
    }

    /** Reads the handle a {@code dnnl_*_create} call wrote and ties its destruction to {@code owner}. */
    private static MemorySegment own(MemorySegment out, Arena owner, Consumer<MemorySegment> destroy) {
        MemorySegment handle = out.get(ValueLayout.ADDRESS, 0);
        handle.reinterpret(owner, destroy);
        // The plain handle has global scope, so passing it to a downcall costs no liveness check;
        // the owner frees the plan only when no call is in flight, which is what keeps it alive.
        return handle;
    }

    private static int dnnlType(DataType type) {
        return switch (type) {
            case F32 -> Dnnl.dnnl_f32();
            case BF16 -> Dnnl.dnnl_bf16();
            case F16 -> Dnnl.dnnl_f16();
        };
    }

    /**
     * How the call's tensors map to oneDNN dimensions: {@code [rows, C]}. Only C-contiguous data goes
     * to oneDNN: its JIT layer normalization (3.8.1) checks just that the last stride is 1 and then
     * walks the rows as if they were dense ({@code N * C_padded} in {@code jit_uni_layer_normalization.cpp}),
     * so padded rows or column windows would silently give wrong results. Those run in Java.
     */
    private record Geometry(long rows, long c) {
        static Geometry of(LayerNormConfig config, Tensor[] tensors, long rows) throws Unsupported {
            for (int role : new int[] {SRC, DST, DIFF_DST, DIFF_SRC}) {
                Tensor tensor = tensors[role];
                if (tensor != null && !tensor.isContiguous()) {
                    throw new Unsupported("oneDNN's layer normalization takes only C-contiguous data, and "
                            + tensor + " is strided");
                }
            }
            return new Geometry(rows, config.normalizedSize());
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

    /** Creates the descriptors and primitives; returns the implementation name. */
    private final class Builder {
        private final Arena scratch;
        private final Geometry geometry;
        private final Tensor[] tensors;
        private final MemorySegment out;

        Builder(Arena scratch, Geometry geometry, Tensor[] tensors) {
            this.scratch = scratch;
            this.geometry = geometry;
            this.tensors = tensors;
            this.out = scratch.allocate(ValueLayout.ADDRESS);
        }

        String build() throws Unsupported {
            int mean = tensors[MEAN] == null ? OWN_MEAN : MEAN;
            int variance = tensors[VARIANCE] == null ? OWN_VARIANCE : VARIANCE;
            boolean affine = config.scale() || config.shift();
            return switch (strategy) {
                case LAYER -> layerNormalization(pass, true, mean, variance, pass.forward ? DST : DIFF_SRC);
                case PRECISE -> {
                    int normalized = intermediate(DST);
                    yield "java:statistics + " + layerNormalization(Pass.FORWARD_GLOBAL, false, mean, variance, normalized)
                            + " + " + addRowTerm(normalized, DST, affine);
                }
                case RMS_FORWARD -> (pass.globalStatistics ? "" : "java:mean-square + ")
                        + layerNormalization(Pass.FORWARD_GLOBAL, true, ZERO_MEAN, variance, DST);
                case RMS_BACKWARD -> {
                    if (pass.globalStatistics) {
                        yield layerNormalization(pass, true, ZERO_MEAN, VARIANCE, DIFF_SRC);
                    }
                    // The row sum reads diffDst first: in place, the layer normalization step overwrites it.
                    String dot = rowDot();
                    int normalized = intermediate(DIFF_SRC);
                    yield dot + " + " + layerNormalization(pass, true, ZERO_MEAN, VARIANCE, normalized) + " + "
                            + addRowTerm(normalized, DIFF_SRC, false);
                }
            };
        }

        private MemorySegment descriptor(DataType type, long[] dims, long[] strides) {
            check(Dnnl.dnnl_memory_desc_create_with_strides(out, dims.length, scratch.allocateFrom(ValueLayout.JAVA_LONG, dims),
                    dnnlType(type), scratch.allocateFrom(ValueLayout.JAVA_LONG, strides)), "dnnl_memory_desc_create_with_strides");
            return own(out, arena, Dnnl::dnnl_memory_desc_destroy);
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

        private MemorySegment data(int role) {
            return dense(role == NORMALIZED ? DataType.F32 : tensors[role].dataType(), geometry.dataDims());
        }

        /**
         * Where a composed pass's first step writes its result: the output itself when it is float32, else a
         * float32 buffer, so that the output is rounded to its type once, by the last step, and not twice.
         */
        private int intermediate(int output) {
            return tensors[output].dataType() == DataType.F32 ? output : NORMALIZED;
        }

        private MemorySegment userScratchpadAttr() {
            check(Dnnl.dnnl_primitive_attr_create(out), "dnnl_primitive_attr_create");
            MemorySegment attr = own(out, scratch, Dnnl::dnnl_primitive_attr_destroy);
            // User-managed scratchpad: each context owns its own, so concurrent calls never share one.
            check(Dnnl.dnnl_primitive_attr_set_scratchpad_mode(attr, Dnnl.dnnl_scratchpad_mode_user()),
                    "dnnl_primitive_attr_set_scratchpad_mode");
            return attr;
        }

        /**
         * Any failure to create a primitive descriptor means oneDNN cannot run this configuration (usually
         * {@code dnnl_unimplemented}; {@code dnnl_invalid_arguments} for shapes it refuses, such as a
         * reduction over a single element): {@link Unsupported}, so Java runs it instead.
         */
        private MemorySegment primitiveDesc(int status, String call) throws Unsupported {
            if (status != Dnnl.dnnl_success()) {
                throw new Unsupported(call + " returned " + OneDnnStatus.of(status).nativeName() + " for " + describe());
            }
            return own(out, arena, Dnnl::dnnl_primitive_desc_destroy);
        }

        /**
         * Records a primitive with its arguments ({@code roles[i]} bound as {@code arguments[i]}). oneDNN's
         * reference implementations ({@code ref:*}) are refused: for layer normalization with bf16 or f16
         * scale and shift, ref:any measured 4 to 40 times slower than panorm's scalar Java kernel, and its
         * sequential sums lost up to 19 u*kappa where the JIT kernel stays within 8 (ApiFuzzTest found it).
         */
        private String add(MemorySegment primitiveDesc, int[] roles, int[] arguments, MemorySegment[] descriptors)
                throws Unsupported {
            check(Dnnl.dnnl_primitive_desc_query(primitiveDesc, Dnnl.dnnl_query_impl_info_str(), 0, out),
                    "dnnl_primitive_desc_query");
            String name = out.get(ValueLayout.ADDRESS, 0).reinterpret(256).getString(0);
            if (name.startsWith("ref")) {
                throw new Unsupported("oneDNN offers only its slow reference code, " + name + ", here");
            }
            MemorySegment scratchpad = Dnnl.dnnl_primitive_desc_query_md(primitiveDesc, Dnnl.dnnl_query_scratchpad_md(), 0);
            long scratchpadBytes = scratchpad.equals(MemorySegment.NULL) ? 0 : Dnnl.dnnl_memory_desc_get_size(scratchpad);
            check(Dnnl.dnnl_primitive_create(out, primitiveDesc), "dnnl_primitive_create");
            steps.add(new Step(own(out, arena, Dnnl::dnnl_primitive_destroy), roles, arguments, descriptors, scratchpad,
                    scratchpadBytes));
            return name;
        }

        /**
         * A layer-normalization primitive for {@code layerPass}, applying the configured scale and shift
         * if {@code affine}, with its mean, variance and output (dst or diff_src) bound to the given roles.
         */
        private String layerNormalization(Pass layerPass, boolean affine, int meanRole, int varianceRole, int outputRole)
                throws Unsupported {
            boolean scale = config.scale() && affine;
            boolean shift = config.shift() && affine && (layerPass.forward || layerPass.parameterGradients);
            // oneDNN 3.8 has no backward_data with a scale (dnnl_unimplemented), although dx depends on it:
            // that pass runs as a full backward whose scale gradient goes to memory the context owns.
            boolean discardScaleGradient = !layerPass.forward && !layerPass.parameterGradients && scale;
            int flags = (scale ? Dnnl.dnnl_use_scale() : 0) | (shift ? Dnnl.dnnl_use_shift() : 0)
                    | (layerPass.globalStatistics ? Dnnl.dnnl_use_global_stats() : 0);
            DataType parameterType = parameterType(SCALE, SHIFT);
            DataType diffParameterType = parameterType(DIFF_SCALE, DIFF_SHIFT);
            MemorySegment statisticsDesc = dense(DataType.F32, geometry.rowDims());
            MemorySegment channels = dense(parameterType, new long[] {geometry.c()});
            float eps = (float) config.eps();
            MemorySegment attr = userScratchpadAttr();
            List<Integer> roles = new ArrayList<>();
            List<Integer> arguments = new ArrayList<>();
            List<MemorySegment> descriptors = new ArrayList<>();
            if (layerPass.forward) {
                MemorySegment src = data(SRC);
                MemorySegment dst = data(outputRole);
                MemorySegment desc = primitiveDesc(Dnnl.dnnl_layer_normalization_forward_primitive_desc_create_v2(out,
                        engine, layerPass == Pass.FORWARD_TRAINING ? Dnnl.dnnl_forward_training() : Dnnl.dnnl_forward_inference(),
                        src, dst, statisticsDesc, dnnlType(parameterType), eps, flags, attr),
                        "dnnl_layer_normalization_forward_primitive_desc_create_v2");
                addArgument(roles, arguments, descriptors, SRC, Dnnl.DNNL_ARG_SRC(), src);
                addArgument(roles, arguments, descriptors, outputRole, Dnnl.DNNL_ARG_DST(), dst);
                if (layerPass.usesStatistics()) {
                    addArgument(roles, arguments, descriptors, meanRole, Dnnl.DNNL_ARG_MEAN(), statisticsDesc);
                    addArgument(roles, arguments, descriptors, varianceRole, Dnnl.DNNL_ARG_VARIANCE(), statisticsDesc);
                }
                if (scale) {
                    addArgument(roles, arguments, descriptors, SCALE, Dnnl.DNNL_ARG_SCALE(), channels);
                }
                if (shift) {
                    addArgument(roles, arguments, descriptors, SHIFT, Dnnl.DNNL_ARG_SHIFT(), channels);
                }
                return add(desc, toInts(roles), toInts(arguments), descriptors.toArray(MemorySegment[]::new));
            }
            MemorySegment src = data(SRC);
            MemorySegment diffDst = data(DIFF_DST);
            MemorySegment diffSrc = data(outputRole);
            check(Dnnl.dnnl_layer_normalization_forward_primitive_desc_create_v2(out, engine, Dnnl.dnnl_forward_training(),
                    src, src, statisticsDesc, dnnlType(parameterType), eps, flags, attr),
                    "dnnl_layer_normalization_forward_primitive_desc_create_v2 (backward hint)");
            MemorySegment hint = own(out, scratch, Dnnl::dnnl_primitive_desc_destroy);
            int propagation = layerPass.parameterGradients || discardScaleGradient ? Dnnl.dnnl_backward() : Dnnl.dnnl_backward_data();
            MemorySegment desc = primitiveDesc(Dnnl.dnnl_layer_normalization_backward_primitive_desc_create_v2(out, engine,
                    propagation, diffSrc, diffDst, src, statisticsDesc, dnnlType(diffParameterType), dnnlType(parameterType),
                    eps, flags, hint, attr), "dnnl_layer_normalization_backward_primitive_desc_create_v2");
            addArgument(roles, arguments, descriptors, SRC, Dnnl.DNNL_ARG_SRC(), src);
            addArgument(roles, arguments, descriptors, DIFF_DST, Dnnl.DNNL_ARG_DIFF_DST(), diffDst);
            addArgument(roles, arguments, descriptors, outputRole, Dnnl.DNNL_ARG_DIFF_SRC(), diffSrc);
            addArgument(roles, arguments, descriptors, meanRole, Dnnl.DNNL_ARG_MEAN(), statisticsDesc);
            addArgument(roles, arguments, descriptors, varianceRole, Dnnl.DNNL_ARG_VARIANCE(), statisticsDesc);
            MemorySegment diffChannels = dense(diffParameterType, new long[] {geometry.c()});
            if (scale) {
                addArgument(roles, arguments, descriptors, SCALE, Dnnl.DNNL_ARG_SCALE(), channels);
                addArgument(roles, arguments, descriptors, discardScaleGradient ? DISCARDED : DIFF_SCALE,
                        Dnnl.DNNL_ARG_DIFF_SCALE(), diffChannels);
            }
            if (shift) {
                addArgument(roles, arguments, descriptors, DIFF_SHIFT, Dnnl.DNNL_ARG_DIFF_SHIFT(), diffChannels);
            }
            return add(desc, toInts(roles), toInts(arguments), descriptors.toArray(MemorySegment[]::new));
        }

        /** RMS backward: sum(dy * gamma) per row (or sum(dy) without a scale) into the row term. */
        private String rowDot() throws Unsupported {
            MemorySegment diffDst = data(DIFF_DST);
            MemorySegment sums = dense(DataType.F32, geometry.rowColumnDims());
            if (!config.scale()) {
                MemorySegment desc = primitiveDesc(Dnnl.dnnl_reduction_primitive_desc_create(out, engine,
                        Dnnl.dnnl_reduction_sum(), diffDst, sums, 0f, 0f, userScratchpadAttr()),
                        "dnnl_reduction_primitive_desc_create");
                return add(desc, new int[] {DIFF_DST, ROW_TERM}, new int[] {Dnnl.DNNL_ARG_SRC(), Dnnl.DNNL_ARG_DST()},
                        new MemorySegment[] {diffDst, sums});
            }
            // sum_c dy[r, c] * gamma[c]: a matmul of dy [..., C] with gamma as a [C, 1] weight.
            long[] weightDims = {geometry.c(), 1};
            MemorySegment weights = dense(tensors[SCALE].dataType(), weightDims);
            MemorySegment desc = primitiveDesc(Dnnl.dnnl_matmul_primitive_desc_create(out, engine, diffDst, weights,
                    MemorySegment.NULL, sums, userScratchpadAttr()), "dnnl_matmul_primitive_desc_create");
            return add(desc, new int[] {DIFF_DST, SCALE, ROW_TERM},
                    new int[] {Dnnl.DNNL_ARG_SRC(), Dnnl.DNNL_ARG_WEIGHTS(), Dnnl.DNNL_ARG_DST()},
                    new MemorySegment[] {diffDst, weights, sums});
        }

        /**
         * {@code output = input + row term}, broadcast over each row (in place when the roles are equal); with
         * {@code affine} then multiplied by the scale and shifted, as post-ops (the precise forward's last step).
         */
        private String addRowTerm(int inputRole, int outputRole, boolean affine) throws Unsupported {
            MemorySegment input = data(inputRole);
            MemorySegment output = data(outputRole);
            MemorySegment rowTerm = dense(DataType.F32, geometry.rowColumnDims());
            List<Integer> roles = new ArrayList<>(List.of(inputRole, ROW_TERM, outputRole));
            List<Integer> arguments = new ArrayList<>(List.of(Dnnl.DNNL_ARG_SRC_0(), Dnnl.DNNL_ARG_SRC_1(), Dnnl.DNNL_ARG_DST()));
            List<MemorySegment> descriptors = new ArrayList<>(List.of(input, rowTerm, output));
            MemorySegment attr = userScratchpadAttr();
            if (affine) {
                check(Dnnl.dnnl_post_ops_create(out), "dnnl_post_ops_create");
                MemorySegment postOps = own(out, scratch, Dnnl::dnnl_post_ops_destroy);
                int index = 0;
                if (config.scale()) {
                    MemorySegment gamma = dense(tensors[SCALE].dataType(), geometry.channelRowDims());
                    check(Dnnl.dnnl_post_ops_append_binary(postOps, Dnnl.dnnl_binary_mul(), gamma),
                            "dnnl_post_ops_append_binary");
                    addArgument(roles, arguments, descriptors, SCALE, postOpArgument(index++), gamma);
                }
                if (config.shift()) {
                    MemorySegment beta = dense(tensors[SHIFT].dataType(), geometry.channelRowDims());
                    check(Dnnl.dnnl_post_ops_append_binary(postOps, Dnnl.dnnl_binary_add(), beta),
                            "dnnl_post_ops_append_binary");
                    addArgument(roles, arguments, descriptors, SHIFT, postOpArgument(index), beta);
                }
                check(Dnnl.dnnl_primitive_attr_set_post_ops(attr, postOps), "dnnl_primitive_attr_set_post_ops");
            }
            MemorySegment desc = primitiveDesc(Dnnl.dnnl_binary_primitive_desc_create(out, engine, Dnnl.dnnl_binary_add(),
                    input, rowTerm, output, attr), "dnnl_binary_primitive_desc_create");
            return add(desc, toInts(roles), toInts(arguments), descriptors.toArray(MemorySegment[]::new));
        }

        /** The one data type of scale and shift (or their gradients); f32 when there are none. */
        private DataType parameterType(int first, int second) throws Unsupported {
            DataType a = tensors[first] == null ? null : tensors[first].dataType();
            DataType b = tensors[second] == null ? null : tensors[second].dataType();
            if (a != null && b != null && a != b) {
                throw new Unsupported("oneDNN takes one data type for scale and shift, got " + a + " and " + b);
            }
            return a != null ? a : b != null ? b : DataType.F32;
        }
    }

    private static int postOpArgument(int index) {
        return Dnnl.DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE() * (index + 1) | Dnnl.DNNL_ARG_SRC_1();
    }

    private static void addArgument(List<Integer> roles, List<Integer> arguments, List<MemorySegment> descriptors,
                                    int role, int argument, MemorySegment descriptor) {
        roles.add(role);
        arguments.add(argument);
        descriptors.add(descriptor);
    }

    private static int[] toInts(List<Integer> values) {
        return values.stream().mapToInt(Integer::intValue).toArray();
    }

    /** A stream, memory objects for every step, and the plan's own per-row buffers, for one call at a time. */
    final class Context {
        final OneDnnPlan plan = OneDnnPlan.this;
        /** The thread that last took this context from the plan; guarded by the owner's lock. */
        private WeakReference<Thread> holder;
        private final MemorySegment stream;
        /** Per step, per argument: the memory object. */
        private final MemorySegment[][] memory;
        /** Per step: the argument array. */
        private final MemorySegment[] args;
        private final int[] argCounts;
        /** Per step, per argument: the address bound last, so an unchanged binding costs no native call. */
        private final long[][] bound;
        /** The plan's own per-row float buffers, by role (null for caller roles). */
        private final MemorySegment[] buffers = new MemorySegment[ROLES];

        Context() {
            try (Arena scratch = Arena.ofConfined()) {
                MemorySegment out = scratch.allocate(ValueLayout.ADDRESS);
                check(Dnnl.dnnl_stream_create(out, engine, Dnnl.dnnl_stream_default_flags()), "dnnl_stream_create");
                stream = own(out, arena, Dnnl::dnnl_stream_destroy);
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
                            ? memory(out, step.scratchpadDesc(), Dnnl.DNNL_MEMORY_ALLOCATE()) : null;
                    argCounts[s] = count + (scratchpad != null ? 1 : 0);
                    MemorySegment array = dnnl_exec_arg_t.allocateArray(argCounts[s], arena);
                    for (int i = 0; i < count; i++) {
                        int role = step.roles()[i];
                        MemorySegment handle = MemorySegment.NULL;
                        if (role == DISCARDED) {
                            handle = Dnnl.DNNL_MEMORY_ALLOCATE();
                        } else if (role >= CALLER_ROLES) {
                            if (buffers[role] == null) {
                                long floats = role == NORMALIZED ? rows * config.normalizedSize() : rows;
                                buffers[role] = arena.allocate(Float.BYTES * Math.max(floats, 1), 64); // zeroed
                            }
                            handle = buffers[role];
                        }
                        memory[s][i] = memory(out, step.descriptors()[i], handle);
                        argument(array, i, step.arguments()[i], memory[s][i]);
                    }
                    if (scratchpad != null) {
                        argument(array, count, Dnnl.DNNL_ARG_SCRATCHPAD(), scratchpad);
                    }
                    args[s] = MemorySegment.ofAddress(array.address()); // global scope: no liveness check per call
                }
            }
        }

        private MemorySegment memory(MemorySegment out, MemorySegment desc, MemorySegment handle) {
            check(Dnnl.dnnl_memory_create(out, desc, engine, handle), "dnnl_memory_create");
            return own(out, arena, Dnnl::dnnl_memory_destroy);
        }

        private static void argument(MemorySegment array, int index, int kind, MemorySegment memory) {
            MemorySegment slot = dnnl_exec_arg_t.asSlice(array, index);
            dnnl_exec_arg_t.arg(slot, kind);
            dnnl_exec_arg_t.memory(slot, memory);
        }

        /**
         * Runs the plan on the caller's tensors (indexed like the constructor's; absent ones null).
         *
         * @throws IllegalStateException if another thread closed a tensor's arena before a step; no step runs on
         *     freed memory, since each holds every tensor's arena open while oneDNN runs
         */
        void execute(Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance, Tensor diffDst,
                     Tensor diffSrc, Tensor diffScale, Tensor diffShift) {
            switch (strategy) {
                case PRECISE -> {
                    MemorySegment means = mean != null ? mean.segment() : buffers[OWN_MEAN];
                    MemorySegment variances = variance != null ? variance.segment() : buffers[OWN_VARIANCE];
                    scalar.preciseStatistics(src, rows, means, variances, buffers[ROW_TERM]);
                }
                case RMS_FORWARD -> {
                    if (!pass.globalStatistics) {
                        scalar.statistics(src, rows, null, variance != null ? variance.segment() : buffers[OWN_VARIANCE]);
                    }
                }
                default -> { }
            }
            for (int s = 0; s < steps.size(); s++) {
                if (strategy == Strategy.RMS_BACKWARD && s == 2) { // steps: row sum, layer normalization, add the term
                    rowTerm(variance);
                }
                Step step = steps.get(s);
                for (int i = 0; i < step.roles().length; i++) {
                    Tensor tensor = switch (step.roles()[i]) {
                        case SRC -> src;
                        case DST -> dst;
                        case SCALE -> scale;
                        case SHIFT -> shift;
                        case MEAN -> mean;
                        case VARIANCE -> variance;
                        case DIFF_DST -> diffDst;
                        case DIFF_SRC -> diffSrc;
                        case DIFF_SCALE -> diffScale;
                        case DIFF_SHIFT -> diffShift;
                        default -> null;
                    };
                    if (tensor != null) {
                        bind(s, i, tensor.segment());
                    }
                }
                int status = OneDnnExecute.executeAndWait(shortCalls, step.primitive(), stream, argCounts[s], args[s],
                        src, dst, scale, shift, mean, variance, diffDst, diffSrc, diffScale, diffShift);
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
                check(Dnnl.dnnl_memory_set_data_handle(memory[step][argument], segment), "dnnl_memory_set_data_handle");
                bound[step][argument] = address;
            }
        }

        /** RMS backward glue: term[row] = rstd * sum(dy * gamma) / C, the part layer normalization took away. */
        private void rowTerm(Tensor variance) {
            MemorySegment sums = buffers[ROW_TERM];
            double c = config.normalizedSize();
            float eps = (float) config.eps();
            for (long row = 0; row < rows; row++) {
                float var = variance.segment().getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, row);
                double rstd = 1 / Math.sqrt(var + eps);
                sums.setAtIndex(ValueLayout.JAVA_FLOAT, row, (float) (rstd * sums.getAtIndex(ValueLayout.JAVA_FLOAT, row) / c));
            }
        }
    }
}
