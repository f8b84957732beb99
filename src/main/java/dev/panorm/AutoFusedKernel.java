package dev.panorm;

/**
 * {@link Backend#AUTO} for the fused operations: per call, the Java fused kernel or oneDNN's composition
 * ({@link OneDnnFusedKernel}: a binary add, then the norm), by two rules measured in {@code docs/benchmarks.md}
 * ("Residual add and int8 output"):
 *
 * <ul>
 *   <li>Half-precision data follows the plain norm's crossovers for its type ({@link AutoModel}): Java on small
 *       calls and single rows where the model says so, oneDNN above; bf16 also goes to oneDNN above lower bounds of
 *       its own ({@link #BF16_FORWARD_JAVA_UP_TO}).</li>
 *   <li>Float32 layer normalization goes to oneDNN only where oneDNN would put more threads on the call than the
 *       Java kernel splits it into (with two cores: from 2^16 to 2^19 elements). On equal threads the Java kernel
 *       wins at every size measured, since it makes one pass over memory where the composition makes two; and
 *       below 2^16 elements a second thread costs more than it saves.</li>
 * </ul>
 *
 * RMS and precise statistics stay in Java: oneDNN's compositions for them compute statistics in scalar Java
 * first. Whatever oneDNN cannot take runs in Java as a whole call, and so does every call with a tensor on the Java
 * heap.
 */
final class AutoFusedKernel implements FusedKernel {
    private final LayerNormConfig config;
    private final FusedKernel java;
    /** Null when oneDNN cannot be loaded. */
    private final OneDnnKernel oneDnnKernel;

    private final OneDnnFusedKernel oneDnn;
    /** How the Java kernel splits a call: the same threads as {@link #java}. */
    private final RowSplitter splitter;
    /**
     * bf16 calls above these many elements (single rows aside) go to oneDNN, below the plain norm's crossovers: the
     * plain kernel reads bf16 rows in place ({@link Bf16Pairs}), the fused kernel widens them into float rows first.
     * Java's fused forward beat oneDNN's composition at 8x768 and lost from 16x768 and 2x4096; its backward won up
     * to 64x768 and 8x4096 and lost at 16x4096 (docs/benchmarks.md, "Fused half precision through heap rows").
     * float16 calls follow the plain crossovers, where the fused kernel measured alike.
     */
    static final long BF16_FORWARD_JAVA_UP_TO = 8 * 768;

    static final long BF16_BACKWARD_JAVA_UP_TO = 64 * 768;

    /**
     * float32 calls of at most this many elements stay in Java even where oneDNN would run more threads: its
     * composition (two primitives) was measured slower there, when oneDNN still ran one thread up to this size.
     */
    static final long COMPOSITION_ABOVE = 1 << 16;

    /** The plain norm's AUTO, whose model routes half precision. */
    private final AutoKernel auto;

    AutoFusedKernel(LayerNormConfig config, int threads, AutoKernel auto) {
        this.config = config;
        this.auto = auto;
        this.java = JavaKernels.createFused(config, threads);
        this.oneDnnKernel = auto.oneDnn();
        this.oneDnn = oneDnnKernel == null ? null : new OneDnnFusedKernel(oneDnnKernel, java);
        this.splitter = new RowSplitter(threads);
    }

    /** Whether a call on these rows of {@code data}'s type goes to oneDNN by the model. */
    private boolean toOneDnn(Pass pass, Tensor data, long rows) {
        if (oneDnn == null) {
            return false;
        }
        if (data.dataType() != DataType.F32) {
            long limit = pass.forward ? BF16_FORWARD_JAVA_UP_TO : BF16_BACKWARD_JAVA_UP_TO;
            if (data.dataType() == DataType.BF16 && rows > 1 && rows * config.normalizedSize() > limit) {
                return true;
            }
            return !auto.modelPrefersJava(pass, data);
        }
        if (config.rms() || config.preciseStatistics()) {
            return false;
        }
        long elements = rows * config.normalizedSize();
        return elements > COMPOSITION_ABOVE
                && oneDnnKernel.threadsFor(pass, DataType.F32, rows, elements) > splitter.threads(rows, elements);
    }

    @Override
    public Backend forward(
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
            Tensor dstScales,
            float dstScale,
            long rows) {
        boolean heap = OwnedMemory.onHeap(src, residual, bias, sum, dst, scale, shift, mean, variance, dstScales, null);
        FusedKernel kernel = !heap && toOneDnn(pass, src, rows) ? oneDnn : java;
        return kernel.forward(
                pass, src, residual, bias, sum, dst, scale, shift, mean, variance, dstScales, dstScale, rows);
    }

    @Override
    public Backend backward(
            Tensor diffDst,
            Tensor diffSum,
            Tensor sum,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift,
            long rows) {
        boolean heap = OwnedMemory.onHeap(
                diffDst, diffSum, sum, mean, variance, scale, diffSrc, diffScale, diffShift, null, null);
        FusedKernel kernel = !heap && toOneDnn(Pass.BACKWARD, sum, rows) ? oneDnn : java;
        return kernel.backward(diffDst, diffSum, sum, mean, variance, scale, diffSrc, diffScale, diffShift, rows);
    }

    @Override
    public void close() {
        java.close();
    }
}
