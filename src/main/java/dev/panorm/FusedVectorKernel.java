package dev.panorm;

import static dev.panorm.VectorKernel.FOLDS;

import dev.panorm.VectorKernel.HalfRows;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.ref.Reference;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The fused operations on the Vector API: data of any type with unit stride along the row, strided rows in
 * {@link FusedScalarKernel}. Loaded reflectively, as {@link VectorKernel} is. Calls with a bfloat16 or float16
 * tensor take {@link #halfRows} and {@link #halfBackwardRows}, through float rows; float32 calls the loops
 * described here.
 *
 * <p>Per row: one pass computes {@code s = (x + r) + bias} into {@code sum}, or into a per-thread row
 * buffer when the caller does not keep it, and the sums for the statistics along the way; the output is
 * then computed from that row, which is in cache. So x and r are read once from memory and s is never read back from it, where an
 * add followed by a norm writes s and reads it again. The statistics and the normalization are
 * {@link VectorKernel}'s (float accumulators on data shifted by an estimate of the mean, one pass for the
 * sums, a centred second one when needed), written out here again so that the two classes can change
 * independently; the same rules keep every vector in registers (see the comment above VectorKernel's
 * loops). int8 output with a dynamic scale writes y to a per-thread row buffer while it finds {@code max|y|},
 * then quantizes from there.
 */
final class FusedVectorKernel implements FusedKernel {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    /** As many bytes as {@link #SPECIES} has lanes: the int8 results of one float vector. */
    private static final VectorSpecies<Byte> BYTES =
            VectorSpecies.of(byte.class, VectorShape.forBitSize(LANES * Byte.SIZE));

    private static final VectorSpecies<Integer> INTS = IntVector.SPECIES_PREFERRED;
    /** As many bfloat16 values as {@link #SPECIES} has lanes: one float vector, widened or narrowed. */
    private static final VectorSpecies<Short> HALVES =
            VectorSpecies.of(short.class, VectorShape.forBitSize(LANES * Short.SIZE));

    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat JAVA_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /** Adding and subtracting 1.5 * 2^23 rounds a float of magnitude below 2^22 to an integer, ties to even. */
    private static final float ROUND = 0x1.8p23f;
    /** {@link #ROUND}'s bits: {@code ROUND + n} has the bits {@code ROUND_BITS + n} for whole n below 2^22. */
    private static final int ROUND_BITS = Float.floatToRawIntBits(ROUND);

    private final LayerNormConfig config;
    private final FusedScalarKernel scalar;
    private final boolean rowsFit;
    private final int c;
    private final float eps;
    private final RowSplitter splitter;
    /**
     * The plain norm's kernel, whose row loops (statistics, normalization, gradient sums), stand-in scale and
     * shift, and gradient scratch the fused passes share.
     */
    private final VectorKernel norm;
    /**
     * Per thread, where s goes when the caller does not keep it: C floats, made on the thread's first need. The float
     * and int8 forward passes keep it out of their loops unless a row's origin is far from its mean. The thread owns
     * the view its loops store through: on JDK 25 a loop that read the caller's confined segments and stored into
     * memory without an owner thread was recompiled by C2 again and again and ran about 60 times slower
     * (docs/benchmarks.md, "Segments of different arenas in one call").
     */
    private final ThreadLocal<VectorKernel.ThreadRow> rowBuffer;
    /**
     * Per thread, a row's y before a dynamic scale quantizes it: C floats, made on the thread's first need. A heap
     * array, since C2 checks a memory segment at every vector access in these loops and an array once per loop
     * (int8 64x1024: 15.3 against 12.2 us, docs/benchmarks.md).
     */
    private final ThreadLocal<float[]> yBuffer;

    FusedVectorKernel(LayerNormConfig config, int threads) {
        this.config = config;
        this.scalar = new FusedScalarKernel(config);
        this.rowsFit = config.normalizedSize() <= ScalarKernel.MAX_BACKWARD_C;
        this.c = (int) Math.min(config.normalizedSize(), ScalarKernel.MAX_BACKWARD_C);
        this.eps = (float) config.eps();
        this.splitter = new RowSplitter(threads);
        this.norm = new VectorKernel(config, threads);
        this.rowBuffer = ThreadLocal.withInitial(() -> VectorKernel.ThreadRow.of((long) c * Float.BYTES));
        this.yBuffer = ThreadLocal.withInitial(() -> new float[c <= VectorKernel.PAIRED_ROWS_MAX_C ? 2 * c : c]);
    }

    /** Unit stride along the row in native memory, any data type (null: absent): what the vector kernels take. */
    private boolean vectorizes(Tensor tensor) {
        return JavaKernels.vectorizes(config.normalizedAxes(), tensor);
    }

    private static boolean isHalf(Tensor tensor) {
        return tensor != null && (tensor.dataType() == DataType.BF16 || tensor.dataType() == DataType.F16);
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
        if (!rowsFit
                || !vectorizes(src)
                || !vectorizes(residual)
                || !vectorizes(bias)
                || !vectorizes(sum)
                || !vectorizes(dst)
                || !vectorizes(scale)
                || !vectorizes(shift)) {
            return scalar.forward(
                    pass, src, residual, bias, sum, dst, scale, shift, mean, variance, dstScales, dstScale, rows);
        }
        // residual and sum have src's type
        boolean half = isHalf(src) || isHalf(bias) || isHalf(dst) || isHalf(scale) || isHalf(shift);
        if (splitter.parts(rows, rows * c) == 1) {
            if (half) {
                HalfRows scratch = norm.takeHalfRows();
                try {
                    halfRows(
                            pass, src, residual, bias, sum, dst, scale, shift, mean, variance, dstScales, dstScale,
                            scratch, 0, rows);
                } finally {
                    norm.returnHalfRows(scratch);
                }
            } else if (dst.dataType() == DataType.S8) {
                quantizedRows(src, residual, bias, sum, dst, scale, shift, dstScales, dstScale, 0, rows);
            } else {
                forwardRows(pass, src, residual, bias, sum, dst, scale, shift, mean, variance, 0, rows);
            }
            return Backend.JAVA;
        }
        HalfRows[] scratch = new HalfRows[half ? splitter.parts(rows, rows * c) : 0];
        try {
            for (int p = 0; p < scratch.length; p++) {
                scratch[p] = norm.takeHalfRows();
            }
            splitter.run(rows, rows * c, (from, to, part) -> {
                Tensor x = VectorKernel.onThisThread(src);
                Tensor r = VectorKernel.onThisThread(residual);
                Tensor b = VectorKernel.onThisThread(bias);
                Tensor s = VectorKernel.onThisThread(sum);
                Tensor y = VectorKernel.onThisThread(dst);
                Tensor gamma = VectorKernel.onThisThread(scale);
                Tensor beta = VectorKernel.onThisThread(shift);
                Tensor means = VectorKernel.onThisThread(mean);
                Tensor variances = VectorKernel.onThisThread(variance);
                Tensor scales = VectorKernel.onThisThread(dstScales);
                if (half) {
                    halfRows(
                            pass,
                            x,
                            r,
                            b,
                            s,
                            y,
                            gamma,
                            beta,
                            means,
                            variances,
                            scales,
                            dstScale,
                            scratch[part].forThisThread(),
                            from,
                            to);
                } else if (y.dataType() == DataType.S8) {
                    quantizedRows(x, r, b, s, y, gamma, beta, scales, dstScale, from, to);
                } else {
                    forwardRows(pass, x, r, b, s, y, gamma, beta, means, variances, from, to);
                }
            });
        } finally {
            for (HalfRows rowScratch : scratch) {
                norm.returnHalfRows(rowScratch);
            }
        }
        return Backend.JAVA;
    }

