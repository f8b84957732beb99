package dev.panorm;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

/**
 * {@link LayerNorm}'s argument checks, made before any kernel sees a call: data types, shapes,
 * memory that is too small, freed, confined to another thread or read-only (for outputs), outputs
 * that overlap inputs, and given global statistics. Each failure is an exception whose message names
 * the argument and the problem; a call that fails here has changed nothing.
 */
final class CallChecks {
    private final LayerNormConfig config;
    private final Backend backend;

    CallChecks(LayerNormConfig config, Backend backend) {
        this.config = config;
        this.backend = backend;
    }

    /** Validates a forward call; returns the number of rows. */
    long forward(Pass pass, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance) {
        return forward(pass, "src", src, dst, scale, shift, mean, variance);
    }

    /**
     * Validates a forward run that a pipeline splits into chunks, on the whole tensors: no chunk's own call
     * sees an overlap between chunks (dst a row past src, the variances a value past the means, dst's rows on
     * one another), so the run is refused before any chunk is written. {@code src} is null for a source that
     * reads each chunk into memory of its own; dst then stands for it. Statistics, when given (training), are
     * one value per row of the tensors' {@code [rows, normalized shape]} views.
     */
    void forwardRun(Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance) {
        Pass pass = variance == null ? Pass.FORWARD_INFERENCE : Pass.FORWARD_TRAINING;
        forward(pass, src == null ? "dst" : "src", src == null ? dst : src, dst, scale, shift, mean, variance);
    }

    private long forward(
            Pass pass,
            String srcName,
            Tensor src,
            Tensor dst,
            Tensor scale,
            Tensor shift,
            Tensor mean,
            Tensor variance) {
        long rows = checkRows(srcName, src);
        checkData("dst", dst, true);
        checkSameShape("dst", dst, srcName, src);
        checkParameter("scale", scale, config.scale(), false);
        checkParameter("shift", shift, config.shift(), false);
        checkNoPartialOverlap("dst", dst, srcName, src);
        checkDisjoint("dst", dst, "scale", scale);
        checkDisjoint("dst", dst, "shift", shift);
        if (pass.usesStatistics()) {
            checkMean(mean, srcName, src, pass.writesStatistics);
            checkStatistics("variance", variance, srcName, src, pass.writesStatistics);
            if (pass.writesStatistics) {
                checkDisjointFromForwardTensors("mean", mean, srcName, src, dst, scale, shift);
                checkDisjointFromForwardTensors("variance", variance, srcName, src, dst, scale, shift);
                checkDisjoint("mean", mean, "variance", variance);
            } else {
                checkDisjoint("dst", dst, "mean", mean);
                checkDisjoint("dst", dst, "variance", variance);
                checkGlobalStatistics(mean, variance, rows);
            }
        }
        return rows;
    }

    /** Validates a backward call; returns the number of rows. */
    long backward(
            Pass pass,
            Tensor diffDst,
            Tensor src,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift) {
        return backward(pass, diffDst, "src", src, mean, variance, scale, diffSrc, diffScale, diffShift);
    }

    /** A backward call whose input is called {@code srcName} ({@code sum} for the residual pass). */
    private long backward(
            Pass pass,
            Tensor diffDst,
            String srcName,
            Tensor src,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift) {
        long rows = checkRows(srcName, src);
        checkData("diffDst", diffDst, false);
        checkSameShape("diffDst", diffDst, srcName, src);
        checkData("diffSrc", diffSrc, true);
        checkSameShape("diffSrc", diffSrc, srcName, src);
        checkMean(mean, srcName, src, false);
        checkStatistics("variance", variance, srcName, src, false);
        checkParameter("scale", scale, config.scale(), false);
        if (pass.parameterGradients) {
            checkParameter("diffScale", diffScale, config.scale(), true);
            checkParameter("diffShift", diffShift, config.shift(), true);
        }
        checkNoPartialOverlap("diffSrc", diffSrc, "diffDst", diffDst);
        checkDisjointFromBackwardInputs("diffSrc", diffSrc, srcName, src, mean, variance, scale);
        checkDisjointFromBackwardInputs("diffScale", diffScale, srcName, src, mean, variance, scale);
        checkDisjointFromBackwardInputs("diffShift", diffShift, srcName, src, mean, variance, scale);
        checkDisjoint("diffScale", diffScale, "diffDst", diffDst);
        checkDisjoint("diffShift", diffShift, "diffDst", diffDst);
        checkDisjoint("diffScale", diffScale, "diffSrc", diffSrc);
        checkDisjoint("diffShift", diffShift, "diffSrc", diffSrc);
        checkDisjoint("diffScale", diffScale, "diffShift", diffShift);
        if (pass.globalStatistics) {
            checkGlobalStatistics(mean, variance, rows);
        }
        return rows;
    }

