package dev.panorm;

import dev.panorm.internal.LayerNormAccess;
import java.lang.foreign.MemorySegment;
import java.lang.ref.Cleaner;
import java.lang.ref.Reference;
import java.util.Objects;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.locks.LockSupport;

/**
 * Layer (or RMS) normalization of every row of a tensor over its trailing axes, the configuration's
 * normalized shape of {@code C} elements, with PyTorch's semantics (see {@link LayerNormConfig}),
 * computed by a chosen {@link Backend}.
 *
 * {@snippet :
 * try (Arena arena = Arena.ofConfined();
 *      LayerNorm norm = LayerNorm.create(LayerNormConfig.of(768))) {
 *     Tensor x = Tensor.allocate(arena, DataType.F32, 32, 768);     // fill it
 *     Tensor gamma = Tensor.allocate(arena, DataType.F32, 768);     // PyTorch's weight
 *     Tensor beta = Tensor.allocate(arena, DataType.F32, 768);      // PyTorch's bias
 *     norm.forward(x, x, gamma, beta);                              // in place
 * }
 * }
 *
 * <p>Create one per configuration and reuse it: the oneDNN backend builds a primitive the first
 * time it sees a row count and reuses it afterwards, so steady-state calls allocate nothing.
 *
 * <p>Tensors: data ({@code src}, {@code dst} and their gradients) may be {@link DataType#F32},
 * {@link DataType#BF16} or {@link DataType#F16} in any combination and with any non-negative
 * strides; scale and shift (and their gradients) have exactly the normalized shape, contiguous, in
 * any of the three types; statistics are F32 and contiguous. {@link DataType#S8} is only the destination of
 * {@link #forwardQuantized(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor) forwardQuantized}.
 * The residual add fused with the norm ({@link #forwardResidual}) runs on oneDNN as its binary add followed by
 * its norm ({@code docs/rmsnorm.md} says where each backend runs it); int8 output runs in the Java kernels on
 * every backend. With {@link Backend#ONEDNN} all memory must be native (off-heap); the other backends also take
 * heap segments, and run a tensor on one through a copy in native memory (copied back if written), in the Java
 * kernels ({@link Backend#AUTO} sends every call with a tensor on the heap there): allocate tensors in an {@link
 * java.lang.foreign.Arena} where speed matters. A call whose heap tensors need more than 64 MiB of copies runs in
 * parts of rows, and allocates a few kilobytes of views per call.
 *
 * <p>Every argument is checked before any native call: data type, shapes, memory that is too
 * small, freed, owned by another thread's confined arena or read-only (for outputs), and
 * destinations that partially overlap an input. Failures are {@link IllegalArgumentException}s or
 * {@link IllegalStateException}s whose messages name the argument and the problem, and change
 * nothing.
 *
 * <p>Thread safety: a {@code LayerNorm} may be used by many threads at once. {@link #close()}
 * waits for calls in flight to return, and calls that start after it throw
 * {@link IllegalStateException}. A {@code LayerNorm} that is never closed releases its native
 * resources when it becomes unreachable.
 *
 * <p>Memory lifetime: a call uses its tensors' memory only until it returns, and holds their shared arenas
 * open meanwhile: another thread's {@code close()} throws {@link IllegalStateException} until the call
 * returns (retry it), and a call on memory whose arena is closed throws {@code IllegalStateException},
 * on every backend. Memory that no arena owns (a segment made with
 * {@link MemorySegment#reinterpret(long)} from a raw address) must stay allocated until the call returns.
 *
 * <p>Guide: {@code docs/api.md}; training: {@code docs/training.md}.
 */
public final class LayerNorm implements AutoCloseable {
    private static final Cleaner CLEANER = Cleaner.create();

    static {
        // dev.panorm.pipeline checks a chunked run whole, as a call would (see LayerNormAccess).
        // Only checks: a closed LayerNorm is refused by the first chunk's call, before anything is written.
        LayerNormAccess.register((norm, src, dst, scale, shift, mean, variance) ->
                norm.checks.forwardRun(src, dst, scale, shift, mean, variance));
    }

    private final LayerNormConfig config;
    private final Backend backend;
    private final CallChecks checks;
    private final State state;
    private final Cleaner.Cleanable cleanable;

    /**
     * Per thread, the backend of its most recent call (a one-element array, so updating it allocates nothing).
     * {@link #lastBackend()} is per thread and per operation, so each call looks this up and stores into it;
     * an int record, or a store only when the backend changes, measured no cheaper.
     */
    private final ThreadLocal<Backend[]> lastBackend = ThreadLocal.withInitial(() -> new Backend[1]);