    /**
     * Rows {@code [from, to)} into a float {@code dst}, their offsets from strides computed once, as in
     * VectorKernel. The int8 output has a method of its own, {@link #quantizedRows}: the two in one made a
     * method so large that C2 could leave vectors boxed in it (AllocationTest).
     */
    private void forwardRows(
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
            long from,
            long to) {
        int axes = config.normalizedAxes();
        MemorySegment x = src.segment();
        MemorySegment r = residual.segment();
        MemorySegment b = bias == null ? norm.zeros() : bias.segment();
        VectorKernel.ThreadRow buffer = sum != null ? null : rowBuffer.get();
        MemorySegment s = sum != null ? sum.segment() : buffer.view(); // the caller's sum or the row buffer
        MemorySegment y = dst.segment();
        MemorySegment gamma = scale == null ? norm.ones() : scale.segment();
        MemorySegment beta = shift == null ? norm.zeros() : shift.segment();
        long xStride = Rows.rowStride(src, axes);
        long rStride = Rows.rowStride(residual, axes);
        long sStride = sum == null ? 0 : Rows.rowStride(sum, axes);
        long yStride = Rows.rowStride(dst, axes);
        // the add and the statistics' sums in one pass; s is stored there only if the caller keeps it: otherwise the
        // normalize pass adds x, r and the bias again, which costs less than a row of stores and loads, and keeps the
        // row buffer out of these loops (see rowBuffer)
        boolean kept = sum != null;
        long row = from;
        if (c <= VectorKernel.PAIRED_ROWS_MAX_C) {
            for (; row + 1 < to; row += 2) { // both rows' sums, then each row's output: see PAIRED_ROWS_MAX_C
                long xBase0 = Rows.row(src, axes, xStride, row) * Float.BYTES;
                long xBase1 = Rows.row(src, axes, xStride, row + 1) * Float.BYTES;
                long rBase0 = Rows.row(residual, axes, rStride, row) * Float.BYTES;
                long rBase1 = Rows.row(residual, axes, rStride, row + 1) * Float.BYTES;
                long sBase0 = kept ? Rows.row(sum, axes, sStride, row) * Float.BYTES : 0;
                long sBase1 = kept ? Rows.row(sum, axes, sStride, row + 1) * Float.BYTES : 0;
                float origin0 = config.rms() ? 0 : sampleMeanOfSum(x, xBase0, r, rBase0, b);
                float origin1 = config.rms() ? 0 : sampleMeanOfSum(x, xBase1, r, rBase1, b);
                long sums0 = rowSums(x, xBase0, r, rBase0, b, bias != null, s, sBase0, kept, origin0);
                long sums1 = rowSums(x, xBase1, r, rBase1, b, bias != null, s, sBase1, kept, origin1);
                long yBase0 = Rows.row(dst, axes, yStride, row) * Float.BYTES;
                long yBase1 = Rows.row(dst, axes, yStride, row + 1) * Float.BYTES;
                finishRow(
                        pass,
                        x,
                        xBase0,
                        r,
                        rBase0,
                        b,
                        bias != null,
                        s,
                        sBase0,
                        kept,
                        y,
                        yBase0,
                        gamma,
                        beta,
                        mean,
                        variance,
                        row,
                        origin0,
                        sums0);
                finishRow(
                        pass,
                        x,
                        xBase1,
                        r,
                        rBase1,
                        b,
                        bias != null,
                        s,
                        sBase1,
                        kept,
                        y,
                        yBase1,
                        gamma,
                        beta,
                        mean,
                        variance,
                        row + 1,
                        origin1,
                        sums1);
            }
        }
        for (; row < to; row++) {
            long xBase = Rows.row(src, axes, xStride, row) * Float.BYTES;
            long rBase = Rows.row(residual, axes, rStride, row) * Float.BYTES;
            long sBase = kept ? Rows.row(sum, axes, sStride, row) * Float.BYTES : 0;
            float origin = config.rms() ? 0 : sampleMeanOfSum(x, xBase, r, rBase, b);
            long sums = rowSums(x, xBase, r, rBase, b, bias != null, s, sBase, kept, origin);
            long yBase = Rows.row(dst, axes, yStride, row) * Float.BYTES;
            finishRow(
                    pass,
                    x,
                    xBase,
                    r,
                    rBase,
                    b,
                    bias != null,
                    s,
                    sBase,
                    kept,
                    y,
                    yBase,
                    gamma,
                    beta,
                    mean,
                    variance,
                    row,
                    origin,
                    sums);
        }
        Reference.reachabilityFence(buffer); // the row buffer's memory: its view does not keep it alive
    }

    /**
     * The statistics' sums of one row of {@code s = x + r (+ b)}, from the loop that fits: storing s at {@code sBase}
     * when the caller keeps it ({@code stored}), adding the bias when there is one.
     */
    private long rowSums(
            MemorySegment x,
            long xBase,
            MemorySegment r,
            long rBase,
            MemorySegment b,
            boolean hasBias,
            MemorySegment s,
            long sBase,
            boolean stored,
            float origin) {
        return !stored
                ? hasBias ? sumsOfSumWithBias(x, xBase, r, rBase, b, origin) : sumsOfSum(x, xBase, r, rBase, origin)
                : hasBias
                        ? addAndSumWithBias(x, xBase, r, rBase, b, s, sBase, origin)
                        : addAndSum(x, xBase, r, rBase, s, sBase, origin);
    }

    /**
     * One row of {@link #forwardRows} after its sums: the variance (centred first when the origin is far from the
     * mean, s then stored in the row buffer if the caller does not keep it), the statistics, and y.
     */
    private void finishRow(
            Pass pass,
            MemorySegment x,
            long xBase,
            MemorySegment r,
            long rBase,
            MemorySegment b,
            boolean hasBias,
            MemorySegment s,
            long sBase,
            boolean stored,
            MemorySegment y,
            long yBase,
            MemorySegment gamma,
            MemorySegment beta,
            Tensor mean,
            Tensor variance,
            long row,
            float origin,
            long sums) {
        float offset = config.rms() ? 0 : VectorKernel.high(sums) / c; // the mean - origin
        float var = VectorKernel.low(sums) / c - offset * offset;
        if (4 * offset * offset > var) { // the origin is far from the mean: centre first (never for RMS)
            if (!stored) { // s into the row buffer after all
                if (hasBias) {
                    addAndSumWithBias(x, xBase, r, rBase, b, s, sBase, origin);
                } else {
                    add(x, xBase, r, rBase, s, sBase);
                }
                stored = true;
            }
            var = norm.sumOfSquares(s, sBase, origin, offset) / c;
        }
        float rstd = norm.storeStatistics(pass, mean, variance, row, origin, offset, var);
        if (stored) {
            norm.normalize(s, sBase, y, yBase, gamma, beta, origin, offset, rstd);
        } else if (hasBias) {
            normalizeSumWithBias(x, xBase, r, rBase, b, y, yBase, gamma, beta, origin, offset, rstd);
        } else {
            normalizeSum(x, xBase, r, rBase, y, yBase, gamma, beta, origin, offset, rstd);
        }
    }

    /** Rows {@code [from, to)} into an int8 {@code dst} (inference: no statistics are written). */
    private void quantizedRows(
            Tensor src,
            Tensor residual,
            Tensor bias,
            Tensor sum,
            Tensor dst,
            Tensor scale,
            Tensor shift,
            Tensor dstScales,
            float dstScale,
            long from,
            long to) {
        int axes = config.normalizedAxes();
        MemorySegment x = src.segment();
        MemorySegment r = residual == null ? null : residual.segment();
        MemorySegment b = bias == null ? norm.zeros() : bias.segment();
        // s: the caller's sum, the thread's row buffer, or x itself when there is nothing to add
        VectorKernel.ThreadRow buffer = sum == null && residual != null ? rowBuffer.get() : null;
        MemorySegment s = sum != null ? sum.segment() : residual != null ? buffer.view() : x;
        MemorySegment y = dst.segment();
        MemorySegment gamma = scale == null ? norm.ones() : scale.segment();
        MemorySegment beta = shift == null ? norm.zeros() : shift.segment();
        long xStride = Rows.rowStride(src, axes);
        long rStride = residual == null ? 0 : Rows.rowStride(residual, axes);
        long sStride = sum == null ? 0 : Rows.rowStride(sum, axes);
        long yStride = Rows.rowStride(dst, axes);
        long row = from;
        if (residual == null && c <= VectorKernel.PAIRED_ROWS_MAX_C) {
            for (; row + 1 < to; row += 2) { // see VectorKernel.PAIRED_ROWS_MAX_C
                quantizedPair(src, xStride, dst, yStride, gamma, beta, dstScales, dstScale, row);
            }
        }
        for (; row < to; row++) {
            long xBase = Rows.row(src, axes, xStride, row) * Float.BYTES;
            long rBase = residual == null ? 0 : Rows.row(residual, axes, rStride, row) * Float.BYTES;
            long sBase = xBase;
            // a residual and a bias, s not kept: y from x, r and the bias where they lie, s never stored (see
            // rowBuffer)
            boolean fromSum = sum == null && bias != null;
            float origin; // subtracted from every element before anything else
            float offset; // the row's mean relative to origin
            float var;
            if (residual != null) { // the add and the statistics' sums in one pass
                sBase = sum == null ? 0 : Rows.row(sum, axes, sStride, row) * Float.BYTES;
                origin = config.rms() ? 0 : sampleMeanOfSum(x, xBase, r, rBase, b);
                long sums = fromSum
                        ? sumsOfSumWithBias(x, xBase, r, rBase, b, origin)
                        : bias == null
                                ? addAndSum(x, xBase, r, rBase, s, sBase, origin)
                                : addAndSumWithBias(x, xBase, r, rBase, b, s, sBase, origin);
                offset = config.rms() ? 0 : VectorKernel.high(sums) / c;
                var = VectorKernel.low(sums) / c - offset * offset;
            } else if (config.rms()) {
                origin = 0;
                offset = 0;
                var = norm.sumOfSquares(s, sBase, 0, 0) / c;
            } else {
                origin = norm.sampleMean(s, sBase);
                long sums = norm.sums(s, sBase, origin);
                offset = VectorKernel.high(sums) / c;
                var = VectorKernel.low(sums) / c - offset * offset;
            }
            if (4 * offset * offset > var) { // the origin is far from the mean: centre first (never for RMS)
                if (fromSum) { // s into the row buffer after all
                    addAndSumWithBias(x, xBase, r, rBase, b, s, sBase, origin);
                    fromSum = false;
                }
                var = norm.sumOfSquares(s, sBase, origin, offset) / c;
            }
            long yIndex = Rows.row(dst, axes, yStride, row);
            float rstd = (float) (1 / Math.sqrt((double) var + eps));
            if (fromSum && dstScales == null) {
                quantizeSum(
                        x,
                        xBase,
                        r,
                        rBase,
                        b,
                        y,
                        yIndex,
                        gamma,
                        beta,
                        origin,
                        offset,
                        rstd,
                        Quantize.inverse(dstScale));
            } else if (fromSum) {
                float[] values = yBuffer.get();
                float maxAbs = normalizeSumToBuffer(x, xBase, r, rBase, b, values, gamma, beta, origin, offset, rstd);
                quantizeBuffered(values, 0, maxAbs, y, yIndex, dstScales, row);
            } else {
                quantizeRow(s, sBase, y, yIndex, gamma, beta, origin, offset, rstd, dstScales, dstScale, row);
            }
        }
        Reference.reachabilityFence(buffer); // the row buffer's memory: its view does not keep it alive
    }