    /**
     * Validates a fused forward call: {@code s = src + residual (+ bias)} into {@code sum} (optional), the
     * norm of {@code s} into {@code dst}, int8 when {@code quantized}, with per-row {@code dstScales} or, when
     * those are null, the static {@code dstScale}. {@code residual} is null only for a quantized call
     * without residual add, and then {@code bias} and {@code sum} are null too. Returns the number of rows.
     */
    long forwardFused(
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
        long rows = checkRows("src", src);
        if (residual != null) {
            checkData("residual", residual, false);
            checkSameShape("residual", residual, "src", src);
            checkSameType("residual", residual, src);
        } else if (bias != null || sum != null) {
            throw new IllegalArgumentException((bias != null ? "bias" : "sum") + " was passed without a residual");
        }
        if (bias != null) {
            checkData("bias", bias, false);
            if (!config.isNormalizedShape(bias) || !bias.isContiguous()) {
                throw new IllegalArgumentException("bias " + bias.describe() + " must have shape "
                        + Arrays.toString(config.normalizedShape()) + " (the normalized shape), contiguous");
            }
        }
        if (sum != null) {
            checkData("sum", sum, true);
            checkSameShape("sum", sum, "src", src);
            checkSameType("sum", sum, src);
        } else if (pass.writesStatistics) {
            throw new IllegalArgumentException("sum is null; the training pass writes it for the backward pass");
        }
        if (quantized) {
            Objects.requireNonNull(dst, "dst");
            checkMemory("dst", dst, true);
            if (dst.dataType() != DataType.S8) {
                throw new IllegalArgumentException(
                        "dst " + dst.describe() + " must be S8 for a quantized forward pass");
            }
            if (!dst.isNonOverlapping()) {
                throw new IllegalArgumentException("dst " + dst.describe()
                        + " has strides under which several indices address one element; an output needs one"
                        + " element per index");
            }
        } else {
            checkData("dst", dst, true);
        }
        checkSameShape("dst", dst, "src", src);
        checkParameter("scale", scale, config.scale(), false);
        checkParameter("shift", shift, config.shift(), false);
        if (sum != null) {
            checkNoPartialOverlap("sum", sum, "src", src);
            checkNoPartialOverlap("sum", sum, "residual", residual);
            checkDisjoint("sum", sum, "bias", bias);
            checkDisjoint("sum", sum, "scale", scale);
            checkDisjoint("sum", sum, "shift", shift);
        }
        if (quantized) { // int8 never has the layout of a float input, so "in place" is a partial overlap
            checkDisjoint("dst", dst, "src", src);
            checkDisjoint("dst", dst, "residual", residual);
        } else {
            checkNoPartialOverlap("dst", dst, "src", src);
            if (residual != null) {
                checkNoPartialOverlap("dst", dst, "residual", residual);
            }
        }
        checkDisjoint("dst", dst, "sum", sum);
        checkDisjoint("dst", dst, "bias", bias);
        checkDisjoint("dst", dst, "scale", scale);
        checkDisjoint("dst", dst, "shift", shift);
        if (pass.writesStatistics) {
            checkMean(mean, "src", src, true);
            checkStatistics("variance", variance, "src", src, true);
            checkDisjointFromFusedTensors("mean", mean, src, residual, bias, sum, dst, scale, shift);
            checkDisjointFromFusedTensors("variance", variance, src, residual, bias, sum, dst, scale, shift);
            checkDisjoint("mean", mean, "variance", variance);
        }
        if (quantized) {
            if (dstScales != null) {
                checkStatistics("dstScales", dstScales, "src", src, true);
                checkDisjointFromFusedTensors("dstScales", dstScales, src, residual, bias, sum, dst, scale, shift);
            } else if (!Quantize.isStaticScale(dstScale)) {
                throw new IllegalArgumentException("the static dstScale is " + dstScale
                        + "; it must be finite and positive, with a float reciprocal (above 2^-128)");
            }
        }
        return rows;
    }