    private LayerNorm(LayerNormConfig config, Backend backend, Kernel kernel, FusedKernel fused, CallCounter calls) {
        this.config = config;
        this.backend = backend;
        this.checks = new CallChecks(config, backend);
        this.state = new State(kernel, fused, calls);
        this.cleanable = CLEANER.register(this, state);
    }

    /**
     * A layer normalization whose backend is chosen per call signature ({@link Backend#AUTO}).
     *
     * @param config what to compute
     * @return a new operation; close it when done
     */
    public static LayerNorm create(LayerNormConfig config) {
        return create(config, Backend.AUTO);
    }

    /**
     * A layer normalization computed by {@code backend}, with threads chosen per shape.
     *
     * @param config what to compute
     * @param backend who computes it
     * @return a new operation; close it when done
     * @throws NativeLibraryException if {@code backend} is {@link Backend#ONEDNN} and oneDNN cannot be loaded
     */
    public static LayerNorm create(LayerNormConfig config, Backend backend) {
        return create(config, backend, 0);
    }

    /**
     * A layer normalization computed by {@code backend}, each call using at most {@code threads} threads:
     * oneDNN's OpenMP threads, or the threads the Java kernels split the rows of a large tensor across. Neither
     * takes more than it has: OpenMP's thread count ({@code OMP_NUM_THREADS}, default all cores) for oneDNN, the
     * cores for the Java kernels.
     *
     * @param config what to compute
     * @param backend who computes it
     * @param threads the most threads one call may use, or 0 to choose per shape: one thread for small
     *     tensors (where starting threads costs more than it saves), all cores for large ones
     * @return a new operation; close it when done
     * @throws NativeLibraryException if {@code backend} is {@link Backend#ONEDNN} and oneDNN cannot be loaded
     * @throws IllegalArgumentException if {@code threads} is negative
     */
    public static LayerNorm create(LayerNormConfig config, Backend backend, int threads) {
        Objects.requireNonNull(config, "config");
        if (threads < 0) {
            throw new IllegalArgumentException("threads must be 0 (automatic) or positive, got " + threads);
        }
        CallCounter calls = new CallCounter();
        Kernel kernel = switch (Objects.requireNonNull(backend, "backend")) {
            case AUTO -> new AutoKernel(config, threads, calls);
            case ONEDNN -> new OneDnnKernel(config, threads, calls, JavaKernels.create(config, threads));
            case JAVA -> JavaKernels.create(config, threads);
            case JAVA_SCALAR -> OwnedMemory.javaKernel(new ScalarKernel(config), config);
        };
        FusedKernel fused = switch (backend) {
            case AUTO -> new AutoFusedKernel(config, threads, (AutoKernel) kernel);
            case ONEDNN -> new OneDnnFusedKernel((OneDnnKernel) kernel, JavaKernels.createFused(config, threads));
            case JAVA -> JavaKernels.createFused(config, threads);
            case JAVA_SCALAR -> OwnedMemory.javaFused(new FusedScalarKernel(config), config);
        };
        return new LayerNorm(config, backend, kernel, fused, calls);
    }

    /** The kernel behind this operation; tests hold it to watch its native resources after the operation is gone. */
    Kernel kernel() {
        return state.kernel;
    }

    /** {@return what this operation computes} */
    public LayerNormConfig config() {
        return config;
    }

    /** {@return the backend this operation was created with; {@link #lastBackend()} tells which one ran a call} */
    public Backend backend() {
        return backend;
    }

    /**
     * Forward pass without scale or shift; only for a configuration that has neither
     * ({@link LayerNormConfig#withoutAffine()}).
     *
     * @param src {@code [..., normalized shape]}, read
     * @param dst the shape of {@code src}, written; {@code src} itself for in place
     * @throws IllegalArgumentException if the configuration has a scale or shift, or as
     *     {@link #forward(Tensor, Tensor, Tensor, Tensor)} throws it
     * @throws IllegalStateException as {@link #forward(Tensor, Tensor, Tensor, Tensor)} throws it
     * @see #forward(Tensor, Tensor, Tensor, Tensor)
     */
    public void forward(Tensor src, Tensor dst) {
        forward(src, dst, null, null);
    }