    /**
     * Rows {@code row} and {@code row + 1} of {@link #quantizedRows} without a residual, each step for both rows in
     * turn, so that one row's chain of dependent steps (the statistics' folds, the square root, the scale) runs under
     * the other row's loop ({@link VectorKernel#PAIRED_ROWS_MAX_C}); each row's results as {@link #quantizeRow} gives.
     */
    private void quantizedPair(
            Tensor src,
            long xStride,
            Tensor dst,
            long yStride,
            MemorySegment gamma,
            MemorySegment beta,
            Tensor dstScales,
            float dstScale,
            long row) {
        int axes = config.normalizedAxes();
        MemorySegment x = src.segment();
        MemorySegment q = dst.segment();
        long base0 = Rows.row(src, axes, xStride, row) * Float.BYTES;
        long base1 = Rows.row(src, axes, xStride, row + 1) * Float.BYTES;
        float origin0 = config.rms() ? 0 : norm.sampleMean(x, base0);
        float origin1 = config.rms() ? 0 : norm.sampleMean(x, base1);
        long moments0 = norm.moments(x, base0, origin0);
        long moments1 = norm.moments(x, base1, origin1);
        float offset0 = VectorKernel.offsetOf(moments0);
        float offset1 = VectorKernel.offsetOf(moments1);
        float var0 = VectorKernel.varianceOf(moments0);
        float var1 = VectorKernel.varianceOf(moments1);
        float rstd0 = (float) (1 / Math.sqrt((double) var0 + eps));
        float rstd1 = (float) (1 / Math.sqrt((double) var1 + eps));
        long q0 = Rows.row(dst, axes, yStride, row);
        long q1 = Rows.row(dst, axes, yStride, row + 1);
        if (dstScales == null) {
            float inverse = Quantize.inverse(dstScale);
            quantize(x, base0, q, q0, gamma, beta, origin0, offset0, rstd0, inverse);
            quantize(x, base1, q, q1, gamma, beta, origin1, offset1, rstd1, inverse);
            return;
        }
        float[] values = yBuffer.get(); // room for two rows
        float max0 = normalizeToBuffer(x, base0, values, 0, gamma, beta, origin0, offset0, rstd0);
        float max1 = normalizeToBuffer(x, base1, values, c, gamma, beta, origin1, offset1, rstd1);
        quantizeBuffered(values, 0, max0, q, q0, dstScales, row);
        quantizeBuffered(values, c, max1, q, q1, dstScales, row + 1);
    }

    /**
     * One row's y, from the float row s at {@code sBase} and its statistics, quantized into {@code q} at
     * {@code qIndex} (bytes): with the static {@code dstScale}, or with the row's own scale, written to
     * {@code dstScales}.
     */
    private void quantizeRow(
            MemorySegment s,
            long sBase,
            MemorySegment q,
            long qIndex,
            MemorySegment gamma,
            MemorySegment beta,
            float origin,
            float offset,
            float rstd,
            Tensor dstScales,
            float dstScale,
            long row) {
        if (dstScales == null) {
            quantize(s, sBase, q, qIndex, gamma, beta, origin, offset, rstd, Quantize.inverse(dstScale));
            return;
        }
        float[] values = yBuffer.get();
        quantizeBuffered(
                values,
                0,
                normalizeToBuffer(s, sBase, values, 0, gamma, beta, origin, offset, rstd),
                q,
                qIndex,
                dstScales,
                row);
    }

    /** The dynamic scale's end of {@link #quantizeRow}: y in {@code values} from {@code from}, {@code max|y|} given. */
    private void quantizeBuffered(
            float[] values, int from, float maxAbs, MemorySegment q, long qIndex, Tensor dstScales, long row) {
        float rowScale = Quantize.scale(maxAbs);
        dstScales.segment().setAtIndex(JAVA_FLOAT, row, rowScale);
        float inverse = Quantize.inverse(rowScale);
        if (rowScale >= Float.MIN_NORMAL && rowScale < Float.POSITIVE_INFINITY) {
            quantizeInRange(values, from, q, qIndex, inverse);
        } else if (!(rowScale > 0) || rowScale == Float.POSITIVE_INFINITY) {
            q.asSlice(qIndex, c).fill((byte) 0); // zeros, NaN or infinity: all q are 0 (see Quantize)
        } else { // a subnormal scale, too coarse for the shortcut
            for (int i = 0; i < c; i++) {
                q.set(
                        ValueLayout.JAVA_BYTE,
                        qIndex + i,
                        Elements.toS8(Quantize.steps(values[from + i], rowScale, inverse)));
            }
        }
    }

    /**
     * Rows {@code [from, to)} of a call with a bfloat16 or float16 tensor, float or int8 {@code dst}: the rows go
     * through float rows in {@code scratch}, as in VectorKernel, and the plain norm's float loops run on them.
     * {@code s = (x + r) + b} is computed in float32 into {@code scratch.out} (or straight into a float32
     * {@code sum}): bf16 x and r widened (exactly) as they are added, f16 ones first widened into
     * {@code scratch.x} and {@code scratch.dy}. When {@code sum} is half precision, s is rounded into it and
     * replaced by the rounded values, so that y is the norm of s as stored; otherwise s stays float32. A
     * half-precision y is rounded once as it is stored. The add, the statistics and the output take a pass
     * each over rows in L1/L2, where the float32 path fuses the first two: the rows are read from memory once
     * either way.
     */
    private void halfRows(
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
            HalfRows scratch,
            long from,
            long to) {
        int axes = config.normalizedAxes();
        DataType type = src.dataType(); // residual's and sum's too
        DataType yType = dst.dataType();
        if (type != DataType.F32 && type == yType) { // bf16 or float16 throughout
            heapRows(pass, src, residual, bias, sum, dst, scale, shift, mean, variance, scratch, from, to);
            return;
        }
        boolean widens = type != DataType.F32;
        boolean sumInPlace = sum != null && !widens; // a float32 sum is s's float row
        MemorySegment gamma = norm.floats(scale, norm.ones(), scratch, scratch.gamma);
        MemorySegment beta = norm.floats(shift, norm.zeros(), scratch, scratch.beta);
        VectorKernel.ThreadRow buffer = bias == null ? null : rowBuffer.get();
        MemorySegment b = bias == null ? null : norm.floats(bias, null, scratch, buffer.view()); // free on this path
        MemorySegment x = widens ? scratch.x : src.segment();
        MemorySegment r = residual == null ? null : widens ? scratch.dy : residual.segment();
        MemorySegment s = residual == null ? x : sumInPlace ? sum.segment() : scratch.out;
        MemorySegment y = dst.segment();
        MemorySegment yRow = scratch.dy; // a float16 y before it is rounded: r's row is free once s is made
        long xStride = Rows.rowStride(src, axes);
        long rStride = residual == null ? 0 : Rows.rowStride(residual, axes);
        long sStride = sum == null ? 0 : Rows.rowStride(sum, axes);
        long yStride = Rows.rowStride(dst, axes);
        for (long row = from; row < to; row++) {
            long xBase = Rows.row(src, axes, xStride, row) * type.byteSize();
            long yIndex = Rows.row(dst, axes, yStride, row);
            long sBase;
            if (residual == null) { // s is x
                if (widens) {
                    norm.widen(src.segment(), xBase, type, x, scratch);
                    xBase = 0;
                }
                sBase = xBase;
            } else {
                long rBase = Rows.row(residual, axes, rStride, row) * type.byteSize();
                long sumBase = sum == null ? 0 : Rows.row(sum, axes, sStride, row) * type.byteSize();
                sBase = sumInPlace ? sumBase : 0;
                if (type == DataType.BF16) { // widened as they are added: one pass instead of three
                    addBf16(src.segment(), xBase, residual.segment(), rBase, s);
                } else {
                    if (widens) {
                        norm.widen(src.segment(), xBase, type, x, scratch);
                        norm.widen(residual.segment(), rBase, type, r, scratch);
                        xBase = 0;
                        rBase = 0;
                    }
                    add(x, xBase, r, rBase, s, sBase);
                }
                if (bias != null) {
                    add(s, sBase, b, 0, s, sBase);
                }
                if (sum != null && type == DataType.BF16) { // y is the norm of s as stored: s rounded in place
                    roundBf16(s, sum.segment(), sumBase);
                } else if (sum != null && widens) {
                    norm.narrow(s, sum.segment(), sumBase, type, scratch);
                    norm.widen(sum.segment(), sumBase, type, s, scratch);
                }
            }
            float origin = config.rms() ? 0 : norm.sampleMean(s, sBase); // as in VectorKernel's forward pass
            long moments = norm.moments(s, sBase, origin);
            float rstd = norm.storeStatistics(pass, mean, variance, row, origin, moments);
            float offset = VectorKernel.offsetOf(moments);
            switch (yType) {
                case F32 -> norm.normalize(s, sBase, y, yIndex * Float.BYTES, gamma, beta, origin, offset, rstd);
                case BF16 -> norm.normalizeToBf16(s, sBase, y, yIndex * Short.BYTES, gamma, beta, origin, offset, rstd);
                case F16 -> { // through a float row: see VectorKernel.narrow
                    norm.normalize(s, sBase, yRow, 0, gamma, beta, origin, offset, rstd);
                    norm.narrow(yRow, y, yIndex * Short.BYTES, DataType.F16, scratch);
                }
                case S8 ->
                    quantizeRow(s, sBase, y, yIndex, gamma, beta, origin, offset, rstd, dstScales, dstScale, row);
            }
        }
        Reference.reachabilityFence(buffer); // the row buffer's memory: its view does not keep it alive
    }