    /**
     * Validates the residual backward pass: {@link #backward} on {@code sum}, plus the incoming gradient
     * {@code diffSum} (null: none), which {@code diffSrc} may be (in place); returns the number of rows.
     */
    long backwardFused(
            Tensor diffDst,
            Tensor diffSum,
            Tensor sum,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift) {
        long rows = backward(Pass.BACKWARD, diffDst, "sum", sum, mean, variance, scale, diffSrc, diffScale, diffShift);
        if (diffSum != null) {
            checkData("diffSum", diffSum, false);
            checkSameShape("diffSum", diffSum, "sum", sum);
            checkNoPartialOverlap("diffSrc", diffSrc, "diffSum", diffSum);
            checkDisjoint("diffScale", diffScale, "diffSum", diffSum);
            checkDisjoint("diffShift", diffShift, "diffSum", diffSum);
        }
        return rows;
    }

    private static void checkSameType(String name, Tensor tensor, Tensor src) {
        if (tensor.dataType() != src.dataType()) {
            throw new IllegalArgumentException(
                    name + " " + tensor.describe() + " must have the data type of src " + src.describe());
        }
    }

    private static void checkDisjointFromFusedTensors(
            String name,
            Tensor output,
            Tensor src,
            Tensor residual,
            Tensor bias,
            Tensor sum,
            Tensor dst,
            Tensor scale,
            Tensor shift) {
        checkDisjoint(name, output, "src", src);
        checkDisjoint(name, output, "residual", residual);
        checkDisjoint(name, output, "bias", bias);
        checkDisjoint(name, output, "sum", sum);
        checkDisjoint(name, output, "dst", dst);
        checkDisjoint(name, output, "scale", scale);
        checkDisjoint(name, output, "shift", shift);
    }

    private static void checkDisjointFromForwardTensors(
            String name, Tensor output, String srcName, Tensor src, Tensor dst, Tensor scale, Tensor shift) {
        checkDisjoint(name, output, srcName, src);
        checkDisjoint(name, output, "dst", dst);
        checkDisjoint(name, output, "scale", scale);
        checkDisjoint(name, output, "shift", shift);
    }

    private static void checkDisjointFromBackwardInputs(
            String name, Tensor output, String srcName, Tensor src, Tensor mean, Tensor variance, Tensor scale) {
        checkDisjoint(name, output, srcName, src);
        checkDisjoint(name, output, "mean", mean);
        checkDisjoint(name, output, "variance", variance);
        checkDisjoint(name, output, "scale", scale);
    }

    /** Checks the data tensor that defines the shape; returns its number of rows. */
    private long checkRows(String name, Tensor tensor) {
        checkData(name, tensor, false);
        if (!config.endsWithNormalizedShape(tensor)) {
            throw new IllegalArgumentException(name + " " + tensor.describe() + " must end with the normalized shape "
                    + Arrays.toString(config.normalizedShape())
                    + (tensor.rank() < config.normalizedAxes()
                            ? " (it has fewer axes than the " + config.normalizedAxes() + " normalized ones)"
                            : ""));
        }
        return tensor.elementCount() / config.normalizedSize();
    }

    private static void checkSameShape(String name, Tensor tensor, String otherName, Tensor other) {
        if (!tensor.hasSameShape(other)) {
            throw new IllegalArgumentException(
                    name + " " + tensor.describe() + " must have the shape of " + otherName + " " + other.describe());
        }
    }

    private void checkMean(Tensor mean, String srcName, Tensor src, boolean written) {
        if (config.rms()) {
            if (mean != null) {
                throw new IllegalArgumentException(
                        "RMS normalization has no mean; pass null for mean (variance holds " + "the mean square)");
            }
            return;
        }
        checkStatistics("mean", mean, srcName, src, written);
    }