    /**
     * Forward pass (inference): normalizes every row of {@code src} over its normalized axes into
     * {@code dst}. {@code dst} may be {@code src} itself (in place) but must not partially overlap it; tensors whose
     * rows interleave in one buffer without sharing an element (x in the first half of each row, y in the second)
     * do not overlap.
     *
     * @param src {@code [..., normalized shape]}, any of the three data types and any strides, read; any
     *     number of rows, including 0 (then nothing is computed)
     * @param dst the shape of {@code src}, any of the three data types, written; writable, with one element
     *     per index ({@link Tensor#isNonOverlapping()}), disjoint from {@code scale} and {@code shift}
     * @param scale gamma: the normalized shape, contiguous, read, if the configuration has a scale, else
     *     {@code null}
     * @param shift beta: the normalized shape, contiguous, read, if the configuration has a shift, else
     *     {@code null}
     * @throws IllegalArgumentException if an argument does not fit, naming which and why
     * @throws IllegalStateException if this operation or a tensor's memory has been closed
     * @throws WrongThreadException if a tensor's memory is confined to another thread, as the JDK throws it
     * @throws OneDnnException if oneDNN fails
     */
    public void forward(Tensor src, Tensor dst, Tensor scale, Tensor shift) {
        runForward(Pass.FORWARD_INFERENCE, src, dst, scale, shift, null, null);
    }

    /**
     * Forward pass for training: as {@link #forward(Tensor, Tensor, Tensor, Tensor)}, and also writes each
     * row's mean and biased variance (divided by C, as oneDNN stores it; PyTorch keeps
     * {@code rstd = 1/sqrt(var + eps)} instead) for {@link #backward}.
     *
     * <p>For RMS normalization there is no mean: pass {@code null}, and {@code variance} receives
     * each row's mean square.
     *
     * @param src as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * @param dst as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * @param scale as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * @param shift as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * @param mean F32, contiguous, the shape of {@code src} without its normalized axes (one value per row),
     *     written; {@code null} for RMS normalization
     * @param variance F32, contiguous, the same shape, written
     * @throws IllegalArgumentException if an argument does not fit, or an output overlaps another tensor
     * @throws IllegalStateException if this operation or a tensor's memory has been closed
     * @throws WrongThreadException if a tensor's memory is confined to another thread, as the JDK throws it
     * @throws OneDnnException if oneDNN fails
     */
    public void forwardTraining(Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance) {
        runForward(Pass.FORWARD_TRAINING, src, dst, scale, shift, mean, variance);
    }

    /**
     * Forward pass with statistics given by the caller (oneDNN's {@code use_global_stats}): each row is
     * normalized with {@code mean[row]} and {@code variance[row]} instead of its own.
     *
     * @param src as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * @param dst as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}, and disjoint from the statistics
     * @param scale as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * @param shift as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * @param mean F32, contiguous, one finite value per row (the shape of {@code src} without its normalized
     *     axes), read; {@code null} for RMS normalization
     * @param variance F32, contiguous, one finite value {@code >= 0} per row (the mean square for RMS
     *     normalization), read
     * @throws IllegalArgumentException if an argument does not fit or a statistic is NaN, infinite or a negative
     * variance
     * @throws IllegalStateException if this operation or a tensor's memory has been closed
     * @throws WrongThreadException if a tensor's memory is confined to another thread, as the JDK throws it
     * @throws OneDnnException if oneDNN fails
     */
    public void forwardWithGlobalStatistics(
            Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance) {
        runForward(Pass.FORWARD_GLOBAL, src, dst, scale, shift, mean, variance);
    }