    /**
     * {@link #halfRows} for x and y of one half-precision type, through float rows on the heap ({@link HeapRows}),
     * as the plain norm's float16 rows: {@code s = (x + r) + b} is made in {@code scratch.floats}, x and r widened
     * as they are added (bias in {@code scratch.dyRow}); a kept sum is rounded into {@code sum} and s replaced by
     * the rounded values; then {@link VectorKernel#heapRow} normalizes s and rounds y as it is stored.
     */
    private void heapRows(
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
            HalfRows scratch,
            long from,
            long to) {
        int axes = config.normalizedAxes();
        DataType type = src.dataType();
        boolean f16 = type == DataType.F16;
        float[] s = scratch.floats;
        float[] b = scratch.dyRow; // free: r is widened as it is added
        MemorySegment.copy(
                norm.floats(scale, norm.ones(), scratch, scratch.gamma), JAVA_FLOAT, 0, scratch.gammaRow, 0, c);
        MemorySegment.copy(
                norm.floats(shift, norm.zeros(), scratch, scratch.beta), JAVA_FLOAT, 0, scratch.betaRow, 0, c);
        VectorKernel.ThreadRow buffer = bias == null ? null : rowBuffer.get();
        if (bias != null) {
            MemorySegment.copy(norm.floats(bias, null, scratch, buffer.view()), JAVA_FLOAT, 0, b, 0, c);
        }
        long xStride = Rows.rowStride(src, axes);
        long rStride = residual == null ? 0 : Rows.rowStride(residual, axes);
        long sStride = sum == null ? 0 : Rows.rowStride(sum, axes);
        long yStride = Rows.rowStride(dst, axes);
        for (long row = from; row < to; row++) {
            long xBase = Rows.row(src, axes, xStride, row) * Short.BYTES;
            long yBase = Rows.row(dst, axes, yStride, row) * Short.BYTES;
            if (residual == null) {
                widen(src.segment(), xBase, f16, s);
            } else {
                long rBase = Rows.row(residual, axes, rStride, row) * Short.BYTES;
                if (f16) {
                    HeapRows.addF16(src.segment(), xBase, residual.segment(), rBase, s, c);
                } else {
                    HeapRows.addBf16(src.segment(), xBase, residual.segment(), rBase, s, scratch.secondFloats, c);
                }
                if (bias != null) {
                    HeapRows.add(s, b, c);
                }
                if (sum != null) {
                    long sumBase = Rows.row(sum, axes, sStride, row) * Short.BYTES;
                    if (f16) {
                        HeapRows.roundToF16(s, sum.segment(), sumBase, c);
                    } else {
                        HeapRows.roundToBf16(s, sum.segment(), sumBase, c);
                    }
                }
            }
            norm.heapRow(pass, dst.segment(), yBase, type, scratch, mean, variance, row);
        }
        Reference.reachabilityFence(buffer); // the row buffer's memory: its view does not keep it alive
    }