    /** Per-row statistics: float32, contiguous, the shape of src without its normalized axes. */
    private void checkStatistics(String name, Tensor tensor, String srcName, Tensor src, boolean written) {
        if (tensor == null) {
            throw new IllegalArgumentException(name + " is null; this pass needs one value per row");
        }
        checkMemory(name, tensor, written);
        if (tensor.dataType() != DataType.F32 || !tensor.isContiguous()) {
            throw new IllegalArgumentException(name + " " + tensor.describe() + " must be F32 and contiguous");
        }
        if (!tensor.isRowShapeOf(src, config.normalizedAxes())) {
            throw new IllegalArgumentException(name + " " + tensor.describe() + " must have one value per row of "
                    + srcName + " " + src.describe() + ", that is the shape of " + srcName + " without its last "
                    + config.normalizedAxes()
                    + (config.normalizedAxes() == 1 ? " axis" : " axes"));
        }
    }

    /**
     * Global statistics, the caller's own (running estimates, say), must describe real rows: finite, with
     * variances non-negative. The statistics a backward pass gets back from forwardTraining are not read
     * here: no forward pass writes a negative variance, and NaN or infinite ones (from a row holding NaN or
     * Inf) make the backward pass propagate NaN, as in PyTorch, so a loss scaler can see the overflow.
     */
    private static void checkGlobalStatistics(Tensor mean, Tensor variance, long rows) {
        MemorySegment variances = variance.segment();
        for (long row = 0; row < rows; row++) {
            if (mean != null) {
                float m = mean.segment().getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, row);
                if (!Float.isFinite(m)) {
                    throw new IllegalArgumentException("mean[" + row + "] is " + m + "; statistics must be finite");
                }
            }
            float v = variances.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, row);
            if (!(v >= 0) || v == Float.POSITIVE_INFINITY) {
                throw new IllegalArgumentException(
                        "variance[" + row + "] is " + v + "; a variance must be finite and non-negative");
            }
        }
    }

    /** Data tensors may have any floating-point type and any strides; outputs must not overlap themselves. */
    private void checkData(String name, Tensor tensor, boolean written) {
        Objects.requireNonNull(tensor, name);
        if (!tensor.dataType().isFloatingPoint()) {
            throw new IllegalArgumentException(name + " " + tensor.describe() + " is int8: S8 is only the dst of "
                    + "forwardQuantized; every other tensor, and every tensor of a backward pass, is F32, BF16 or F16");
        }
        checkMemory(name, tensor, written);
        if (written && !tensor.isNonOverlapping()) {
            throw new IllegalArgumentException(name + " " + tensor.describe()
                    + " has strides under which several indices address one element; an output needs one"
                    + " element per index");
        }
    }

    /** A per-channel tensor (the normalized shape) that must be present exactly when the configuration has it. */
    private void checkParameter(String name, Tensor tensor, boolean configured, boolean written) {
        if (!configured) {
            if (tensor != null) {
                String flag = flag(name);
                throw new IllegalArgumentException(
                        "this LayerNorm has no " + flag + " (config " + flag + "=false) but " + name + " was passed");
            }
            return;
        }
        if (tensor == null) {
            String flag = flag(name);
            throw new IllegalArgumentException(
                    "this LayerNorm applies a " + flag + " (config " + flag + "=true) but " + name + " is null");
        }
        checkData(name, tensor, written);
        if (!config.isNormalizedShape(tensor) || !tensor.isContiguous()) {
            throw new IllegalArgumentException(name + " " + tensor.describe() + " must have shape "
                    + Arrays.toString(config.normalizedShape()) + " (the normalized shape), contiguous");
        }
    }

    /** The configuration flag behind a parameter or its gradient. */
    private static String flag(String name) {
        return name.equals("diffScale") ? "scale" : name.equals("diffShift") ? "shift" : name;
    }

    /**
     * The FFM linker's refusal of an arena that another thread closed after this call's checks, said as the checks
     * say a freed tensor (the JDK's own message is only "Already closed").
     */
    static IllegalStateException closedDuringCall(IllegalStateException refusal) {
        return new IllegalStateException(
                "a tensor's memory has been freed: another thread closed its arena during the call", refusal);
    }

    private void checkMemory(String name, Tensor tensor, boolean written) {
        MemorySegment segment = tensor.segment();
        if (!segment.scope().isAlive()) {
            throw new IllegalStateException(name + "'s memory has been freed: its arena is closed");
        }
        if (!segment.isAccessibleBy(Thread.currentThread())) {
            throw new WrongThreadException(name + "'s memory belongs to a confined arena of another thread");
        }
        if (written && segment.isReadOnly()) {
            throw new IllegalArgumentException(name + " is read-only");
        }
        if (backend == Backend.ONEDNN && !segment.isNative()) {
            throw new IllegalArgumentException(name + " is a heap segment; oneDNN needs native (off-heap) memory. "
                    + "Allocate it from an Arena, or use Backend.AUTO or Backend.JAVA");
        }
    }

    /** dst may be exactly src (in place) or disjoint from it, nothing in between. */
    private static void checkNoPartialOverlap(String outName, Tensor out, String inName, Tensor in) {
        // Overlapping segments share their backing memory, so their addresses are comparable.
        if (overlaps(out, in) && !(out.segment().address() == in.segment().address() && out.hasSameLayout(in))) {
            throw new IllegalArgumentException(outName + " partially overlaps " + inName
                    + "; pass the same tensor for in-place operation, or disjoint memory");
        }
    }

    private static void checkDisjoint(String outName, Tensor out, String inName, Tensor in) {
        if (out != null && in != null && overlaps(out, in)) {
            throw new IllegalArgumentException(outName + " overlaps " + inName + "; they must be disjoint");
        }
    }

    /**
     * Whether two tensors may share memory: their extents overlap and their rows do not interleave ({@link
     * #rowsInterleave}); after the checks, tensors that do are the same tensor (in place).
     */
    static boolean overlaps(Tensor a, Tensor b) {
        if (a.byteExtent() == 0 || b.byteExtent() == 0) {
            return false;
        }
        MemorySegment x = a.segment();
        MemorySegment y = b.segment();
        if (x.isNative() != y.isNative()) {
            return false;
        }
        // a native segment's address is where it starts in memory, a heap segment's where it starts in its array
        if (a.heapArray() != null && b.heapArray() != null) { // a read-only one does not tell its array
            if (a.heapArray() != b.heapArray()) {
                return false;
            }
        } else if (!x.isNative()) {
            return x.asSlice(0, a.byteExtent())
                    .asOverlappingSlice(y.asSlice(0, b.byteExtent()))
                    .isPresent();
        }
        long xStart = x.address();
        long yStart = y.address();
        return xStart < yStart + b.byteExtent()
                && yStart < xStart + a.byteExtent()
                && !rowsInterleave(a, b, yStart - xStart);
    }

    /**
     * Whether {@code b}, starting {@code delta} bytes after {@code a} (negative: before), lies wholly in the gaps
     * between {@code a}'s rows: both step S bytes from one index of their first axis to the next, each such row lies
     * within R bytes from its start with R at most S, and each of b's rows starts at least R_a after one of a's and
     * ends before the next (delta mod S at least R_a, and at most S - R_b). Then no element of b is one of a's, as
     * when y fills the second half of each row of a buffer whose first half is x. A sound test, not a complete one:
     * false only says it cannot tell.
     */
    private static boolean rowsInterleave(Tensor a, Tensor b, long delta) {
        if (a.rank() == 0 || b.rank() == 0) {
            return false;
        }
        long step = firstAxisStep(a);
        if (step <= 0 || step != firstAxisStep(b)) {
            return false;
        }
        long aRow = a.byteExtent() - (a.dim(0) - 1) * step; // both extents are non-zero here
        long bRow = b.byteExtent() - (b.dim(0) - 1) * step;
        long start = Math.floorMod(delta, step); // where b's rows start within a's period
        return aRow <= step && bRow <= step && start >= aRow && start + bRow <= step;
    }

    /** Bytes from one index of {@code tensor}'s first axis to the next. */
    private static long firstAxisStep(Tensor tensor) {
        return tensor.stride(0) * tensor.dataType().byteSize();
    }
}