    /**
     * Backward pass: the gradients of a loss with respect to the input and, where configured, the scale and
     * shift, given the gradient {@code diffDst} with respect to the output of {@link #forwardTraining}.
     * The statistics are those {@code forwardTraining} wrote; the gradient flows through them.
     * {@code diffScale} and {@code diffShift} are overwritten with the sums over all rows.
     * {@code diffSrc} may be {@code diffDst} itself (in place). Non-finite values propagate as in PyTorch:
     * a row whose statistics or {@code diffDst} hold NaN or Inf gets a NaN {@code diffSrc} row and makes
     * the affected {@code diffScale}/{@code diffShift} channels NaN ({@code docs/api.md}, "NaN and infinity").
     *
     * @param diffDst dLoss/dOutput: the shape of {@code src}, any of the three data types and any strides, read
     * @param src the forward pass's input: {@code [..., normalized shape]}, any data type and strides, read;
     *     any number of rows, including 0 (then {@code diffScale} and {@code diffShift} are zeroed)
     * @param mean from {@link #forwardTraining}: F32, contiguous, one value per row, read; {@code null} for RMS
     *     normalization
     * @param variance from {@link #forwardTraining}: F32, contiguous, one value per row, read
     * @param scale gamma, as passed forward: the normalized shape, contiguous, read, if the configuration has a
     *     scale, else {@code null}
     * @param diffSrc dLoss/dInput: the shape of {@code src}, any data type, written; one element per index,
     *     {@code diffDst} itself or disjoint from it and from every other tensor
     * @param diffScale dLoss/dScale: the normalized shape, contiguous, written, if the configuration has a
     *     scale, else {@code null}
     * @param diffShift dLoss/dShift: the normalized shape, contiguous, written, if the configuration has a
     *     shift, else {@code null}
     * @throws IllegalArgumentException if an argument does not fit, or outputs overlap inputs
     * @throws IllegalStateException if this operation or a tensor's memory has been closed
     * @throws WrongThreadException if a tensor's memory is confined to another thread, as the JDK throws it
     * @throws OneDnnException if oneDNN fails
     */
    public void backward(
            Tensor diffDst,
            Tensor src,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift) {
        runBackward(Pass.BACKWARD, diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift);
    }

    /**
     * Backward pass for the input only, cheaper when the scale and shift are frozen: {@link #backward}
     * without {@code diffScale} and {@code diffShift}.
     *
     * @param diffDst dLoss/dOutput, as for {@link #backward}
     * @param src the forward pass's input, as for {@link #backward}
     * @param mean from {@link #forwardTraining}, as for {@link #backward}
     * @param variance from {@link #forwardTraining}, as for {@link #backward}
     * @param scale gamma if the configuration has a scale, else {@code null}, as for {@link #backward}
     * @param diffSrc dLoss/dInput, written, as for {@link #backward}
     * @see #backward
     */
    public void backwardData(Tensor diffDst, Tensor src, Tensor mean, Tensor variance, Tensor scale, Tensor diffSrc) {
        runBackward(Pass.BACKWARD_DATA, diffDst, src, mean, variance, scale, diffSrc, null, null);
    }

    /**
     * Backward pass of {@link #forwardWithGlobalStatistics}: the statistics are constants, so
     * {@code diffSrc = diffDst * scale / sqrt(variance + eps)}. As in {@link #forwardWithGlobalStatistics},
     * the statistics must be finite and variances non-negative.
     *
     * @param diffDst dLoss/dOutput, as for {@link #backward}
     * @param src the forward pass's input, as for {@link #backward}
     * @param mean the statistics given forward, as for {@link #forwardWithGlobalStatistics}
     * @param variance the statistics given forward, as for {@link #forwardWithGlobalStatistics}
     * @param scale gamma if the configuration has a scale, else {@code null}, as for {@link #backward}
     * @param diffSrc dLoss/dInput, written, as for {@link #backward}
     * @param diffScale dLoss/dScale, written, as for {@link #backward}
     * @param diffShift dLoss/dShift, written, as for {@link #backward}
     * @see #backward
     */
    public void backwardWithGlobalStatistics(
            Tensor diffDst,
            Tensor src,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift) {
        runBackward(Pass.BACKWARD_GLOBAL, diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift);
    }

    /**
     * Backward pass of {@link #forwardWithGlobalStatistics} for the input only.
     *
     * @param diffDst dLoss/dOutput, as for {@link #backward}
     * @param src the forward pass's input, as for {@link #backward}
     * @param mean the statistics given forward, as for {@link #forwardWithGlobalStatistics}
     * @param variance the statistics given forward, as for {@link #forwardWithGlobalStatistics}
     * @param scale gamma if the configuration has a scale, else {@code null}, as for {@link #backward}
     * @param diffSrc dLoss/dInput, written, as for {@link #backward}
     * @see #backwardWithGlobalStatistics
     */
    public void backwardDataWithGlobalStatistics(
            Tensor diffDst, Tensor src, Tensor mean, Tensor variance, Tensor scale, Tensor diffSrc) {
        runBackward(Pass.BACKWARD_DATA_GLOBAL, diffDst, src, mean, variance, scale, diffSrc, null, null);
    }