    /** {@code s = x + r} over one row, x and r bfloat16 (widened exactly, as VectorKernel widens them), s float. */
    private void addBf16(MemorySegment x, long xBase, MemorySegment r, long rBase, MemorySegment s) {
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            long at = (long) i * Short.BYTES;
            FloatVector xv = ((IntVector) ShortVector.fromMemorySegment(HALVES, x, xBase + at, ORDER)
                            .convertShape(VectorOperators.S2I, INTS, 0))
                    .lanewise(VectorOperators.LSHL, 16)
                    .reinterpretAsFloats();
            FloatVector rv = ((IntVector) ShortVector.fromMemorySegment(HALVES, r, rBase + at, ORDER)
                            .convertShape(VectorOperators.S2I, INTS, 0))
                    .lanewise(VectorOperators.LSHL, 16)
                    .reinterpretAsFloats();
            xv.add(rv).reinterpretAsLongs().intoMemorySegment(s, (long) i * Float.BYTES, ORDER);
        }
        for (; i < c; i++) {
            float v = Elements.get(x, DataType.BF16, xBase / Short.BYTES + i)
                    + Elements.get(r, DataType.BF16, rBase / Short.BYTES + i);
            s.setAtIndex(JAVA_FLOAT, i, v);
        }
    }

    /**
     * Rounds the float row {@code s} to bfloat16 into {@code sum} at {@code sumBase} (bytes), as
     * VectorKernel.narrow rounds (to nearest, ties to even, NaN kept quiet), and replaces s with the rounded
     * values: narrowing and widening back in one pass.
     */
    private void roundBf16(MemorySegment s, MemorySegment sum, long sumBase) {
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            IntVector bits = FloatVector.fromMemorySegment(SPECIES, s, (long) i * Float.BYTES, ORDER)
                    .reinterpretAsInts();
            IntVector upper = bits.lanewise(VectorOperators.LSHR, 16);
            IntVector rounded = bits.add(upper.and(1))
                    .add(0x7fff)
                    .lanewise(VectorOperators.LSHR, 16)
                    .blend(upper.or(0x0040), bits.and(0x7fff_ffff).compare(VectorOperators.GT, 0x7f80_0000));
            rounded.convertShape(VectorOperators.I2S, HALVES, 0)
                    .intoMemorySegment(sum, sumBase + (long) i * Short.BYTES, ORDER);
            rounded.lanewise(VectorOperators.LSHL, 16)
                    .reinterpretAsFloats()
                    .reinterpretAsLongs()
                    .intoMemorySegment(s, (long) i * Float.BYTES, ORDER);
        }
        for (; i < c; i++) {
            long at = sumBase / Short.BYTES + i;
            Elements.set(sum, DataType.BF16, at, s.getAtIndex(JAVA_FLOAT, i));
            s.setAtIndex(JAVA_FLOAT, i, Elements.get(sum, DataType.BF16, at));
        }
    }

    /** {@code s = x + r} over one row of floats; s may be x or r. */
    private void add(MemorySegment x, long xBase, MemorySegment r, long rBase, MemorySegment s, long sBase) {
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            long at = (long) i * Float.BYTES;
            FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + at, ORDER))
                    .reinterpretAsLongs()
                    .intoMemorySegment(s, sBase + at, ORDER);
        }
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            s.set(JAVA_FLOAT, sBase + at, x.get(JAVA_FLOAT, xBase + at) + r.get(JAVA_FLOAT, rBase + at));
        }
    }

    /** {@link #sampleMean} of {@code s = (x + r) + b}, before s is written. */
    private float sampleMeanOfSum(MemorySegment x, long xBase, MemorySegment r, long rBase, MemorySegment b) {
        float first = x.get(JAVA_FLOAT, xBase) + r.get(JAVA_FLOAT, rBase) + b.get(JAVA_FLOAT, 0);
        if (c < 4 * LANES) {
            return first;
        }
        FloatVector total = FloatVector.zero(SPECIES);
        for (int i = 0; i < 4 * LANES; i += LANES) {
            long at = (long) i * Float.BYTES;
            total = total.add(FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + at, ORDER))
                    .add(FloatVector.fromMemorySegment(SPECIES, b, at, ORDER)));
        }
        for (VectorShuffle<Float> fold : FOLDS) {
            total = total.add(total.rearrange(fold));
        }
        float mean = total.lane(0) / (4 * LANES);
        return Float.isFinite(mean) ? mean : first;
    }

    /**
     * {@code s = (x + r) + b} over one row, written, and in the same pass {@link #sums} of s: the row is read
     * from memory once, and the statistics cost no pass of their own.
     */
    private long addAndSumWithBias(
            MemorySegment x,
            long xBase,
            MemorySegment r,
            long rBase,
            MemorySegment b,
            MemorySegment s,
            long sBase,
            float origin) {
        FloatVector s0 = FloatVector.zero(SPECIES);
        FloatVector s1 = s0;
        FloatVector q0 = s0;
        FloatVector q1 = s0;
        int i = 0;
        for (; i <= c - 2 * LANES; i += 2 * LANES) {
            long at = (long) i * Float.BYTES;
            long next = at + (long) LANES * Float.BYTES;
            FloatVector v0 = FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + at, ORDER))
                    .add(FloatVector.fromMemorySegment(SPECIES, b, at, ORDER));
            FloatVector v1 = FloatVector.fromMemorySegment(SPECIES, x, xBase + next, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + next, ORDER))
                    .add(FloatVector.fromMemorySegment(SPECIES, b, next, ORDER));
            v0.reinterpretAsLongs().intoMemorySegment(s, sBase + at, ORDER);
            v1.reinterpretAsLongs().intoMemorySegment(s, sBase + next, ORDER);
            FloatVector d0 = v0.sub(origin);
            FloatVector d1 = v1.sub(origin);
            s0 = s0.add(d0);
            s1 = s1.add(d1);
            q0 = d0.fma(d0, q0);
            q1 = d1.fma(d1, q1);
        }
        for (; i <= c - LANES; i += LANES) {
            long at = (long) i * Float.BYTES;
            FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + at, ORDER))
                    .add(FloatVector.fromMemorySegment(SPECIES, b, at, ORDER));
            v.reinterpretAsLongs().intoMemorySegment(s, sBase + at, ORDER);
            FloatVector d = v.sub(origin);
            s0 = s0.add(d);
            q0 = d.fma(d, q0);
        }
        float tailSum = 0;
        float tailSquares = 0;
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            float v = x.get(JAVA_FLOAT, xBase + at) + r.get(JAVA_FLOAT, rBase + at) + b.get(JAVA_FLOAT, at);
            s.set(JAVA_FLOAT, sBase + at, v);
            float d = v - origin;
            tailSum += d;
            tailSquares = Math.fma(d, d, tailSquares);
        }
        FloatVector sums = s0.add(s1);
        FloatVector squareSums = q0.add(q1);
        for (VectorShuffle<Float> fold : FOLDS) {
            sums = sums.add(sums.rearrange(fold));
            squareSums = squareSums.add(squareSums.rearrange(fold));
        }
        float sum = sums.lane(0) + tailSum;
        float squares = squareSums.lane(0) + tailSquares;
        return VectorKernel.pack(sum, squares);
    }

    /** {@link #addAndSumWithBias} without a bias: one load fewer per element, which shows on cached rows. */
    private long addAndSum(
            MemorySegment x, long xBase, MemorySegment r, long rBase, MemorySegment s, long sBase, float origin) {
        FloatVector s0 = FloatVector.zero(SPECIES);
        FloatVector s1 = s0;
        FloatVector q0 = s0;
        FloatVector q1 = s0;
        int i = 0;
        for (; i <= c - 2 * LANES; i += 2 * LANES) {
            long at = (long) i * Float.BYTES;
            long next = at + (long) LANES * Float.BYTES;
            FloatVector v0 = FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + at, ORDER));
            FloatVector v1 = FloatVector.fromMemorySegment(SPECIES, x, xBase + next, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + next, ORDER));
            v0.reinterpretAsLongs().intoMemorySegment(s, sBase + at, ORDER);
            v1.reinterpretAsLongs().intoMemorySegment(s, sBase + next, ORDER);
            FloatVector d0 = v0.sub(origin);
            FloatVector d1 = v1.sub(origin);
            s0 = s0.add(d0);
            s1 = s1.add(d1);
            q0 = d0.fma(d0, q0);
            q1 = d1.fma(d1, q1);
        }
        for (; i <= c - LANES; i += LANES) {
            long at = (long) i * Float.BYTES;
            FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + at, ORDER));
            v.reinterpretAsLongs().intoMemorySegment(s, sBase + at, ORDER);
            FloatVector d = v.sub(origin);
            s0 = s0.add(d);
            q0 = d.fma(d, q0);
        }
        float tailSum = 0;
        float tailSquares = 0;
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            float v = x.get(JAVA_FLOAT, xBase + at) + r.get(JAVA_FLOAT, rBase + at);
            s.set(JAVA_FLOAT, sBase + at, v);
            float d = v - origin;
            tailSum += d;
            tailSquares = Math.fma(d, d, tailSquares);
        }
        FloatVector sums = s0.add(s1);
        FloatVector squareSums = q0.add(q1);
        for (VectorShuffle<Float> fold : FOLDS) {
            sums = sums.add(sums.rearrange(fold));
            squareSums = squareSums.add(squareSums.rearrange(fold));
        }
        float sum = sums.lane(0) + tailSum;
        float squares = squareSums.lane(0) + tailSquares;
        return VectorKernel.pack(sum, squares);
    }

    /** The statistics' sums of {@code s = x + r}, as {@link #addAndSum} computes them, without storing s. */
    private long sumsOfSum(MemorySegment x, long xBase, MemorySegment r, long rBase, float origin) {
        FloatVector s0 = FloatVector.zero(SPECIES);
        FloatVector s1 = s0;
        FloatVector q0 = s0;
        FloatVector q1 = s0;
        int i = 0;
        for (; i <= c - 2 * LANES; i += 2 * LANES) {
            long at = (long) i * Float.BYTES;
            long next = at + (long) LANES * Float.BYTES;
            FloatVector d0 = FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + at, ORDER))
                    .sub(origin);
            FloatVector d1 = FloatVector.fromMemorySegment(SPECIES, x, xBase + next, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + next, ORDER))
                    .sub(origin);
            s0 = s0.add(d0);
            s1 = s1.add(d1);
            q0 = d0.fma(d0, q0);
            q1 = d1.fma(d1, q1);
        }
        for (; i <= c - LANES; i += LANES) {
            long at = (long) i * Float.BYTES;
            FloatVector d = FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + at, ORDER))
                    .sub(origin);
            s0 = s0.add(d);
            q0 = d.fma(d, q0);
        }
        float tailSum = 0;
        float tailSquares = 0;
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            float d = x.get(JAVA_FLOAT, xBase + at) + r.get(JAVA_FLOAT, rBase + at) - origin;
            tailSum += d;
            tailSquares = Math.fma(d, d, tailSquares);
        }
        FloatVector sums = s0.add(s1);
        FloatVector squareSums = q0.add(q1);
        for (VectorShuffle<Float> fold : FOLDS) {
            sums = sums.add(sums.rearrange(fold));
            squareSums = squareSums.add(squareSums.rearrange(fold));
        }
        float sum = sums.lane(0) + tailSum;
        float squares = squareSums.lane(0) + tailSquares;
        return VectorKernel.pack(sum, squares);
    }

    /** y as VectorKernel's normalize computes it from {@code s = x + r}, s added again here. */
    private void normalizeSum(
            MemorySegment x,
            long xBase,
            MemorySegment r,
            long rBase,
            MemorySegment y,
            long yBase,
            MemorySegment gamma,
            MemorySegment beta,
            float origin,
            float offset,
            float rstd) {
        float shift = -offset * rstd;
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            long at = (long) i * Float.BYTES;
            FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + at, ORDER))
                    .sub(origin)
                    .fma(rstd, shift)
                    .fma(
                            FloatVector.fromMemorySegment(SPECIES, gamma, at, ORDER),
                            FloatVector.fromMemorySegment(SPECIES, beta, at, ORDER))
                    .reinterpretAsLongs()
                    .intoMemorySegment(y, yBase + at, ORDER);
        }
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            float v = Math.fma(x.get(JAVA_FLOAT, xBase + at) + r.get(JAVA_FLOAT, rBase + at) - origin, rstd, shift);
            y.set(JAVA_FLOAT, yBase + at, Math.fma(v, gamma.get(JAVA_FLOAT, at), beta.get(JAVA_FLOAT, at)));
        }
    }

    /** {@link #sumsOfSum} of {@code s = (x + r) + b}, as {@link #addAndSumWithBias} computes them. */
    private long sumsOfSumWithBias(
            MemorySegment x, long xBase, MemorySegment r, long rBase, MemorySegment b, float origin) {
        FloatVector s0 = FloatVector.zero(SPECIES);
        FloatVector s1 = s0;
        FloatVector q0 = s0;
        FloatVector q1 = s0;
        int i = 0;
        for (; i <= c - 2 * LANES; i += 2 * LANES) {
            long at = (long) i * Float.BYTES;
            long next = at + (long) LANES * Float.BYTES;
            FloatVector d0 = FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + at, ORDER))
                    .add(FloatVector.fromMemorySegment(SPECIES, b, at, ORDER))
                    .sub(origin);
            FloatVector d1 = FloatVector.fromMemorySegment(SPECIES, x, xBase + next, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + next, ORDER))
                    .add(FloatVector.fromMemorySegment(SPECIES, b, next, ORDER))
                    .sub(origin);
            s0 = s0.add(d0);
            s1 = s1.add(d1);
            q0 = d0.fma(d0, q0);
            q1 = d1.fma(d1, q1);
        }
        for (; i <= c - LANES; i += LANES) {
            long at = (long) i * Float.BYTES;
            FloatVector d = FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + at, ORDER))
                    .add(FloatVector.fromMemorySegment(SPECIES, b, at, ORDER))
                    .sub(origin);
            s0 = s0.add(d);
            q0 = d.fma(d, q0);
        }
        float tailSum = 0;
        float tailSquares = 0;
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            float d = x.get(JAVA_FLOAT, xBase + at) + r.get(JAVA_FLOAT, rBase + at) + b.get(JAVA_FLOAT, at) - origin;
            tailSum += d;
            tailSquares = Math.fma(d, d, tailSquares);
        }
        FloatVector sums = s0.add(s1);
        FloatVector squareSums = q0.add(q1);
        for (VectorShuffle<Float> fold : FOLDS) {
            sums = sums.add(sums.rearrange(fold));
            squareSums = squareSums.add(squareSums.rearrange(fold));
        }
        float sum = sums.lane(0) + tailSum;
        float squares = squareSums.lane(0) + tailSquares;
        return VectorKernel.pack(sum, squares);
    }

    /** {@link #normalizeSum} from {@code s = (x + r) + b}. */
    private void normalizeSumWithBias(
            MemorySegment x,
            long xBase,
            MemorySegment r,
            long rBase,
            MemorySegment b,
            MemorySegment y,
            long yBase,
            MemorySegment gamma,
            MemorySegment beta,
            float origin,
            float offset,
            float rstd) {
        float shift = -offset * rstd;
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            long at = (long) i * Float.BYTES;
            FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + at, ORDER))
                    .add(FloatVector.fromMemorySegment(SPECIES, b, at, ORDER))
                    .sub(origin)
                    .fma(rstd, shift)
                    .fma(
                            FloatVector.fromMemorySegment(SPECIES, gamma, at, ORDER),
                            FloatVector.fromMemorySegment(SPECIES, beta, at, ORDER))
                    .reinterpretAsLongs()
                    .intoMemorySegment(y, yBase + at, ORDER);
        }
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            float v = Math.fma(
                    x.get(JAVA_FLOAT, xBase + at) + r.get(JAVA_FLOAT, rBase + at) + b.get(JAVA_FLOAT, at) - origin,
                    rstd,
                    shift);
            y.set(JAVA_FLOAT, yBase + at, Math.fma(v, gamma.get(JAVA_FLOAT, at), beta.get(JAVA_FLOAT, at)));
        }
    }

    /**
     * y as {@link #normalize} computes it, into {@code values} from {@code from}; returns the row's {@code max|y|}, NaN
     * if any y is.
     */
    private float normalizeToBuffer(
            MemorySegment s,
            long sBase,
            float[] values,
            int from,
            MemorySegment gamma,
            MemorySegment beta,
            float origin,
            float offset,
            float rstd) {
        float shift = -offset * rstd;
        // max|y| on the bits: without its sign a float orders as its bits do, and NaN's bits exceed infinity's,
        // so an integer max (one instruction, where a float max must honour NaN and -0 too) propagates NaN
        IntVector max = IntVector.zero(INTS);
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            long at = (long) i * Float.BYTES;
            FloatVector v = FloatVector.fromMemorySegment(SPECIES, s, sBase + at, ORDER)
                    .sub(origin)
                    .fma(rstd, shift)
                    .fma(
                            FloatVector.fromMemorySegment(SPECIES, gamma, at, ORDER),
                            FloatVector.fromMemorySegment(SPECIES, beta, at, ORDER));
            v.intoArray(values, from + i);
            max = max.max(v.viewAsIntegralLanes().and(Integer.MAX_VALUE));
        }
        float tail = 0;
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            float v = Math.fma(s.get(JAVA_FLOAT, sBase + at) - origin, rstd, shift);
            float y = Math.fma(v, gamma.get(JAVA_FLOAT, at), beta.get(JAVA_FLOAT, at));
            values[from + i] = y;
            tail = Quantize.maxAbs(tail, y);
        }
        // max|y| of the lanes in registers, as VectorKernel.FOLDS adds them: reduceLanes(MAX) was compiled in some
        // processes without its intrinsic, and then allocated a boxed vector per row for good
        for (VectorShuffle<Float> fold : FOLDS) {
            max = max.max(max.reinterpretAsFloats().rearrange(fold).reinterpretAsInts());
        }
        return Math.max(Float.intBitsToFloat(max.lane(0)), tail); // exact in any order
    }

    /** {@link #normalizeToBuffer} from {@code s = (x + r) + b}, s added again here. */
    private float normalizeSumToBuffer(
            MemorySegment x,
            long xBase,
            MemorySegment r,
            long rBase,
            MemorySegment b,
            float[] values,
            MemorySegment gamma,
            MemorySegment beta,
            float origin,
            float offset,
            float rstd) {
        float shift = -offset * rstd;
        // max|y| on the bits: without its sign a float orders as its bits do, and NaN's bits exceed infinity's,
        // so an integer max (one instruction, where a float max must honour NaN and -0 too) propagates NaN
        IntVector max = IntVector.zero(INTS);
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            long at = (long) i * Float.BYTES;
            FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + at, ORDER))
                    .add(FloatVector.fromMemorySegment(SPECIES, b, at, ORDER))
                    .sub(origin)
                    .fma(rstd, shift)
                    .fma(
                            FloatVector.fromMemorySegment(SPECIES, gamma, at, ORDER),
                            FloatVector.fromMemorySegment(SPECIES, beta, at, ORDER));
            v.intoArray(values, i);
            max = max.max(v.viewAsIntegralLanes().and(Integer.MAX_VALUE));
        }
        float tail = 0;
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            float v = Math.fma(
                    x.get(JAVA_FLOAT, xBase + at) + r.get(JAVA_FLOAT, rBase + at) + b.get(JAVA_FLOAT, at) - origin,
                    rstd,
                    shift);
            float y = Math.fma(v, gamma.get(JAVA_FLOAT, at), beta.get(JAVA_FLOAT, at));
            values[i] = y;
            tail = Quantize.maxAbs(tail, y);
        }
        for (VectorShuffle<Float> fold : FOLDS) { // as normalizeToBuffer
            max = max.max(max.reinterpretAsFloats().rearrange(fold).reinterpretAsInts());
        }
        return Math.max(Float.intBitsToFloat(max.lane(0)), tail); // exact in any order
    }

    /**
     * {@code q = round_half_even(y * inverse)} for a row whose {@code |y * inverse|} is at most 127 and a rounding
     * error above (a dynamic scale's, when it is a normal float): no clamping. Adding 1.5 * 2^23 leaves the rounded integer in the low bits
     * of the float, and the int-to-byte conversion keeps the lowest byte: two's complement, so negative values
     * come out right.
     */
    private void quantizeInRange(float[] values, int from, MemorySegment q, long qIndex, float inverse) {
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            FloatVector v = FloatVector.fromArray(SPECIES, values, from + i).fma(inverse, ROUND);
            ((ByteVector) v.viewAsIntegralLanes().convertShape(VectorOperators.I2B, BYTES, 0))
                    .intoMemorySegment(q, qIndex + i, ORDER);
        }
        for (; i < c; i++) {
            q.set(ValueLayout.JAVA_BYTE, qIndex + i, Elements.toS8(values[from + i] * inverse));
        }
    }

    /**
     * Stores {@code round_half_even(y * inverse)}, saturated to [-127, 127], as bytes at {@code qIndex}, from {@code
     * rounded = fma(y, inverse, ROUND)}; NaN gives 0. Clamped in the integer view of the bits, without a float-to-int
     * conversion: {@code ROUND + n} has the bits {@code ROUND_BITS + n} for whole n below 2^22 in magnitude, larger
     * positive floats have larger bits, negative ones and -0 negative bits, so a signed clamp to {@code ROUND_BITS -/+
     * 127} saturates every float but NaN, which is replaced first; the byte conversion keeps the lowest byte, n's.
     * Java's float-to-int conversion, which the clamp replaces, checks for NaN and overflow in every vector: on an AVX2
     * CPU the static int8 output took 1.3 times as long with it (docs/benchmarks.md, "int8 without a float-to-int
     * conversion").
     */
    private static void storeSaturatedBytes(FloatVector rounded, MemorySegment q, long qIndex) {
        ((ByteVector) rounded.viewAsIntegralLanes()
                        .blend(
                                ROUND_BITS,
                                rounded.compare(VectorOperators.NE, rounded).cast(INTS))
                        .max(ROUND_BITS - 127)
                        .min(ROUND_BITS + 127)
                        .convertShape(VectorOperators.I2B, BYTES, 0))
                .intoMemorySegment(q, qIndex, ORDER);
    }

    /**
     * {@code q = round_half_even(y * inverse)} saturated to [-127, 127], y as {@link #normalize} computes it;
     * {@code qIndex} counts bytes; NaN gives 0 ({@link #storeSaturatedBytes}).
     */
    private void quantize(
            MemorySegment s,
            long sBase,
            MemorySegment q,
            long qIndex,
            MemorySegment gamma,
            MemorySegment beta,
            float origin,
            float offset,
            float rstd,
            float inverse) {
        float shift = -offset * rstd;
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            long at = (long) i * Float.BYTES;
            FloatVector v = FloatVector.fromMemorySegment(SPECIES, s, sBase + at, ORDER)
                    .sub(origin)
                    .fma(rstd, shift)
                    .fma(
                            FloatVector.fromMemorySegment(SPECIES, gamma, at, ORDER),
                            FloatVector.fromMemorySegment(SPECIES, beta, at, ORDER))
                    .fma(inverse, ROUND);
            storeSaturatedBytes(v, q, qIndex + i);
        }
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            float v = Math.fma(s.get(JAVA_FLOAT, sBase + at) - origin, rstd, shift);
            float y = Math.fma(v, gamma.get(JAVA_FLOAT, at), beta.get(JAVA_FLOAT, at));
            q.set(ValueLayout.JAVA_BYTE, qIndex + i, Elements.toS8(y * inverse));
        }
    }

    /** {@link #quantize} from {@code s = (x + r) + b}, s added again here. */
    private void quantizeSum(
            MemorySegment x,
            long xBase,
            MemorySegment r,
            long rBase,
            MemorySegment b,
            MemorySegment q,
            long qIndex,
            MemorySegment gamma,
            MemorySegment beta,
            float origin,
            float offset,
            float rstd,
            float inverse) {
        float shift = -offset * rstd;
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            long at = (long) i * Float.BYTES;
            FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, r, rBase + at, ORDER))
                    .add(FloatVector.fromMemorySegment(SPECIES, b, at, ORDER))
                    .sub(origin)
                    .fma(rstd, shift)
                    .fma(
                            FloatVector.fromMemorySegment(SPECIES, gamma, at, ORDER),
                            FloatVector.fromMemorySegment(SPECIES, beta, at, ORDER))
                    .fma(inverse, ROUND);
            storeSaturatedBytes(v, q, qIndex + i);
        }
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            float v = Math.fma(
                    x.get(JAVA_FLOAT, xBase + at) + r.get(JAVA_FLOAT, rBase + at) + b.get(JAVA_FLOAT, at) - origin,
                    rstd,
                    shift);
            float y = Math.fma(v, gamma.get(JAVA_FLOAT, at), beta.get(JAVA_FLOAT, at));
            q.set(ValueLayout.JAVA_BYTE, qIndex + i, Elements.toS8(y * inverse));
        }
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
        ScalarKernel.checkBackwardRowLength(config.normalizedSize());
        if (!rowsFit
                || !vectorizes(sum)
                || !vectorizes(diffDst)
                || !vectorizes(diffSum)
                || !vectorizes(diffSrc)
                || !vectorizes(scale)
                || !vectorizes(diffScale)
                || !vectorizes(diffShift)) {
            return scalar.backward(diffDst, diffSum, sum, mean, variance, scale, diffSrc, diffScale, diffShift, rows);
        }
        boolean gradients = diffScale != null || diffShift != null;
        boolean half = isHalf(diffDst) || isHalf(diffSum) || isHalf(sum) || isHalf(scale) || isHalf(diffSrc);
        int parts = splitter.parts(rows, rows * c);
        if (parts == 1) {
            float[] work = norm.takeScratch();
            HalfRows rowScratch = half ? norm.takeHalfRows() : null;
            try {
                if (half) {
                    halfBackwardRows(
                            diffDst,
                            diffSum,
                            sum,
                            mean,
                            variance,
                            scale,
                            diffSrc,
                            work,
                            rowScratch,
                            gradients,
                            0,
                            rows);
                } else {
                    backwardRows(diffDst, diffSum, sum, mean, variance, scale, diffSrc, work, gradients, 0, rows);
                }
                norm.storeGradients(work, diffScale, diffShift, false);
            } finally {
                norm.returnScratch(work);
                norm.returnHalfRows(rowScratch);
            }
            return Backend.JAVA;
        }
        float[][] scratch = new float[parts][];
        HalfRows[] rowScratch = new HalfRows[half ? parts : 0];
        try {
            for (int p = 0; p < parts; p++) {
                scratch[p] = norm.takeScratch();
            }
            for (int p = 0; p < rowScratch.length; p++) {
                rowScratch[p] = norm.takeHalfRows();
            }
            splitter.run(rows, rows * c, (from, to, part) -> {
                Tensor dy = VectorKernel.onThisThread(diffDst);
                Tensor dsIn = VectorKernel.onThisThread(diffSum);
                Tensor s = VectorKernel.onThisThread(sum);
                Tensor means = VectorKernel.onThisThread(mean);
                Tensor variances = VectorKernel.onThisThread(variance);
                Tensor gamma = VectorKernel.onThisThread(scale);
                Tensor dx = VectorKernel.onThisThread(diffSrc);
                if (half) {
                    halfBackwardRows(
                            dy,
                            dsIn,
                            s,
                            means,
                            variances,
                            gamma,
                            dx,
                            scratch[part],
                            rowScratch[part].forThisThread(),
                            gradients,
                            from,
                            to);
                } else {
                    backwardRows(dy, dsIn, s, means, variances, gamma, dx, scratch[part], gradients, from, to);
                }
            });
            for (int p = 1; gradients && p < parts; p++) {
                for (int i = 0; i < 2 * c; i++) {
                    scratch[0][i] += scratch[p][i];
                }
            }
            norm.storeGradients(scratch[0], diffScale, diffShift, false);
        } finally {
            for (float[] sums : scratch) {
                norm.returnScratch(sums);
            }
            for (HalfRows rows16 : rowScratch) {
                norm.returnHalfRows(rows16);
            }
        }
        return Backend.JAVA;
    }

    /** Rows {@code [from, to)}; {@code work} as in VectorKernel's backward pass. */
    private void backwardRows(
            Tensor diffDst,
            Tensor diffSum,
            Tensor sum,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            float[] work,
            boolean gradients,
            long from,
            long to) {
        int axes = config.normalizedAxes();
        MemorySegment s = sum.segment();
        MemorySegment dy = diffDst.segment();
        MemorySegment ds = diffSum == null ? norm.zeros() : diffSum.segment(); // zeros: one row, read for every row
        MemorySegment dx = diffSrc.segment();
        MemorySegment gamma = scale == null ? norm.ones() : scale.segment();
        long sStride = Rows.rowStride(sum, axes);
        long dyStride = Rows.rowStride(diffDst, axes);
        long dsStride = diffSum == null ? 0 : Rows.rowStride(diffSum, axes);
        long dxStride = Rows.rowStride(diffSrc, axes);
        for (long row = from; row < to; row++) {
            long sBase = Rows.row(sum, axes, sStride, row) * Float.BYTES;
            long dyBase = Rows.row(diffDst, axes, dyStride, row) * Float.BYTES;
            long dsBase = Rows.row(diffSum, axes, dsStride, row) * Float.BYTES;
            long dxBase = Rows.row(diffSrc, axes, dxStride, row) * Float.BYTES;
            float mu = mean == null ? 0 : mean.segment().getAtIndex(JAVA_FLOAT, row);
            float rstd = (float) (1 / Math.sqrt((double) variance.segment().getAtIndex(JAVA_FLOAT, row) + eps));
            if (gradients) {
                norm.accumulateWithGradients(s, sBase, dy, dyBase, gamma, mu, rstd, work);
            } else {
                norm.accumulate(s, sBase, dy, dyBase, gamma, mu, rstd, work, false);
            }
            float meanG = config.rms() ? 0 : work[2 * c] / c;
            float meanGXhat = work[2 * c + 1] / c;
            inputGradient(s, sBase, dy, dyBase, ds, dsBase, dx, dxBase, gamma, mu, rstd, meanG, meanGXhat);
        }
    }

    /**
     * {@link #backwardRows} for calls with a bfloat16 or float16 tensor: s, dy and ds rows are widened into
     * {@code scratch.x}, {@code scratch.dy} and {@code scratch.out}, and a half-precision dx is computed into
     * {@code scratch.out} (over ds, read first) and rounded once as it is stored.
     */
    private void halfBackwardRows(
            Tensor diffDst,
            Tensor diffSum,
            Tensor sum,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            float[] work,
            HalfRows scratch,
            boolean gradients,
            long from,
            long to) {
        int axes = config.normalizedAxes();
        DataType sType = sum.dataType();
        DataType dyType = diffDst.dataType();
        DataType dsType = diffSum == null ? DataType.F32 : diffSum.dataType();
        DataType dxType = diffSrc.dataType();
        if (sType != DataType.F32 && dyType == sType && dxType == sType && (diffSum == null || dsType == sType)) {
            heapBackwardRows(diffDst, diffSum, sum, mean, variance, scale, diffSrc, work, scratch, gradients, from, to);
            return;
        }
        MemorySegment s = sType == DataType.F32 ? sum.segment() : scratch.x;
        MemorySegment dy = dyType == DataType.F32 ? diffDst.segment() : scratch.dy;
        MemorySegment ds = diffSum == null ? norm.zeros() : dsType == DataType.F32 ? diffSum.segment() : scratch.out;
        MemorySegment dx = dxType == DataType.F32 ? diffSrc.segment() : scratch.out;
        MemorySegment gamma = norm.floats(scale, norm.ones(), scratch, scratch.gamma);
        long sStride = Rows.rowStride(sum, axes);
        long dyStride = Rows.rowStride(diffDst, axes);
        long dsStride = diffSum == null ? 0 : Rows.rowStride(diffSum, axes);
        long dxStride = Rows.rowStride(diffSrc, axes);
        for (long row = from; row < to; row++) {
            long sBase = Rows.row(sum, axes, sStride, row) * sType.byteSize();
            long dyBase = Rows.row(diffDst, axes, dyStride, row) * dyType.byteSize();
            long dsBase = Rows.row(diffSum, axes, dsStride, row) * dsType.byteSize();
            long dxBase = Rows.row(diffSrc, axes, dxStride, row) * dxType.byteSize();
            if (sType != DataType.F32) {
                norm.widen(sum.segment(), sBase, sType, s, scratch);
                sBase = 0;
            }
            if (dyType != DataType.F32) {
                norm.widen(diffDst.segment(), dyBase, dyType, dy, scratch);
                dyBase = 0;
            }
            if (dsType != DataType.F32) {
                norm.widen(diffSum.segment(), dsBase, dsType, ds, scratch);
                dsBase = 0;
            }
            float mu = mean == null ? 0 : mean.segment().getAtIndex(JAVA_FLOAT, row);
            float rstd = (float) (1 / Math.sqrt((double) variance.segment().getAtIndex(JAVA_FLOAT, row) + eps));
            if (gradients) {
                norm.accumulateWithGradients(s, sBase, dy, dyBase, gamma, mu, rstd, work);
            } else {
                norm.accumulate(s, sBase, dy, dyBase, gamma, mu, rstd, work, false);
            }
            float meanG = config.rms() ? 0 : work[2 * c] / c;
            float meanGXhat = work[2 * c + 1] / c;
            if (dxType == DataType.F32) {
                inputGradient(s, sBase, dy, dyBase, ds, dsBase, dx, dxBase, gamma, mu, rstd, meanG, meanGXhat);
            } else {
                inputGradient(s, sBase, dy, dyBase, ds, dsBase, dx, 0, gamma, mu, rstd, meanG, meanGXhat);
                norm.narrow(dx, diffSrc.segment(), dxBase, dxType, scratch);
            }
        }
    }

    /**
     * {@link #halfBackwardRows} for s, dy, dx and ds of one half-precision type, through float rows on the heap
     * ({@link HeapRows}), as the plain norm's float16 backward pass: s, dy and ds are widened into {@code
     * scratch.floats}, {@code scratch.dyRow} and {@code scratch.betaRow} (shift's row, free in a backward pass;
     * zeros without ds), and dx is rounded as it is stored, after ds (which may be dx's memory) was read.
     */
    private void heapBackwardRows(
            Tensor diffDst,
            Tensor diffSum,
            Tensor sum,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            float[] work,
            HalfRows scratch,
            boolean gradients,
            long from,
            long to) {
        int axes = config.normalizedAxes();
        boolean f16 = sum.dataType() == DataType.F16;
        float[] s = scratch.floats;
        float[] dy = scratch.dyRow;
        float[] ds = scratch.betaRow;
        float[] gamma = scratch.gammaRow;
        MemorySegment.copy(norm.floats(scale, norm.ones(), scratch, scratch.gamma), JAVA_FLOAT, 0, gamma, 0, c);
        if (diffSum == null) {
            Arrays.fill(ds, 0);
        }
        long sStride = Rows.rowStride(sum, axes);
        long dyStride = Rows.rowStride(diffDst, axes);
        long dsStride = diffSum == null ? 0 : Rows.rowStride(diffSum, axes);
        long dxStride = Rows.rowStride(diffSrc, axes);
        for (long row = from; row < to; row++) {
            long sBase = Rows.row(sum, axes, sStride, row) * Short.BYTES;
            long dyBase = Rows.row(diffDst, axes, dyStride, row) * Short.BYTES;
            long dxBase = Rows.row(diffSrc, axes, dxStride, row) * Short.BYTES;
            widen(sum.segment(), sBase, f16, s);
            widen(diffDst.segment(), dyBase, f16, dy);
            if (diffSum != null) {
                long dsBase = Rows.row(diffSum, axes, dsStride, row) * Short.BYTES;
                widen(diffSum.segment(), dsBase, f16, ds);
            }
            float mu = mean == null ? 0 : mean.segment().getAtIndex(JAVA_FLOAT, row);
            float rstd = (float) (1 / Math.sqrt((double) variance.segment().getAtIndex(JAVA_FLOAT, row) + eps));
            HeapRows.accumulate(s, dy, gamma, c, mu, rstd, work, gradients);
            float meanG = config.rms() ? 0 : work[2 * c] / c;
            float meanGXhat = work[2 * c + 1] / c;
            if (f16) {
                HeapRows.inputGradientToF16(s, dy, ds, diffSrc.segment(), dxBase, gamma, c, mu, rstd, meanG, meanGXhat);
            } else {
                HeapRows.inputGradientToBf16(
                        s, dy, ds, diffSrc.segment(), dxBase, gamma, c, mu, rstd, meanG, meanGXhat);
            }
        }
    }

    /** The {@code c} float16 (or else bf16) values at byte {@code base} in {@code src}, widened into {@code floats}. */
    private void widen(MemorySegment src, long base, boolean f16, float[] floats) {
        if (f16) {
            VectorKernel.float16ToFloat(src, base, floats);
        } else {
            HeapRows.bf16ToFloat(src, base, floats, c);
        }
    }

    /** {@code dx = rstd * (g - meanG - xhat * meanGXhat) + ds}; ds is read before dx (which may be it) is written. */
    private void inputGradient(
            MemorySegment x,
            long xBase,
            MemorySegment dy,
            long dyBase,
            MemorySegment ds,
            long dsBase,
            MemorySegment dx,
            long dxBase,
            MemorySegment gamma,
            float mu,
            float rstd,
            float meanG,
            float meanGXhat) {
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            long at = (long) i * Float.BYTES;
            FloatVector xhat = FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .sub(mu)
                    .mul(rstd);
            FloatVector g = FloatVector.fromMemorySegment(SPECIES, dy, dyBase + at, ORDER)
                    .mul(FloatVector.fromMemorySegment(SPECIES, gamma, at, ORDER));
            g.sub(meanG)
                    .sub(xhat.mul(meanGXhat))
                    .fma(
                            FloatVector.broadcast(SPECIES, rstd),
                            FloatVector.fromMemorySegment(SPECIES, ds, dsBase + at, ORDER))
                    .reinterpretAsLongs()
                    .intoMemorySegment(dx, dxBase + at, ORDER);
        }
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            float xhat = (x.get(JAVA_FLOAT, xBase + at) - mu) * rstd;
            float g = dy.get(JAVA_FLOAT, dyBase + at) * gamma.get(JAVA_FLOAT, at);
            dx.set(
                    JAVA_FLOAT,
                    dxBase + at,
                    Math.fma(g - meanG - xhat * meanGXhat, rstd, ds.get(JAVA_FLOAT, dsBase + at)));
        }
    }
}