    /**
     * Residual add fused with the norm (forward inference), as a transformer block does it:
     * {@code s = (src + residual) + bias}, each addition rounded to float32, written to {@code sum} when it is
     * given (rounded to its type), and {@code dst = norm(s)} with {@code s} as stored. One pass over memory
     * instead of an add and a norm. Pre-LN blocks keep {@code sum} as the next residual; post-LN blocks pass
     * {@code null}. ONNX Runtime calls this SkipLayerNormalization.
     *
     * <p>In place: {@code sum} may be {@code src} or {@code residual} itself, and {@code dst} may be {@code src} or
     * {@code residual} itself but not {@code sum}; otherwise outputs must be disjoint from every other tensor.
     *
     * @param src x: {@code [..., normalized shape]}, any floating-point type and strides, read
     * @param residual r: the shape and data type of {@code src}, any strides, read
     * @param bias added to every row before the norm (SkipLayerNormalization's bias, not PyTorch's
     *     {@code LayerNorm.bias}, which is {@code shift} here): the normalized shape, contiguous, read; or {@code null}
     * @param sum s: the shape and data type of {@code src}, written; or {@code null} not to keep it
     * @param dst the shape of {@code src}, any floating-point type, written
     * @param scale gamma, as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * @param shift beta, as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * @throws IllegalArgumentException if an argument does not fit (such as a residual of another shape or
     *     data type, or overlapping outputs), naming which and why; nothing is written then
     * @throws IllegalStateException if this operation or a tensor's memory has been closed
     * @throws WrongThreadException if a tensor's memory is confined to another thread, as the JDK throws it
     * @throws OneDnnException if oneDNN fails
     */
    public void forwardResidual(
            Tensor src, Tensor residual, Tensor bias, Tensor sum, Tensor dst, Tensor scale, Tensor shift) {
        runFused(
                Pass.FORWARD_INFERENCE,
                src,
                Objects.requireNonNull(residual, "residual"),
                bias,
                sum,
                dst,
                scale,
                shift,
                null,
                null,
                false,
                null,
                0);
    }

    /**
     * {@link #forwardResidual} for training: also writes each row's statistics of {@code s}, as
     * {@link #forwardTraining} does, for {@link #backwardResidual}. {@code sum} is required: the backward pass
     * reads it.
     *
     * @param src as for {@link #forwardResidual}
     * @param residual as for {@link #forwardResidual}
     * @param bias as for {@link #forwardResidual}
     * @param sum s, written; not {@code null}
     * @param dst as for {@link #forwardResidual}
     * @param scale as for {@link #forwardResidual}
     * @param shift as for {@link #forwardResidual}
     * @param mean as for {@link #forwardTraining}: one value per row, written; {@code null} for RMS normalization
     * @param variance as for {@link #forwardTraining}, written
     * @throws IllegalArgumentException if an argument does not fit, naming which and why
     * @throws IllegalStateException if this operation or a tensor's memory has been closed
     * @throws WrongThreadException if a tensor's memory is confined to another thread, as the JDK throws it
     * @throws OneDnnException if oneDNN fails
     */
    public void forwardResidualTraining(
            Tensor src,
            Tensor residual,
            Tensor bias,
            Tensor sum,
            Tensor dst,
            Tensor scale,
            Tensor shift,
            Tensor mean,
            Tensor variance) {
        runFused(
                Pass.FORWARD_TRAINING,
                src,
                Objects.requireNonNull(residual, "residual"),
                bias,
                sum,
                dst,
                scale,
                shift,
                mean,
                variance,
                false,
                null,
                0);
    }

    /**
     * Backward pass of {@link #forwardResidualTraining}: {@code diffSrc = ds}, the gradient with respect to
     * {@code s}, which is also the gradient for {@code src} and for {@code residual} (and, summed over rows,
     * for the bias): the norm's backward pass of {@code diffDst} (as {@link #backward} computes it on
     * {@code sum}) plus {@code diffSum}, the gradient that reaches {@code s} through its other use (the next
     * residual), when there is one. {@code diffScale} and {@code diffShift} are overwritten with the sums over
     * all rows. {@code diffSrc} may be {@code diffDst} or {@code diffSum} itself (in place).
     *
     * @param diffDst dLoss/dOutput: the shape of {@code sum}, any floating-point type and strides, read
     * @param diffSum dLoss/ds from the other uses of {@code s}: the shape of {@code sum}, read; or {@code null}
     * @param sum s, as {@link #forwardResidualTraining} wrote it, read
     * @param mean from {@link #forwardResidualTraining}, as for {@link #backward}; {@code null} for RMS
     * @param variance from {@link #forwardResidualTraining}, as for {@link #backward}
     * @param scale gamma, as for {@link #backward}
     * @param diffSrc dLoss/ds = dLoss/dsrc = dLoss/dresidual: the shape of {@code sum}, written
     * @param diffScale dLoss/dScale, written, as for {@link #backward}
     * @param diffShift dLoss/dShift, written, as for {@link #backward}
     * @throws IllegalArgumentException if an argument does not fit (an S8 tensor among them), or outputs
     *     overlap inputs
     * @throws IllegalStateException if this operation or a tensor's memory has been closed
     * @throws WrongThreadException if a tensor's memory is confined to another thread, as the JDK throws it
     * @throws OneDnnException if oneDNN fails
     */
    public void backwardResidual(
            Tensor diffDst,
            Tensor diffSum,
            Tensor sum,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift) {
        long epoch = state.enter();
        try {
            long rows =
                    checks.backwardFused(diffDst, diffSum, sum, mean, variance, scale, diffSrc, diffScale, diffShift);
            if (rows > 0) {
                lastBackend.get()[0] = state.fused.backward(
                        diffDst, diffSum, sum, mean, variance, scale, diffSrc, diffScale, diffShift, rows);
            } else {
                zero(diffScale);
                zero(diffShift);
            }
        } finally {
            state.exit(epoch);
            Reference.reachabilityFence(diffDst);
            Reference.reachabilityFence(diffSum);
            Reference.reachabilityFence(sum);
            Reference.reachabilityFence(mean);
            Reference.reachabilityFence(variance);
            Reference.reachabilityFence(scale);
            Reference.reachabilityFence(diffSrc);
            Reference.reachabilityFence(diffScale);
            Reference.reachabilityFence(diffShift);
        }
    }

    /**
     * Forward pass into int8 with per-row (per-token) dynamic scales, optionally fused with the residual add:
     * {@code y} as {@link #forwardResidual} computes it (or as {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * when {@code residual} is null), then for each row its quantization step {@code step = max|y| / 127} into
     * {@code dstScales} and {@code q = round_half_even(y / step)}, saturated to {@code [-127, 127]}, into
     * {@code dst}; so {@code q * step} is within {@code step / 2} of {@code y}. (The division is a multiplication
     * by the float {@code 1 / step}, which can differ only for a value within an ulp of a half-integer; a division
     * where {@code 1 / step} overflows, for steps of 2^-128 or less.) A row of zeros, or one whose
     * {@code max|y| / 127} underflows to 0, gets step 0 and zeros; one holding NaN or an infinity gets a NaN or
     * infinite step and zeros. (The quantization step is what int8 libraries call the scale; {@code scale} here is
     * gamma.) What int8
     * pipelines feed their next matrix multiplication. Every backend computes it in Java (oneDNN 3.8.1 has no
     * per-row dynamic quantization for layer normalization).
     *
     * @param src as for {@link #forwardResidual}
     * @param residual as for {@link #forwardResidual}, or {@code null} for the norm alone
     * @param bias as for {@link #forwardResidual}; {@code null} without a residual
     * @param sum as for {@link #forwardResidual}; {@code null} without a residual
     * @param dst {@link DataType#S8}, the shape of {@code src}, any strides, written; disjoint from every other
     *     tensor
     * @param scale gamma, as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * @param shift beta, as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * @param dstScales F32, contiguous, one value per row (the shape of {@code src} without its normalized axes),
     *     written
     * @throws IllegalArgumentException if an argument does not fit (such as {@code dstScales} of the wrong length
     *     or a float {@code dst}), naming which and why; nothing is written then
     * @throws IllegalStateException if this operation or a tensor's memory has been closed
     * @throws WrongThreadException if a tensor's memory is confined to another thread, as the JDK throws it
     */
    public void forwardQuantized(
            Tensor src,
            Tensor residual,
            Tensor bias,
            Tensor sum,
            Tensor dst,
            Tensor scale,
            Tensor shift,
            Tensor dstScales) {
        runFused(
                Pass.FORWARD_INFERENCE,
                src,
                residual,
                bias,
                sum,
                dst,
                scale,
                shift,
                null,
                null,
                true,
                Objects.requireNonNull(dstScales, "dstScales"),
                0);
    }

    /**
     * Forward pass into int8 with one static scale for the whole tensor (calibrated beforehand):
     * {@code q = round_half_even(y / dstScale)} saturated to {@code [-127, 127]}, otherwise as
     * {@link #forwardQuantized(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)}.
     *
     * @param src as for {@link #forwardResidual}
     * @param residual as for {@link #forwardResidual}, or {@code null} for the norm alone
     * @param bias as for {@link #forwardResidual}; {@code null} without a residual
     * @param sum as for {@link #forwardResidual}; {@code null} without a residual
     * @param dst {@link DataType#S8}, as for the dynamic variant
     * @param scale gamma, as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * @param shift beta, as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * @param dstScale the quantization step: finite and positive, with a float reciprocal (above 2^-128)
     * @throws IllegalArgumentException if an argument does not fit, naming which and why
     * @throws IllegalStateException if this operation or a tensor's memory has been closed
     * @throws WrongThreadException if a tensor's memory is confined to another thread, as the JDK throws it
     */
    public void forwardQuantized(
            Tensor src,
            Tensor residual,
            Tensor bias,
            Tensor sum,
            Tensor dst,
            Tensor scale,
            Tensor shift,
            float dstScale) {
        runFused(Pass.FORWARD_INFERENCE, src, residual, bias, sum, dst, scale, shift, null, null, true, null, dstScale);
    }

    private void runFused(
            Pass pass,
            Tensor src,
            Tensor residual,
            Tensor bias,
            Tensor sum,
            Tensor dst,
            Tensor scale,
            Tensor shift,
            Tensor mean,
            Tensor variance,
            boolean quantized,
            Tensor dstScales,
            float dstScale) {
        long epoch = state.enter();
        try {
            long rows = checks.forwardFused(
                    pass, src, residual, bias, sum, dst, scale, shift, mean, variance, quantized, dstScales, dstScale);
            if (rows > 0) {
                lastBackend.get()[0] = state.fused.forward(
                        pass, src, residual, bias, sum, dst, scale, shift, mean, variance, dstScales, dstScale, rows);
            }
        } finally {
            state.exit(epoch);
            Reference.reachabilityFence(src);
            Reference.reachabilityFence(residual);
            Reference.reachabilityFence(bias);
            Reference.reachabilityFence(sum);
            Reference.reachabilityFence(dst);
            Reference.reachabilityFence(scale);
            Reference.reachabilityFence(shift);
            Reference.reachabilityFence(mean);
            Reference.reachabilityFence(variance);
            Reference.reachabilityFence(dstScales);
        }
    }

    private void runForward(
            Pass pass, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance) {
        long epoch = state.enter();
        try {
            long rows = checks.forward(pass, src, dst, scale, shift, mean, variance);
            if (rows > 0) {
                lastBackend.get()[0] = state.kernel.forward(pass, src, dst, scale, shift, mean, variance, rows);
            }
        } finally {
            state.exit(epoch);
            // Keep automatic arenas from freeing the memory while native code may still use it.
            Reference.reachabilityFence(src);
            Reference.reachabilityFence(dst);
            Reference.reachabilityFence(scale);
            Reference.reachabilityFence(shift);
            Reference.reachabilityFence(mean);
            Reference.reachabilityFence(variance);
        }
    }

    private void runBackward(
            Pass pass,
            Tensor diffDst,
            Tensor src,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift) {
        long epoch = state.enter();
        try {
            long rows = checks.backward(pass, diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift);
            if (rows > 0) {
                lastBackend.get()[0] = state.kernel.backward(
                        pass, diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift, rows);
            } else {
                zero(diffScale);
                zero(diffShift);
            }
        } finally {
            state.exit(epoch);
            Reference.reachabilityFence(diffDst);
            Reference.reachabilityFence(src);
            Reference.reachabilityFence(mean);
            Reference.reachabilityFence(variance);
            Reference.reachabilityFence(scale);
            Reference.reachabilityFence(diffSrc);
            Reference.reachabilityFence(diffScale);
            Reference.reachabilityFence(diffShift);
        }
    }

    /** With no rows, the parameter gradients are empty sums. */
    private static void zero(Tensor tensor) {
        if (tensor != null) {
            tensor.segment().asSlice(0, tensor.byteExtent()).fill((byte) 0);
        }
    }

    /**
     * The backend whose kernel computed the current thread's most recent call on this operation:
     * {@link Backend#ONEDNN}, {@link Backend#JAVA} (the Vector API kernels) or {@link Backend#JAVA_SCALAR},
     * never {@link Backend#AUTO}. A oneDNN operation reports a Java backend for a call whose data types or
     * layout oneDNN cannot take (see {@code docs/data-types.md}), a Java one reports {@code JAVA_SCALAR} where the vector
     * kernels hand a tensor to the scalar ones.
     *
     * @return the backend, or null before the thread's first call with at least one row
     */
    public Backend lastBackend() {
        return lastBackend.get()[0];
    }

    /**
     * The name of the implementation that would compute a forward inference on these tensors, such as
     * {@code jit:uni} for oneDNN's JIT kernel, {@code java:vector 16x32} for the Vector API kernel, or
     * {@code java:scalar} (with oneDNN's reason when it cannot take them, for instance when it offers only its
     * slow reference code, which panorm does not use). For oneDNN this builds and
     * caches the primitive. The arguments are checked as {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * checks them; nothing is computed. For {@link Backend#AUTO} it names the model's choice, which the call
     * takes in a warm process; a process's first calls may run elsewhere meanwhile (the two passing exceptions
     * that {@link Backend#AUTO} describes), and {@link #lastBackend()} says where a call ran.
     *
     * @param src as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * @param dst as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}; not written
     * @param scale as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * @param shift as for {@link #forward(Tensor, Tensor, Tensor, Tensor)}
     * @return the implementation's name, prefixed with {@code auto: } for {@link Backend#AUTO};
     *     {@code none (no rows)} when {@code src} has no rows
     * @throws IllegalArgumentException if an argument does not fit, as {@code forward} would throw
     * @throws IllegalStateException if this operation or a tensor's memory has been closed
     * @throws OneDnnException if a oneDNN call fails
     */
    public String implementation(Tensor src, Tensor dst, Tensor scale, Tensor shift) {
        long epoch = state.enter();
        try {
            long rows = checks.forward(Pass.FORWARD_INFERENCE, src, dst, scale, shift, null, null);
            return rows == 0 ? "none (no rows)" : state.kernel.implementation(src, dst, scale, shift, rows);
        } finally {
            state.exit(epoch);
        }
    }

    /**
     * Releases oneDNN's plans and primitives before it returns. Waits for calls in flight on other threads to
     * return; later calls throw {@link IllegalStateException}. Closing twice does nothing. The Java kernels'
     * scratch rows (a few rows of the normalized size for each thread that called this operation) are in
     * automatic arenas, so that a thread that ends frees its own: the garbage collector frees them.
     */
    @Override
    public void close() {
        cleanable.clean(); // runs State.run once: a concurrent second close returns here at once,
        state.awaitClosed(); // so it waits for the first to finish
    }

    /** Calls in flight on any thread (for tests). */
    int callsInFlight() {
        return state.calls.inFlight();
    }

    /** The count of calls in flight (for tests that stand in for other callers). */
    CallCounter calls() {
        return state.calls;
    }

    @Override
    public String toString() {
        return "LayerNorm[" + config + ", " + backend + "]";
    }

    /**
     * Counts calls in flight so that closing never frees native memory under a running call. Also the
     * cleaning action, so it must not refer to the {@code LayerNorm}.
     */
    private static final class State implements Runnable {
        final Kernel kernel;
        final FusedKernel fused;
        private final CallCounter calls;
        private volatile boolean closed;
        /** Counted down once {@link #run} has freed everything. */
        private final CountDownLatch freed = new CountDownLatch(1);

        State(Kernel kernel, FusedKernel fused, CallCounter calls) {
            this.kernel = kernel;
            this.fused = fused;
            this.calls = calls;
        }

        /** Counts a call in; returns its epoch, for {@link #exit}. */
        long enter() {
            long epoch = calls.enter();
            if (closed) {
                exit(epoch);
                throw new IllegalStateException("this LayerNorm is closed");
            }
            return epoch;
        }

        void exit(long epoch) {
            calls.exit(epoch);
            if (!closed) {
                kernel.quiescent();
            }
        }

        /** Closes: refuses new calls, waits for those in flight, then frees the kernel. Runs once. */
        @Override
        public void run() {
            closed = true;
            boolean interrupted = false;
            try {
                while (calls.inFlight() != 0) {
                    LockSupport.parkNanos(50_000);
                    interrupted |= Thread.interrupted(); // else parkNanos returns at once, and this loop spins
                }
                kernel.close();
                fused.close();
            } finally {
                freed.countDown();
                if (interrupted) {
                    Thread.currentThread().interrupt();
                }
            }
        }

        /** Waits until {@link #run} has freed everything, on whichever thread it runs; keeps an interrupt. */
        void awaitClosed() {
            boolean interrupted = false;
            while (true) {
                try {
                    freed.await();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
