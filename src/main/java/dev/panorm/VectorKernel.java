package dev.panorm;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.StringJoiner;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The Java backend's fast kernels, on the Vector API: rows with unit stride of any data type (strided
 * rows go to the scalar {@link ScalarKernel}). Loaded reflectively and only when
 * {@code jdk.incubator.vector} is in the boot layer, so the incubator module stays optional.
 *
 * <p>Statistics are accumulated in float, in several vector accumulators, on data shifted by an
 * estimate of the row's mean (the mean of its first four vectors): {@code x - origin} is exact when
 * the row's values are close (the hard case, a large mean with a small spread), so the statistics
 * keep their digits where a plain float sum would not. One pass sums {@code d} and {@code d^2}; the variance
 * {@code E[d^2] - E[d]^2} is kept when {@code E[d]^2 <= var / 4} (at most a quarter more rounding
 * error than a centred sum of squares), and otherwise recomputed by a centred second pass. Then a pass
 * normalizes: two passes over the row where oneDNN takes three. Rows are split across threads for
 * large tensors.
 *
 * <p>bfloat16 and float16 rows are widened, exactly, into a float row first, and the same float loops run
 * on it; half-precision outputs are rounded once, to nearest, ties to even, as the scalar kernels round
 * them. So a half-precision result is the float32 kernel's result on the same values, rounded. Calls whose
 * data is all bf16 read and write it in place instead ({@link Bf16Pairs}), summing in another order: their
 * results may differ from the float32 kernel's rounded by an ulp.
 */
final class VectorKernel implements Kernel {
    static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    static final int LANES = SPECIES.length();
    /** Int lanes as wide as the float lanes, for the bit operations of the half-precision conversions. */
    static final VectorSpecies<Integer> INTS = IntVector.SPECIES_PREFERRED;
    /** {@link #LANES} half-precision values: the bits that widen into, or narrow from, one float vector. */
    static final VectorSpecies<Short> HALVES =
            VectorSpecies.of(short.class, VectorShape.forBitSize(LANES * Short.SIZE));

    static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat JAVA_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort JAVA_SHORT_UNALIGNED = ValueLayout.JAVA_SHORT_UNALIGNED;

    /**
     * The sums run over blocks of this many elements, each summed from zero and then added to the row's
     * sums. On data with few significant bits (bf16 or f16 values, or float32 holding them), the additions
     * of a long running sum all round the same way, so its error grows with the row's length, not with its
     * square root: twice the documented bound on rows of 65536 bf16 values (found by HalfPrecisionTest).
     * Blocks of 128 vectors keep that error small (on 65536 elements, 64 additions per accumulator in a
     * block and 32 blocks), and leave rows of up to 2048 floats (with 16 lanes) one block: more blocks cost
     * a short row about 10 ns each, for the loop's set-up (docs/benchmarks.md, "Measurements behind the code").
     */
    static final int BLOCK = 128 * LANES;

    /**
     * Forward rows of up to this many columns are normalized two at a time (float32, and bf16 or float16 in and out):
     * both rows' statistics, then both rows' outputs. A row's statistics end in a chain of dependent steps (the sample
     * mean's fold, the sums' folds, the square root) that the next loop waits for; with two rows in turn the CPU runs
     * one row's chain under the other row's loop (forward on one thread, float32 4096 x 128: 222 against 285 us, 128 x
     * 768: 13.9 against 15.2 us; bf16 512 x 1024: 99 against 115 us). Two longer rows and what they are read with no
     * longer fit the L1 cache together: float32 128 x 4096 lost 4 to 7%, float16 rows of 4096 (widened to floats) 8 to
     * 10%, bf16 ones nothing either way.
     */
    static final int PAIRED_ROWS_MAX_C = 2048;

    /**
     * bf16 rows are normalized in place ({@link Bf16Pairs}) from this many rows in a call's part; fewer are widened
     * into a float row for it ({@link #widenedBf16Row}). In place, scale and shift are converted into paired order
     * once per part, which costs about as much as widening two or three rows: on one thread, bf16 1 x 8192 took 3.4
     * us in place against 2.0 widened, 3 x 4096 3.1 to 3.3 against 2.9, 4 x 4096 about the same, 32 x 768 4.8
     * against 6.3.
     */
    static final int BF16_IN_PLACE_FROM_ROWS = 4;

    /**
     * float16 rows use copies of scale and shift on the heap ({@link HeapRows}) from this many rows in a call's part;
     * a single row reads them where they lie ({@link #f16Row}) and pays a float row for y instead, which costs more
     * per row than the copies save from the second row on. On one thread: 1 x 4096 1.20 against 1.46 us with the
     * copies, 1 x 8192 2.3 to 2.6 against 3.1; with every row reading them in place, 3 x 4096 took 3.5 against 2.8.
     */
    static final int HALF_SCALE_COPIED_FROM_ROWS = 2;

    /** Rows longer than this run in the scalar kernels: the vector kernels index a row with an {@code int}. */
    static final long MAX_C = Integer.MAX_VALUE;

    private final LayerNormConfig config;
    private final ScalarKernel scalar;
    /** Whether rows are at most {@link #MAX_C} long; if not, every call goes to the scalar kernels. */
    private final boolean rowsFit;
    /** The row length, when {@link #rowsFit}. */
    private final int c;

    private final float eps;
    private final RowSplitter splitter;
    /**
     * Stand-ins for an absent scale or shift, so the loops need no branch (see the rules above the loops):
     * C ones and C zeros, made on first need, since a configuration with both never needs them.
     */
    private volatile MemorySegment ones;

    private volatile MemorySegment zeros;
    /** Per concurrent backward call: float accumulators for dgamma and dbeta, and a row's two sums. */
    private final ArrayDeque<float[]> gradientScratch = new ArrayDeque<>();
    /** Per concurrent call on half-precision tensors: its float rows. */
    private final ArrayDeque<HalfRows> halfRows = new ArrayDeque<>();

    VectorKernel(LayerNormConfig config, int threads) {
        this.config = config;
        this.scalar = new ScalarKernel(config);
        this.rowsFit = config.normalizedSize() <= MAX_C;
        this.c = (int) Math.min(config.normalizedSize(), MAX_C);
        this.eps = (float) config.eps();
        this.splitter = new RowSplitter(threads);
    }

    /**
     * Per thread, views of {@link #ones} and {@link #zeros} that it owns: the loops meet the caller's memory through
     * such views, and must meet no other kind ({@link OwnedMemory}).
     */
    private final ThreadLocal<MemorySegment[]> standInViews = ThreadLocal.withInitial(() -> new MemorySegment[2]);

    MemorySegment ones() {
        return standIn(0);
    }

    MemorySegment zeros() {
        return standIn(1);
    }

    private MemorySegment standIn(int which) {
        MemorySegment[] views = standInViews.get();
        MemorySegment view = views[which];
        if (view == null) {
            MemorySegment memory = which == 0 ? ones : zeros;
            view = OwnedMemory.ownedView(memory != null ? memory : standIns(which == 0));
            views[which] = view;
        }
        return view;
    }

    /** Makes the ones or the zeros, once. */
    private synchronized MemorySegment standIns(boolean one) {
        MemorySegment result = one ? ones : zeros;
        if (result == null) {
            // Native, like the caller's memory: one kind of segment at the loads keeps C2's vector intrinsics
            // applicable.
            result = Arena.ofAuto().allocate((long) c * Float.BYTES, 64); // zeroed
            if (one) {
                for (long i = 0; i < c; i++) {
                    result.setAtIndex(JAVA_FLOAT, i, 1f);
                }
                ones = result;
            } else {
                zeros = result;
            }
        }
        return result;
    }

    /**
     * The shuffles that add up a vector's lanes in registers: lane i gets lane {@code (i + w) % LANES} added, for
     * w = LANES/2, LANES/4, ..., 1, and lane 0 ends with the sum. Used inline, as {@code for (fold : FOLDS) v =
     * v.add(v.rearrange(fold))} and then {@code v.lane(0)}: no vector may be passed to a method of ours (see the
     * rules above the loops). The order is fixed, so compiled and interpreted code give the same bits; {@code
     * reduceLanes(ADD)} leaves it unspecified, and its result can change by an ulp once a method is compiled.
     * Spilling the vector to an array and adding there, as the kernels did before, cost rows of 768 floats
     * about 20 ns each (docs/benchmarks.md, "Lanes added in registers").
     */
    @SuppressWarnings("unchecked")
    static final VectorShuffle<Float>[] FOLDS = java.util.stream.IntStream.iterate(LANES / 2, w -> w > 0, w -> w / 2)
            .mapToObj(w -> VectorShuffle.fromOp(SPECIES, lane -> (lane + w) % LANES))
            .toArray(VectorShuffle[]::new);

    /**
     * {@code tensor} (null: absent) as the current thread, running a part of a split call, may use it: the caller's
     * tensors lie in memory the caller owns ({@link OwnedMemory}), so this thread sees them through views it owns
     * itself. The caller waits in this call until every part is done, and holds the memory allocated meanwhile, so the
     * view cannot outlive the memory.
     */
    static Tensor onThisThread(Tensor tensor) {
        if (tensor == null || tensor.segment().isAccessibleBy(Thread.currentThread())) {
            return tensor;
        }
        return OwnedMemory.ownedView(tensor);
    }

    /**
     * A scratch row for one thread: memory of an automatic arena, so that the collector frees it with its holder, seen
     * through a view that thread owns ({@link OwnedMemory}). Use the view only while the record is reachable, and only
     * on the thread that made it.
     */
    record ThreadRow(MemorySegment memory, MemorySegment view) {
        static ThreadRow of(long bytes) {
            MemorySegment memory = Arena.ofAuto().allocate(bytes, 64);
            return new ThreadRow(memory, OwnedMemory.ownedView(memory));
        }
    }

    /** Whether the vector kernels take {@code tensor} (null: absent) as it is ({@link JavaKernels#vectorizes}). */
    private boolean vectorizes(Tensor tensor) {
        return JavaKernels.vectorizes(config.normalizedAxes(), tensor);
    }

    @Override
    public Backend forward(
            Pass pass, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance, long rows) {
        if (!rowsFit || !vectorizes(src) || !vectorizes(dst) || !vectorizes(scale) || !vectorizes(shift)) {
            return scalar.forward(pass, src, dst, scale, shift, mean, variance, rows);
        }
        boolean half = isHalf(src) || isHalf(dst) || isHalf(scale) || isHalf(shift);
        if (splitter.parts(rows, rows * c) == 1) { // no lambda, no allocation on the common path
            HalfRows scratch = half ? takeHalfRows() : null;
            try {
                if (half) {
                    forwardRows(pass, src, dst, scale, shift, mean, variance, scratch, 0, rows);
                } else {
                    forwardFloatRows(pass, src, dst, scale, shift, mean, variance, 0, rows);
                }
            } finally {
                returnHalfRows(scratch);
            }
            return Backend.JAVA;
        }
        HalfRows[] scratch = new HalfRows[half ? splitter.parts(rows, rows * c) : 0];
        try {
            for (int p = 0; p < scratch.length; p++) {
                scratch[p] = takeHalfRows();
            }
            splitter.run(rows, rows * c, (from, to, part) -> {
                Tensor x = onThisThread(src);
                Tensor y = onThisThread(dst);
                Tensor gamma = onThisThread(scale);
                Tensor beta = onThisThread(shift);
                Tensor means = onThisThread(mean);
                Tensor variances = onThisThread(variance);
                if (half) {
                    forwardRows(pass, x, y, gamma, beta, means, variances, scratch[part].forThisThread(), from, to);
                } else {
                    forwardFloatRows(pass, x, y, gamma, beta, means, variances, from, to);
                }
            });
        } finally {
            for (HalfRows rowScratch : scratch) {
                returnHalfRows(rowScratch);
            }
        }
        return Backend.JAVA;
    }

    /**
     * Rows {@code [from, to)}. Row offsets come from a stride computed once per call, not per row; the
     * general layout's offset is a call that the common layouts never make, kept out of the loop's code.
     * The loops are in helpers, each small enough for C2 to compile whole: written out in this one
     * method, C2 compiled them badly in some contexts, with boxed vectors (docs/benchmarks.md,
     * "Measurements behind the code").
     *
     * <p>For calls with a half-precision tensor ({@link #forwardFloatRows} takes the others). They go through
     * {@code scratch}: a row of
     * bf16/f16 data is widened into a float row there, and the float loops run on it (one read of the data
     * from memory, the rest from L1/L2); half-precision scale and shift are widened once per call; a
     * half-precision output is rounded as it is stored.
     */
    private void forwardRows(
            Pass pass,
            Tensor src,
            Tensor dst,
            Tensor scale,
            Tensor shift,
            Tensor mean,
            Tensor variance,
            HalfRows scratch,
            long from,
            long to) {
        int axes = config.normalizedAxes();
        DataType xType = src.dataType();
        DataType yType = dst.dataType();
        MemorySegment gamma = floats(scale, ones(), scratch, scratch == null ? null : scratch.gamma);
        MemorySegment beta = floats(shift, zeros(), scratch, scratch == null ? null : scratch.beta);
        boolean bf16 = xType == DataType.BF16 && yType == DataType.BF16;
        boolean paired = bf16 && to - from >= BF16_IN_PLACE_FROM_ROWS; // see Bf16Pairs
        float[] gammaPairs = paired ? pairs(scale, gamma, scratch.gammaRow, 1) : null;
        float[] betaPairs = paired ? pairs(shift, beta, scratch.betaRow, 0) : null;
        boolean f16 = xType == DataType.F16 && yType == DataType.F16;
        boolean onHeap = f16 && to - from >= HALF_SCALE_COPIED_FROM_ROWS; // see HeapRows
        if (onHeap) {
            MemorySegment.copy(gamma, JAVA_FLOAT, 0, scratch.gammaRow, 0, c);
            MemorySegment.copy(beta, JAVA_FLOAT, 0, scratch.betaRow, 0, c);
        }
        MemorySegment x = xType == DataType.F32 || paired ? src.segment() : scratch.x;
        MemorySegment y = dst.segment();
        long xStride = Rows.rowStride(src, axes);
        long yStride = Rows.rowStride(dst, axes);
        long row = from;
        if (paired && !pass.globalStatistics && c <= PAIRED_ROWS_MAX_C) {
            for (; row + 1 < to; row += 2) { // see PAIRED_ROWS_MAX_C
                long xBase0 = Rows.row(src, axes, xStride, row) * Short.BYTES;
                long xBase1 = Rows.row(src, axes, xStride, row + 1) * Short.BYTES;
                long yBase0 = Rows.row(dst, axes, yStride, row) * Short.BYTES;
                long yBase1 = Rows.row(dst, axes, yStride, row + 1) * Short.BYTES;
                pairedRows(pass, x, xBase0, xBase1, y, yBase0, yBase1, gammaPairs, betaPairs, mean, variance, row);
            }
        }
        if (onHeap && !pass.globalStatistics && c <= PAIRED_ROWS_MAX_C) {
            for (; row + 1 < to; row += 2) { // see PAIRED_ROWS_MAX_C
                long xBase0 = Rows.row(src, axes, xStride, row) * Short.BYTES;
                long xBase1 = Rows.row(src, axes, xStride, row + 1) * Short.BYTES;
                long yBase0 = Rows.row(dst, axes, yStride, row) * Short.BYTES;
                long yBase1 = Rows.row(dst, axes, yStride, row + 1) * Short.BYTES;
                float16ToFloat(src.segment(), xBase0, scratch.floats);
                float16ToFloat(src.segment(), xBase1, scratch.secondFloats);
                heapRows(pass, y, yBase0, yBase1, scratch, mean, variance, row);
            }
        }
        for (; row < to; row++) {
            long xBase = Rows.row(src, axes, xStride, row) * xType.byteSize();
            long yBase = Rows.row(dst, axes, yStride, row) * yType.byteSize();
            if (paired) {
                pairedRow(pass, x, xBase, y, yBase, gammaPairs, betaPairs, mean, variance, row);
                continue;
            }
            if (onHeap) {
                float16ToFloat(src.segment(), xBase, scratch.floats);
                heapRow(pass, y, yBase, DataType.F16, scratch, mean, variance, row);
                continue;
            }
            if (f16) {
                float16ToFloat(src.segment(), xBase, scratch.floats);
                f16Row(pass, y, yBase, gamma, beta, scratch, mean, variance, row);
                continue;
            }
            if (bf16) {
                widenedBf16Row(pass, src.segment(), xBase, scratch.floats, y, yBase, gamma, beta, mean, variance, row);
                continue;
            }
            if (xType != DataType.F32) {
                widen(src.segment(), xBase, xType, x, scratch);
                xBase = 0;
            }
            // origin: subtracted from every element before anything else; see moments
            float origin = pass.globalStatistics ? givenMean(mean, row) : config.rms() ? 0 : sampleMean(x, xBase);
            long moments = pass.globalStatistics ? givenMoments(variance, row) : moments(x, xBase, origin);
            float rstd = storeStatistics(pass, mean, variance, row, origin, moments);
            float offset = offsetOf(moments); // the row's mean relative to origin
            switch (yType) {
                case F32 -> normalize(x, xBase, y, yBase, gamma, beta, origin, offset, rstd);
                case BF16 -> normalizeToBf16(x, xBase, y, yBase, gamma, beta, origin, offset, rstd);
                case F16 -> { // through a float row: see narrow
                    normalize(x, xBase, scratch.out, 0, gamma, beta, origin, offset, rstd);
                    narrow(scratch.out, y, yBase, DataType.F16, scratch);
                }
            }
        }
    }

    /** {@link #forwardRows}' row on bf16 x and y, read and written where they lie: see {@link Bf16Pairs}. */
    private void pairedRow(
            Pass pass,
            MemorySegment x,
            long xBase,
            MemorySegment y,
            long yBase,
            float[] gamma,
            float[] beta,
            Tensor mean,
            Tensor variance,
            long row) {
        float origin =
                pass.globalStatistics ? givenMean(mean, row) : config.rms() ? 0 : Bf16Pairs.sampleMean(x, xBase, c);
        long moments = pass.globalStatistics ? givenMoments(variance, row) : pairedMoments(x, xBase, origin);
        float rstd = storeStatistics(pass, mean, variance, row, origin, moments);
        Bf16Pairs.normalize(x, xBase, y, yBase, c, gamma, beta, origin, offsetOf(moments), rstd);
    }

    /**
     * {@link #forwardRows}' row on bf16 x and y in a part of fewer than {@link #BF16_IN_PLACE_FROM_ROWS} rows: the
     * statistics as {@link #pairedRow} computes them, from x where it lies (so a row's results do not depend on how
     * many rows share its call), then x widened into the heap row {@code widened} and normalized from there with
     * scale and shift in column order, element by element as {@link Bf16Pairs#normalize} does. A heap row, not a native
     * one: no session check sees it, and a process that ran such calls on confined memory and then on shared memory
     * recompiled the native row's loop again and again (docs/benchmarks.md, "Shared arenas and panorm's scratch rows").
     */
    private void widenedBf16Row(
            Pass pass,
            MemorySegment x,
            long xBase,
            float[] widened,
            MemorySegment y,
            long yBase,
            MemorySegment gamma,
            MemorySegment beta,
            Tensor mean,
            Tensor variance,
            long row) {
        float origin =
                pass.globalStatistics ? givenMean(mean, row) : config.rms() ? 0 : Bf16Pairs.sampleMean(x, xBase, c);
        long moments = pass.globalStatistics ? givenMoments(variance, row) : pairedMoments(x, xBase, origin);
        float rstd = storeStatistics(pass, mean, variance, row, origin, moments);
        HeapRows.bf16ToFloat(x, xBase, widened, c);
        HeapRows.normalizeToBf16(widened, y, yBase, gamma, beta, c, origin, offsetOf(moments), rstd);
    }

    /**
     * {@link #heapRow} in a part of fewer than {@link #HALF_SCALE_COPIED_FROM_ROWS} rows, with scale and shift read
     * where they lie, not from copies on the heap: y goes through a float row ({@code scratch.secondFloats}) before
     * it is rounded, the same operations on each element.
     */
    private void f16Row(
            Pass pass,
            MemorySegment y,
            long yBase,
            MemorySegment gamma,
            MemorySegment beta,
            HalfRows scratch,
            Tensor mean,
            Tensor variance,
            long row) {
        float[] x = scratch.floats;
        float origin = pass.globalStatistics ? givenMean(mean, row) : config.rms() ? 0 : HeapRows.sampleMean(x, c);
        long moments = pass.globalStatistics ? givenMoments(variance, row) : heapMoments(x, origin);
        float rstd = storeStatistics(pass, mean, variance, row, origin, moments);
        HeapRows.normalize(x, scratch.secondFloats, gamma, beta, c, origin, offsetOf(moments), rstd);
        floatToFloat16(scratch.secondFloats, y, yBase);
    }

    /**
     * {@link #pairedRow} on rows {@code row} and {@code row + 1}, each step on both rows before the next (see {@link
     * #PAIRED_ROWS_MAX_C}); not for given statistics.
     */
    private void pairedRows(
            Pass pass,
            MemorySegment x,
            long xBase0,
            long xBase1,
            MemorySegment y,
            long yBase0,
            long yBase1,
            float[] gamma,
            float[] beta,
            Tensor mean,
            Tensor variance,
            long row) {
        float origin0 = config.rms() ? 0 : Bf16Pairs.sampleMean(x, xBase0, c);
        float origin1 = config.rms() ? 0 : Bf16Pairs.sampleMean(x, xBase1, c);
        long moments0 = pairedMoments(x, xBase0, origin0);
        long moments1 = pairedMoments(x, xBase1, origin1);
        float rstd0 = storeStatistics(pass, mean, variance, row, origin0, moments0);
        float rstd1 = storeStatistics(pass, mean, variance, row + 1, origin1, moments1);
        Bf16Pairs.normalize(x, xBase0, y, yBase0, c, gamma, beta, origin0, offsetOf(moments0), rstd0);
        Bf16Pairs.normalize(x, xBase1, y, yBase1, c, gamma, beta, origin1, offsetOf(moments1), rstd1);
    }

    /**
     * {@link #forwardRows}' row on float16 x and y, through float rows on the heap ({@link HeapRows}): x, widened
     * into {@code scratch.floats} by the caller, is normalized and rounded into y (float16 or bf16, {@code yType})
     * at byte {@code yBase}; scale and shift are in {@code scratch.gammaRow} and {@code scratch.betaRow}, in column
     * order. The fused kernel's half-precision rows end here too, with s in {@code scratch.floats}.
     */
    void heapRow(
            Pass pass,
            MemorySegment y,
            long yBase,
            DataType yType,
            HalfRows scratch,
            Tensor mean,
            Tensor variance,
            long row) {
        float[] x = scratch.floats;
        float origin = pass.globalStatistics ? givenMean(mean, row) : config.rms() ? 0 : HeapRows.sampleMean(x, c);
        long moments = pass.globalStatistics ? givenMoments(variance, row) : heapMoments(x, origin);
        float rstd = storeStatistics(pass, mean, variance, row, origin, moments);
        float offset = offsetOf(moments);
        if (yType == DataType.F16) {
            HeapRows.normalizeToF16(x, y, yBase, scratch.gammaRow, scratch.betaRow, c, origin, offset, rstd);
        } else {
            HeapRows.normalizeToBf16(x, y, yBase, scratch.gammaRow, scratch.betaRow, c, origin, offset, rstd);
        }
    }

    /**
     * {@link #heapRow} with float16 y on rows {@code row} (in {@code scratch.floats}) and {@code row + 1} (in {@code
     * scratch.secondFloats}), each step on both rows before the next (see {@link #PAIRED_ROWS_MAX_C}); not for
     * given statistics.
     */
    private void heapRows(
            Pass pass,
            MemorySegment y,
            long yBase0,
            long yBase1,
            HalfRows scratch,
            Tensor mean,
            Tensor variance,
            long row) {
        float[] x0 = scratch.floats;
        float[] x1 = scratch.secondFloats;
        float origin0 = config.rms() ? 0 : HeapRows.sampleMean(x0, c);
        float origin1 = config.rms() ? 0 : HeapRows.sampleMean(x1, c);
        long moments0 = heapMoments(x0, origin0);
        long moments1 = heapMoments(x1, origin1);
        float rstd0 = storeStatistics(pass, mean, variance, row, origin0, moments0);
        float rstd1 = storeStatistics(pass, mean, variance, row + 1, origin1, moments1);
        HeapRows.normalizeToF16(
                x0, y, yBase0, scratch.gammaRow, scratch.betaRow, c, origin0, offsetOf(moments0), rstd0);
        HeapRows.normalizeToF16(
                x1, y, yBase1, scratch.gammaRow, scratch.betaRow, c, origin1, offsetOf(moments1), rstd1);
    }

    /**
     * Stores a row's mean ({@code origin + offset}, when there is a mean tensor) and variance if the pass writes
     * statistics, and returns its {@code 1 / sqrt(var + eps)}.
     */
    float storeStatistics(Pass pass, Tensor mean, Tensor variance, long row, float origin, float offset, float var) {
        if (pass.writesStatistics) {
            if (mean != null) {
                mean.segment().setAtIndex(JAVA_FLOAT, row, origin + offset);
            }
            variance.segment().setAtIndex(JAVA_FLOAT, row, var);
        }
        return (float) (1 / Math.sqrt((double) var + eps));
    }

    /** {@link #storeStatistics} with the offset and variance of {@link #moments}. */
    float storeStatistics(Pass pass, Tensor mean, Tensor variance, long row, float origin, long moments) {
        return storeStatistics(pass, mean, variance, row, origin, offsetOf(moments), varianceOf(moments));
    }

    /**
     * A row's statistics around {@code origin} ({@link #sampleMean}; 0 for RMS): its offset, the mean minus origin
     * (0 for RMS), and its variance (for RMS the mean square), packed by {@link #moments(float, float)}. One pass
     * gives both, unless the origin turns out so far from the mean that {@code E[d^2] - E[d]^2} would cancel
     * digits: then a second, centred pass gives the variance. The test is also false for NaN, which then makes the
     * row NaN.
     */
    long moments(MemorySegment x, long base, float origin) {
        if (config.rms()) {
            return moments(0, sumOfSquares(x, base, 0, 0) / c);
        }
        long sums = sums(x, base, origin);
        float offset = high(sums) / c;
        float var = low(sums) / c - offset * offset;
        return moments(offset, 4 * offset * offset > var ? sumOfSquares(x, base, origin, offset) / c : var);
    }

    /** {@link #moments} of a bf16 row read where it lies ({@link Bf16Pairs}). */
    private long pairedMoments(MemorySegment x, long base, float origin) {
        if (config.rms()) {
            return moments(0, Bf16Pairs.sumOfSquares(x, base, c, 0, 0) / c);
        }
        long sums = Bf16Pairs.sums(x, base, c, origin);
        float offset = high(sums) / c;
        float var = low(sums) / c - offset * offset;
        return moments(
                offset, 4 * offset * offset > var ? Bf16Pairs.sumOfSquares(x, base, c, origin, offset) / c : var);
    }

    /** {@link #moments} of a float row on the heap ({@link HeapRows}). */
    private long heapMoments(float[] x, float origin) {
        if (config.rms()) {
            return moments(0, HeapRows.sumOfSquares(x, c, 0, 0) / c);
        }
        long sums = HeapRows.sums(x, c, origin);
        float offset = high(sums) / c;
        float var = low(sums) / c - offset * offset;
        return moments(offset, 4 * offset * offset > var ? HeapRows.sumOfSquares(x, c, origin, offset) / c : var);
    }

    /** With given statistics: the row's mean, the origin (0 without a mean tensor, as for RMS). */
    private static float givenMean(Tensor mean, long row) {
        return mean == null ? 0 : mean.segment().getAtIndex(JAVA_FLOAT, row);
    }

    /** With given statistics: the row's {@link #moments}, offset 0 from {@link #givenMean} and the given variance. */
    private static long givenMoments(Tensor variance, long row) {
        return moments(0, variance.segment().getAtIndex(JAVA_FLOAT, row));
    }

    /**
     * Two floats as the bits of a long's high and low halves: how the row loops return two results (the sums of
     * {@link #sums}, the offset and variance of {@link #moments}) without an object.
     */
    static long pack(float high, float low) {
        return (long) Float.floatToRawIntBits(high) << 32 | Float.floatToRawIntBits(low) & 0xFFFF_FFFFL;
    }

    /** The high half of {@link #pack}. */
    static float high(long packed) {
        return Float.intBitsToFloat((int) (packed >>> 32));
    }

    /** The low half of {@link #pack}. */
    static float low(long packed) {
        return Float.intBitsToFloat((int) packed);
    }

    /** An offset and a variance, {@link #pack}ed. */
    private static long moments(float offset, float var) {
        return pack(offset, var);
    }

    /** The offset of {@link #moments}. */
    static float offsetOf(long moments) {
        return high(moments);
    }

    /** The variance of {@link #moments}. */
    static float varianceOf(long moments) {
        return low(moments);
    }

    /**
     * The float values {@code columns} of a scale or shift in {@link Bf16Pairs}' paired order, in {@code into}: on the
     * heap, where C2 checks the loops' loads once rather than per load as for a memory segment. An absent parameter
     * fills it with {@code absent} (1 for a scale, 0 for a shift).
     */
    private float[] pairs(Tensor parameter, MemorySegment columns, float[] into, float absent) {
        if (parameter == null) {
            Arrays.fill(into, absent);
        } else {
            Bf16Pairs.toPairs(columns, into, c);
        }
        return into;
    }

    /**
     * {@link #forwardRows} when every tensor is float32: the same loops without the half-precision steps,
     * whose per-row type checks and rounding dispatch cost rows of 768 floats about 10 ns each, 5 to 9% of a
     * one-thread call on 8 x 768 (docs/benchmarks.md, "Before and after the restructuring (issue 13)").
     */
    private void forwardFloatRows(
            Pass pass,
            Tensor src,
            Tensor dst,
            Tensor scale,
            Tensor shift,
            Tensor mean,
            Tensor variance,
            long from,
            long to) {
        int axes = config.normalizedAxes();
        MemorySegment x = src.segment();
        MemorySegment y = dst.segment();
        MemorySegment gamma = scale == null ? ones() : scale.segment();
        MemorySegment beta = shift == null ? zeros() : shift.segment();
        long xStride = Rows.rowStride(src, axes);
        long yStride = Rows.rowStride(dst, axes);
        long row = from;
        if (!pass.globalStatistics && c <= PAIRED_ROWS_MAX_C) {
            for (; row + 1 < to; row += 2) { // see PAIRED_ROWS_MAX_C
                long xBase0 = Rows.row(src, axes, xStride, row) * Float.BYTES;
                long xBase1 = Rows.row(src, axes, xStride, row + 1) * Float.BYTES;
                float origin0 = config.rms() ? 0 : sampleMean(x, xBase0);
                float origin1 = config.rms() ? 0 : sampleMean(x, xBase1);
                long moments0 = moments(x, xBase0, origin0);
                long moments1 = moments(x, xBase1, origin1);
                float rstd0 = storeStatistics(pass, mean, variance, row, origin0, moments0);
                float rstd1 = storeStatistics(pass, mean, variance, row + 1, origin1, moments1);
                long yBase0 = Rows.row(dst, axes, yStride, row) * Float.BYTES;
                long yBase1 = Rows.row(dst, axes, yStride, row + 1) * Float.BYTES;
                normalize(x, xBase0, y, yBase0, gamma, beta, origin0, offsetOf(moments0), rstd0);
                normalize(x, xBase1, y, yBase1, gamma, beta, origin1, offsetOf(moments1), rstd1);
            }
        }
        for (; row < to; row++) {
            long xBase = Rows.row(src, axes, xStride, row) * Float.BYTES;
            long yBase = Rows.row(dst, axes, yStride, row) * Float.BYTES;
            float origin = pass.globalStatistics ? givenMean(mean, row) : config.rms() ? 0 : sampleMean(x, xBase);
            long moments = pass.globalStatistics ? givenMoments(variance, row) : moments(x, xBase, origin);
            float rstd = storeStatistics(pass, mean, variance, row, origin, moments);
            normalize(x, xBase, y, yBase, gamma, beta, origin, offsetOf(moments), rstd);
        }
    }

    /*
     * The loops below follow rules that keep every vector in registers (a vector that C2 cannot keep
     * there is boxed on the heap: thousands of bytes per call). No vector crosses an if-join or a call
     * of panorm's own: loads and stores call the Vector API directly (its methods are always inlined;
     * a helper of ours may not be, once it is compiled on its own), accumulators are added up by
     * shuffles written out in place ({@link #FOLDS}), each tail's contribution is reduced to a scalar
     * inside its block, and an absent scale or shift is replaced by ones or zeros instead of a branch.
     *
     * Float and int vectors are stored through their LongVector view ({@code v.reinterpretAsLongs()
     * .intoMemorySegment(...)}, free in compiled code). C2 compiles every FloatVector store into a memory segment
     * from one call site in the JDK, whose profile of segment types is shared by all callers; a reinterpretation
     * (float bits as ints and back, as the half-precision kernels do) that runs before C2 has compiled it stores
     * through a heap segment there, and a store compiled after that took the slow path: float32 forward on 32 x
     * 768 went from 3.5 to 9.4 us for the rest of the process once a bf16 call had run (docs/benchmarks.md, "One
     * process, several data types"). panorm reinterprets no LongVector, so that site only ever sees native memory.
     */

    /**
     * An estimate of the row's mean to shift the data by: the mean of its first four vectors (its first
     * element when it is shorter). Close values stay exact when shifted. The first vectors rather than a
     * sample spread over the row: those are the lines the next pass reads first anyway, and three more
     * cache misses per row cost measurably on tensors served from L3 (docs/benchmarks.md).
     */
    float sampleMean(MemorySegment x, long base) {
        if (c < 4 * LANES) {
            return x.get(JAVA_FLOAT, base);
        }
        long step = (long) LANES * Float.BYTES;
        FloatVector sum = FloatVector.fromMemorySegment(SPECIES, x, base, ORDER)
                .add(FloatVector.fromMemorySegment(SPECIES, x, base + step, ORDER))
                .add(FloatVector.fromMemorySegment(SPECIES, x, base + 2 * step, ORDER))
                .add(FloatVector.fromMemorySegment(SPECIES, x, base + 3 * step, ORDER));
        for (VectorShuffle<Float> fold : FOLDS) {
            sum = sum.add(sum.rearrange(fold));
        }
        float mean = sum.lane(0) / (4 * LANES);
        return Float.isFinite(mean) ? mean : x.get(JAVA_FLOAT, base); // huge values may overflow the sum
    }

    /**
     * In one pass, the sums of {@code d = x - origin} and of {@code d^2} over the row, returned as the
     * float bits of the first in the high and of the second in the low half of a long (no allocation).
     * One pass instead of two saves a third of the kernel's loads; {@link #moments} falls back to a
     * centred pass when the origin turns out too far from the mean for {@code E[d^2] - E[d]^2}.
     */
    long sums(MemorySegment x, long base, float origin) {
        FloatVector s0 = FloatVector.zero(SPECIES);
        FloatVector s1 = s0;
        FloatVector q0 = s0;
        FloatVector q1 = s0;
        int i = 0;
        while (i <= c - 4 * LANES) { // blocks of BLOCK elements, see BLOCK
            int blockEnd = Math.min(c - 4 * LANES, i + BLOCK - 4 * LANES);
            FloatVector b0 = FloatVector.zero(SPECIES);
            FloatVector b1 = b0;
            FloatVector b2 = b0;
            FloatVector b3 = b0;
            FloatVector p0 = b0;
            FloatVector p1 = b0;
            FloatVector p2 = b0;
            FloatVector p3 = b0;
            for (; i <= blockEnd; i += 4 * LANES) { // eight accumulators hide the adds' latency
                FloatVector d0 = FloatVector.fromMemorySegment(SPECIES, x, base + (long) (i) * Float.BYTES, ORDER)
                        .sub(origin);
                FloatVector d1 = FloatVector.fromMemorySegment(
                                SPECIES, x, base + (long) (i + LANES) * Float.BYTES, ORDER)
                        .sub(origin);
                FloatVector d2 = FloatVector.fromMemorySegment(
                                SPECIES, x, base + (long) (i + 2 * LANES) * Float.BYTES, ORDER)
                        .sub(origin);
                FloatVector d3 = FloatVector.fromMemorySegment(
                                SPECIES, x, base + (long) (i + 3 * LANES) * Float.BYTES, ORDER)
                        .sub(origin);
                b0 = b0.add(d0);
                b1 = b1.add(d1);
                b2 = b2.add(d2);
                b3 = b3.add(d3);
                p0 = d0.fma(d0, p0);
                p1 = d1.fma(d1, p1);
                p2 = d2.fma(d2, p2);
                p3 = d3.fma(d3, p3);
            }
            s0 = s0.add(b0.add(b2));
            s1 = s1.add(b1.add(b3));
            q0 = q0.add(p0.add(p2));
            q1 = q1.add(p1.add(p3));
        }
        for (; i <= c - LANES; i += LANES) {
            FloatVector d = FloatVector.fromMemorySegment(SPECIES, x, base + (long) (i) * Float.BYTES, ORDER)
                    .sub(origin);
            s0 = s0.add(d);
            q0 = d.fma(d, q0);
        }
        float tailSum = 0;
        float tailSquares = 0;
        for (; i < c; i++) { // scalar: masked loads past a segment's end take a slow path
            float d = x.get(JAVA_FLOAT, base + (long) i * Float.BYTES) - origin;
            tailSum += d;
            tailSquares = Math.fma(d, d, tailSquares);
        }
        FloatVector sums = s0.add(s1);
        FloatVector squares = q0.add(q1);
        for (VectorShuffle<Float> fold : FOLDS) {
            sums = sums.add(sums.rearrange(fold));
            squares = squares.add(squares.rearrange(fold));
        }
        float sum = sums.lane(0) + tailSum;
        float square = squares.lane(0) + tailSquares;
        return pack(sum, square);
    }

    /** Sum of {@code (x - origin - offset)^2} over the row. */
    float sumOfSquares(MemorySegment x, long base, float origin, float offset) {
        FloatVector a0 = FloatVector.zero(SPECIES);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int i = 0;
        while (i <= c - 4 * LANES) { // blocks of BLOCK elements, see BLOCK
            int blockEnd = Math.min(c - 4 * LANES, i + BLOCK - 4 * LANES);
            FloatVector b0 = FloatVector.zero(SPECIES);
            FloatVector b1 = b0;
            FloatVector b2 = b0;
            FloatVector b3 = b0;
            for (; i <= blockEnd; i += 4 * LANES) {
                FloatVector d0 = FloatVector.fromMemorySegment(SPECIES, x, base + (long) (i) * Float.BYTES, ORDER)
                        .sub(origin)
                        .sub(offset);
                FloatVector d1 = FloatVector.fromMemorySegment(
                                SPECIES, x, base + (long) (i + LANES) * Float.BYTES, ORDER)
                        .sub(origin)
                        .sub(offset);
                FloatVector d2 = FloatVector.fromMemorySegment(
                                SPECIES, x, base + (long) (i + 2 * LANES) * Float.BYTES, ORDER)
                        .sub(origin)
                        .sub(offset);
                FloatVector d3 = FloatVector.fromMemorySegment(
                                SPECIES, x, base + (long) (i + 3 * LANES) * Float.BYTES, ORDER)
                        .sub(origin)
                        .sub(offset);
                b0 = d0.fma(d0, b0);
                b1 = d1.fma(d1, b1);
                b2 = d2.fma(d2, b2);
                b3 = d3.fma(d3, b3);
            }
            a0 = a0.add(b0);
            a1 = a1.add(b1);
            a2 = a2.add(b2);
            a3 = a3.add(b3);
        }
        for (; i <= c - LANES; i += LANES) {
            FloatVector d = FloatVector.fromMemorySegment(SPECIES, x, base + (long) (i) * Float.BYTES, ORDER)
                    .sub(origin)
                    .sub(offset);
            a0 = d.fma(d, a0);
        }
        float tail = 0;
        for (; i < c; i++) {
            float d = x.get(JAVA_FLOAT, base + (long) i * Float.BYTES) - origin - offset;
            tail = Math.fma(d, d, tail);
        }
        FloatVector sum = a0.add(a1).add(a2.add(a3));
        for (VectorShuffle<Float> fold : FOLDS) {
            sum = sum.add(sum.rearrange(fold));
        }
        return sum.lane(0) + tail;
    }

    /**
     * {@code y = (x - origin - offset) * rstd * gamma + beta}, as {@code ((x - origin) * rstd - offset * rstd)
     * * gamma + beta}: one subtraction and two fused multiply-adds per element. {@code x - origin} is exact
     * for close values, and {@code offset * rstd} is small, so nothing large cancels.
     */
    void normalize(
            MemorySegment x,
            long xBase,
            MemorySegment y,
            long yBase,
            MemorySegment gamma,
            MemorySegment beta,
            float origin,
            float offset,
            float rstd) {
        float shift = -offset * rstd;
        int i = 0;
        for (; i <= c - 2 * LANES; i += 2 * LANES) { // two at a time: independent chains overlap
            long at = (long) i * Float.BYTES;
            long next = at + (long) LANES * Float.BYTES;
            FloatVector v0 = FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .sub(origin)
                    .fma(rstd, shift);
            FloatVector v1 = FloatVector.fromMemorySegment(SPECIES, x, xBase + next, ORDER)
                    .sub(origin)
                    .fma(rstd, shift);
            v0.fma(
                            FloatVector.fromMemorySegment(SPECIES, gamma, at, ORDER),
                            FloatVector.fromMemorySegment(SPECIES, beta, at, ORDER))
                    .reinterpretAsLongs()
                    .intoMemorySegment(y, yBase + at, ORDER);
            v1.fma(
                            FloatVector.fromMemorySegment(SPECIES, gamma, next, ORDER),
                            FloatVector.fromMemorySegment(SPECIES, beta, next, ORDER))
                    .reinterpretAsLongs()
                    .intoMemorySegment(y, yBase + next, ORDER);
        }
        for (; i <= c - LANES; i += LANES) {
            long at = (long) i * Float.BYTES;
            FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .sub(origin)
                    .fma(rstd, shift);
            v.fma(
                            FloatVector.fromMemorySegment(SPECIES, gamma, at, ORDER),
                            FloatVector.fromMemorySegment(SPECIES, beta, at, ORDER))
                    .reinterpretAsLongs()
                    .intoMemorySegment(y, yBase + at, ORDER);
        }
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            float v = Math.fma(x.get(JAVA_FLOAT, xBase + at) - origin, rstd, shift);
            y.set(JAVA_FLOAT, yBase + at, Math.fma(v, gamma.get(JAVA_FLOAT, at), beta.get(JAVA_FLOAT, at)));
        }
    }

    /** {@link #normalize} into bfloat16, each result rounded as {@link #narrowBf16} rounds it. */
    void normalizeToBf16(
            MemorySegment x,
            long xBase,
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
            IntVector bits = FloatVector.fromMemorySegment(SPECIES, x, xBase + at, ORDER)
                    .sub(origin)
                    .fma(rstd, shift)
                    .fma(
                            FloatVector.fromMemorySegment(SPECIES, gamma, at, ORDER),
                            FloatVector.fromMemorySegment(SPECIES, beta, at, ORDER))
                    .reinterpretAsInts();
            IntVector upper = bits.lanewise(VectorOperators.LSHR, 16);
            bits.add(upper.and(1))
                    .add(0x7fff)
                    .lanewise(VectorOperators.LSHR, 16)
                    .blend(upper.or(0x0040), bits.and(0x7fff_ffff).compare(VectorOperators.GT, 0x7f80_0000))
                    .convertShape(VectorOperators.I2S, HALVES, 0)
                    .intoMemorySegment(y, yBase + (long) i * Short.BYTES, ORDER);
        }
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            float v = Math.fma(x.get(JAVA_FLOAT, xBase + at) - origin, rstd, shift);
            Elements.set(
                    y,
                    DataType.BF16,
                    yBase / Short.BYTES + i,
                    Math.fma(v, gamma.get(JAVA_FLOAT, at), beta.get(JAVA_FLOAT, at)));
        }
    }

    @Override
    public Backend backward(
            Pass pass,
            Tensor diffDst,
            Tensor src,
            Tensor mean,
            Tensor variance,
            Tensor scale,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift,
            long rows) {
        ScalarKernel.checkBackwardRowLength(config.normalizedSize()); // the work arrays below hold 2C + 2 + LANES
        if (!rowsFit
                || !vectorizes(src)
                || !vectorizes(diffDst)
                || !vectorizes(diffSrc)
                || !vectorizes(scale)
                || !vectorizes(diffScale)
                || !vectorizes(diffShift)) {
            return scalar.backward(pass, diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift, rows);
        }
        boolean gradients = diffScale != null || diffShift != null;
        boolean half = isHalf(src) || isHalf(diffDst) || isHalf(diffSrc) || isHalf(scale);
        boolean paired = pairedBackward(src, diffDst, diffSrc);
        int parts = splitter.parts(rows, rows * c);
        if (parts == 1) { // no lambda, no allocation on the common path
            float[] work = takeScratch();
            HalfRows rowScratch = half ? takeHalfRows() : null;
            try {
                backwardRows(pass, diffDst, src, mean, variance, scale, diffSrc, work, rowScratch, gradients, 0, rows);
                storeGradients(work, diffScale, diffShift, paired);
            } finally {
                returnScratch(work);
                returnHalfRows(rowScratch);
            }
            return Backend.JAVA;
        }
        float[][] scratch = new float[parts][];
        HalfRows[] rowScratch = new HalfRows[half ? parts : 0];
        try {
            for (int p = 0; p < parts; p++) {
                scratch[p] = takeScratch();
            }
            for (int p = 0; p < rowScratch.length; p++) {
                rowScratch[p] = takeHalfRows();
            }
            splitter.run(
                    rows,
                    rows * c,
                    (from, to, part) -> backwardRows(
                            pass,
                            onThisThread(diffDst),
                            onThisThread(src),
                            onThisThread(mean),
                            onThisThread(variance),
                            onThisThread(scale),
                            onThisThread(diffSrc),
                            scratch[part],
                            half ? rowScratch[part].forThisThread() : null,
                            gradients,
                            from,
                            to));
            for (int p = 1; gradients && p < parts; p++) {
                for (int i = 0; i < 2 * c; i++) {
                    scratch[0][i] += scratch[p][i];
                }
            }
            storeGradients(scratch[0], diffScale, diffShift, paired);
        } finally {
            for (float[] sums : scratch) {
                returnScratch(sums);
            }
            for (HalfRows rows16 : rowScratch) {
                returnHalfRows(rows16);
            }
        }
        return Backend.JAVA;
    }

    /** Whether a backward call reads and writes its bf16 rows in {@link Bf16Pairs}' order. */
    private static boolean pairedBackward(Tensor src, Tensor diffDst, Tensor diffSrc) {
        return src.dataType() == DataType.BF16
                && diffDst.dataType() == DataType.BF16
                && diffSrc.dataType() == DataType.BF16;
    }

    /**
     * Stores the float sums, rounded to each gradient's type: once per call, so scalar code is fine. {@code paired}:
     * the sums are in {@link Bf16Pairs}' order, and are put back in column order first.
     */
    void storeGradients(float[] sums, Tensor diffScale, Tensor diffShift, boolean paired) {
        if (paired) {
            Bf16Pairs.fromPairs(sums, 0, c);
            Bf16Pairs.fromPairs(sums, c, c);
        }
        storeGradient(sums, 0, diffScale);
        storeGradient(sums, c, diffShift);
    }

    private void storeGradient(float[] sums, int from, Tensor gradient) {
        if (gradient == null) {
            return;
        }
        DataType type = gradient.dataType();
        if (type == DataType.F32) {
            MemorySegment.copy(sums, from, gradient.segment(), JAVA_FLOAT, 0, c);
        } else {
            for (int i = 0; i < c; i++) {
                Elements.set(gradient.segment(), type, i, sums[from + i]);
            }
        }
    }

    /**
     * Rows {@code [from, to)}, their offsets from strides computed once, as in {@link #forwardRows}.
     * {@code work} holds {@code 2C + 2 + LANES} floats: the dgamma and dbeta sums (added to when
     * {@code gradients}), a row's {@code sum(g)} and {@code sum(g * xhat)}, and room to add up lanes.
     * Half-precision x and dy rows are widened into {@code scratch} and a half-precision dx is narrowed from
     * it, as in {@link #forwardRows}.
     */
    private void backwardRows(
            Pass pass,
            Tensor diffDst,
            Tensor src,
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
        DataType xType = src.dataType();
        DataType dyType = diffDst.dataType();
        DataType dxType = diffSrc.dataType();
        boolean paired = pairedBackward(src, diffDst, diffSrc);
        MemorySegment x = xType == DataType.F32 || paired ? src.segment() : scratch.x;
        MemorySegment dy = dyType == DataType.F32 || paired ? diffDst.segment() : scratch.dy;
        MemorySegment dx = dxType == DataType.F16 ? scratch.out : diffSrc.segment();
        MemorySegment gamma = floats(scale, ones(), scratch, scratch == null ? null : scratch.gamma);
        float[] gammaPairs = paired ? pairs(scale, gamma, scratch.gammaRow, 1) : null;
        boolean onHeap = xType == DataType.F16 && dyType == DataType.F16 && dxType == DataType.F16; // HeapRows
        if (onHeap) {
            MemorySegment.copy(gamma, JAVA_FLOAT, 0, scratch.gammaRow, 0, c);
        }
        long xStride = Rows.rowStride(src, axes);
        long dyStride = Rows.rowStride(diffDst, axes);
        long dxStride = Rows.rowStride(diffSrc, axes);
        for (long row = from; row < to; row++) {
            long xBase = Rows.row(src, axes, xStride, row) * xType.byteSize();
            long dyBase = Rows.row(diffDst, axes, dyStride, row) * dyType.byteSize();
            long dxBase = Rows.row(diffSrc, axes, dxStride, row) * dxType.byteSize();
            float mu = mean == null ? 0 : mean.segment().getAtIndex(JAVA_FLOAT, row);
            float rstd = (float) (1 / Math.sqrt((double) variance.segment().getAtIndex(JAVA_FLOAT, row) + eps));
            if (paired) {
                Bf16Pairs.accumulate(x, xBase, dy, dyBase, c, gammaPairs, mu, rstd, work, gradients);
            } else if (onHeap) { // widened into heap rows; dx is computed over x's row and narrowed from it
                float16ToFloat(src.segment(), xBase, scratch.floats);
                float16ToFloat(diffDst.segment(), dyBase, scratch.dyRow);
                HeapRows.accumulate(scratch.floats, scratch.dyRow, scratch.gammaRow, c, mu, rstd, work, gradients);
            } else {
                if (xType != DataType.F32) {
                    widen(src.segment(), xBase, xType, x, scratch);
                    xBase = 0;
                }
                if (dyType != DataType.F32) {
                    widen(diffDst.segment(), dyBase, dyType, dy, scratch);
                    dyBase = 0;
                }
                accumulate(x, xBase, dy, dyBase, gamma, mu, rstd, work, gradients);
            }
            float meanG = pass.globalStatistics || config.rms() ? 0 : work[2 * c] / c;
            float meanGXhat = pass.globalStatistics ? 0 : work[2 * c + 1] / c;
            if (paired) {
                Bf16Pairs.inputGradient(x, xBase, dy, dyBase, dx, dxBase, c, gammaPairs, mu, rstd, meanG, meanGXhat);
                continue;
            }
            if (onHeap) {
                HeapRows.inputGradientToF16(
                        scratch.floats,
                        scratch.dyRow,
                        diffSrc.segment(),
                        dxBase,
                        scratch.gammaRow,
                        c,
                        mu,
                        rstd,
                        meanG,
                        meanGXhat);
                continue;
            }
            switch (dxType) {
                case F32 -> inputGradient(x, xBase, dy, dyBase, dx, dxBase, gamma, mu, rstd, meanG, meanGXhat);
                case BF16 -> inputGradientToBf16(x, xBase, dy, dyBase, dx, dxBase, gamma, mu, rstd, meanG, meanGXhat);
                case F16 -> { // through a float row: see narrow
                    inputGradient(x, xBase, dy, dyBase, dx, 0, gamma, mu, rstd, meanG, meanGXhat);
                    narrow(dx, diffSrc.segment(), dxBase, DataType.F16, scratch);
                }
            }
        }
    }

    /**
     * With {@code xhat = (x - mu) * rstd} and {@code g = dy * gamma}: the row's {@code sum(g)} and
     * {@code sum(g * xhat)} into {@code work[2C]} and {@code work[2C + 1]}; with {@code gradients} also
     * {@code dy * xhat} and {@code dy} added to {@code work[0, C)} and {@code work[C, 2C)}. Two loops
     * rather than one with a branch inside: the branch kept C2 from keeping the sums in registers.
     */
    void accumulate(
            MemorySegment x,
            long xBase,
            MemorySegment dy,
            long dyBase,
            MemorySegment gamma,
            float mu,
            float rstd,
            float[] work,
            boolean gradients) {
        if (gradients) {
            accumulateWithGradients(x, xBase, dy, dyBase, gamma, mu, rstd, work);
            return;
        }
        FloatVector sumG = FloatVector.zero(SPECIES);
        FloatVector sumGXhat = sumG;
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            FloatVector xhat = FloatVector.fromMemorySegment(SPECIES, x, xBase + (long) i * Float.BYTES, ORDER)
                    .sub(mu)
                    .mul(rstd);
            FloatVector g = FloatVector.fromMemorySegment(SPECIES, dy, dyBase + (long) i * Float.BYTES, ORDER)
                    .mul(FloatVector.fromMemorySegment(SPECIES, gamma, (long) i * Float.BYTES, ORDER));
            sumG = sumG.add(g);
            sumGXhat = g.fma(xhat, sumGXhat);
        }
        float tailG = 0;
        float tailGXhat = 0;
        for (; i < c; i++) { // scalar: masked loads past a segment's end take a slow path
            long at = (long) i * Float.BYTES;
            float xhat = (x.get(JAVA_FLOAT, xBase + at) - mu) * rstd;
            float g = dy.get(JAVA_FLOAT, dyBase + at) * gamma.get(JAVA_FLOAT, at);
            tailG += g;
            tailGXhat = Math.fma(g, xhat, tailGXhat);
        }
        for (VectorShuffle<Float> fold : FOLDS) {
            sumG = sumG.add(sumG.rearrange(fold));
            sumGXhat = sumGXhat.add(sumGXhat.rearrange(fold));
        }
        work[2 * c] = sumG.lane(0) + tailG;
        work[2 * c + 1] = sumGXhat.lane(0) + tailGXhat;
    }

    void accumulateWithGradients(
            MemorySegment x,
            long xBase,
            MemorySegment dy,
            long dyBase,
            MemorySegment gamma,
            float mu,
            float rstd,
            float[] work) {
        FloatVector sumG = FloatVector.zero(SPECIES);
        FloatVector sumGXhat = sumG;
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            FloatVector d = FloatVector.fromMemorySegment(SPECIES, dy, dyBase + (long) i * Float.BYTES, ORDER);
            FloatVector xhat = FloatVector.fromMemorySegment(SPECIES, x, xBase + (long) i * Float.BYTES, ORDER)
                    .sub(mu)
                    .mul(rstd);
            FloatVector g = d.mul(FloatVector.fromMemorySegment(SPECIES, gamma, (long) i * Float.BYTES, ORDER));
            sumG = sumG.add(g);
            sumGXhat = g.fma(xhat, sumGXhat);
            d.fma(xhat, FloatVector.fromArray(SPECIES, work, i)).intoArray(work, i);
            d.add(FloatVector.fromArray(SPECIES, work, c + i)).intoArray(work, c + i);
        }
        float tailG = 0;
        float tailGXhat = 0;
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            float d = dy.get(JAVA_FLOAT, dyBase + at);
            float xhat = (x.get(JAVA_FLOAT, xBase + at) - mu) * rstd;
            float g = d * gamma.get(JAVA_FLOAT, at);
            tailG += g;
            tailGXhat = Math.fma(g, xhat, tailGXhat);
            work[i] = Math.fma(d, xhat, work[i]);
            work[c + i] += d;
        }
        for (VectorShuffle<Float> fold : FOLDS) {
            sumG = sumG.add(sumG.rearrange(fold));
            sumGXhat = sumGXhat.add(sumGXhat.rearrange(fold));
        }
        work[2 * c] = sumG.lane(0) + tailG;
        work[2 * c + 1] = sumGXhat.lane(0) + tailGXhat;
    }

    /** {@code dx = rstd * (g - meanG - xhat * meanGXhat)}. */
    private void inputGradient(
            MemorySegment x,
            long xBase,
            MemorySegment dy,
            long dyBase,
            MemorySegment dx,
            long dxBase,
            MemorySegment gamma,
            float mu,
            float rstd,
            float meanG,
            float meanGXhat) {
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            FloatVector xhat = FloatVector.fromMemorySegment(SPECIES, x, xBase + (long) i * Float.BYTES, ORDER)
                    .sub(mu)
                    .mul(rstd);
            FloatVector g = FloatVector.fromMemorySegment(SPECIES, dy, dyBase + (long) i * Float.BYTES, ORDER)
                    .mul(FloatVector.fromMemorySegment(SPECIES, gamma, (long) i * Float.BYTES, ORDER));
            g.sub(meanG)
                    .sub(xhat.mul(meanGXhat))
                    .mul(rstd)
                    .reinterpretAsLongs()
                    .intoMemorySegment(dx, dxBase + (long) i * Float.BYTES, ORDER);
        }
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            float xhat = (x.get(JAVA_FLOAT, xBase + at) - mu) * rstd;
            float g = dy.get(JAVA_FLOAT, dyBase + at) * gamma.get(JAVA_FLOAT, at);
            dx.set(JAVA_FLOAT, dxBase + at, (g - meanG - xhat * meanGXhat) * rstd);
        }
    }

    /** {@link #inputGradient} into bfloat16, each result rounded as {@link #narrowBf16} rounds it. */
    private void inputGradientToBf16(
            MemorySegment x,
            long xBase,
            MemorySegment dy,
            long dyBase,
            MemorySegment dx,
            long dxBase,
            MemorySegment gamma,
            float mu,
            float rstd,
            float meanG,
            float meanGXhat) {
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            FloatVector xhat = FloatVector.fromMemorySegment(SPECIES, x, xBase + (long) i * Float.BYTES, ORDER)
                    .sub(mu)
                    .mul(rstd);
            FloatVector g = FloatVector.fromMemorySegment(SPECIES, dy, dyBase + (long) i * Float.BYTES, ORDER)
                    .mul(FloatVector.fromMemorySegment(SPECIES, gamma, (long) i * Float.BYTES, ORDER));
            IntVector bits = g.sub(meanG).sub(xhat.mul(meanGXhat)).mul(rstd).reinterpretAsInts();
            IntVector upper = bits.lanewise(VectorOperators.LSHR, 16);
            bits.add(upper.and(1))
                    .add(0x7fff)
                    .lanewise(VectorOperators.LSHR, 16)
                    .blend(upper.or(0x0040), bits.and(0x7fff_ffff).compare(VectorOperators.GT, 0x7f80_0000))
                    .convertShape(VectorOperators.I2S, HALVES, 0)
                    .intoMemorySegment(dx, dxBase + (long) i * Short.BYTES, ORDER);
        }
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            float xhat = (x.get(JAVA_FLOAT, xBase + at) - mu) * rstd;
            float g = dy.get(JAVA_FLOAT, dyBase + at) * gamma.get(JAVA_FLOAT, at);
            Elements.set(dx, DataType.BF16, dxBase / Short.BYTES + i, (g - meanG - xhat * meanGXhat) * rstd);
        }
    }

    private static boolean isHalf(Tensor tensor) {
        return tensor != null && tensor.dataType() != DataType.F32;
    }

    /**
     * The float values of a scale or shift: {@code standIn} when absent, the tensor's own memory when float32,
     * else {@code into} with the values widened (once per call and part, not per row).
     */
    MemorySegment floats(Tensor parameter, MemorySegment standIn, HalfRows scratch, MemorySegment into) {
        if (parameter == null) {
            return standIn;
        }
        if (parameter.dataType() == DataType.F32) {
            return parameter.segment();
        }
        widen(parameter.segment(), 0, parameter.dataType(), into, scratch);
        return into;
    }

    /**
     * Float rows for a call on half-precision tensors: a widened src (x) row, a widened dy row, a y or dx row
     * before it is narrowed, the widened scale and shift; and float rows on the heap for the float16
     * conversions (see {@link #narrow}) and {@link HeapRows}. Native, like the caller's memory, and reused so that steady-state
     * calls allocate nothing. The native rows are memory of an automatic arena, freed with this object, seen through
     * views that the thread using them owns ({@link #forThisThread}), as {@link ThreadRow}'s and as the caller's tensors are
     * ({@link OwnedMemory}): with memory that has no owner thread next to them, C2 recompiled the loops for seconds
     * (float32 in, float16 out and bf16 scale and shift took 6 to 23 s to stop allocating in backward after other types
     * had run).
     */
    static final class HalfRows {
        /** The five native rows, each on its own cache lines. */
        private final MemorySegment memory;

        private final long bytes;
        private final long stride;
        /**
         * The threads that owned views of the rows were made for, newest first, and those views ({@link #forThisThread}): a
         * split call's parts take rows on one thread and use them on another, so each thread's are kept.
         */
        private final Thread[] owners = new Thread[4];

        private final MemorySegment[][] ownedRows = new MemorySegment[4][];

        MemorySegment x;
        MemorySegment dy;
        MemorySegment out;
        MemorySegment gamma;
        MemorySegment beta;
        final float[] floats;
        /** A second widened x row, for two float16 rows at a time ({@link #PAIRED_ROWS_MAX_C}). */
        final float[] secondFloats;
        /**
         * Scale and shift on the heap: in {@link Bf16Pairs}' order for all-bf16 calls, in column order for float16
         * rows ({@link HeapRows}).
         */
        final float[] gammaRow;

        final float[] betaRow;
        /** A float16 dy row, widened, for {@link HeapRows}; {@link #floats} holds x's. */
        final float[] dyRow;

        HalfRows(int c) {
            bytes = (long) c * Float.BYTES;
            stride = (bytes + 63) & -64; // each row on its own cache lines
            memory = Arena.ofAuto().allocate(5 * stride, 64);
            floats = new float[c];
            secondFloats = new float[c];
            gammaRow = new float[c];
            betaRow = new float[c];
            dyRow = new float[c];
        }

        /**
         * These rows for a call on the current thread, seen through views it owns: every loop must meet memory of one
         * kind ({@link OwnedMemory}). Keep this object reachable while the loops run.
         */
        HalfRows forThisThread() {
            MemorySegment[] rows = ownedRows(Thread.currentThread());
            x = rows[0];
            dy = rows[1];
            out = rows[2];
            gamma = rows[3];
            beta = rows[4];
            return this;
        }

        /** Views of the rows that {@code thread} owns, made once per thread (the oldest thread's are dropped). */
        private MemorySegment[] ownedRows(Thread thread) {
            for (int i = 0; i < owners.length; i++) {
                if (owners[i] == thread) {
                    return ownedRows[i];
                }
            }
            System.arraycopy(owners, 0, owners, 1, owners.length - 1);
            System.arraycopy(ownedRows, 0, ownedRows, 1, ownedRows.length - 1);
            owners[0] = thread;
            ownedRows[0] = rows(OwnedMemory.ownedView(memory));
            return ownedRows[0];
        }

        /** The five rows of {@code view}, a view of {@link #memory}. */
        private MemorySegment[] rows(MemorySegment view) {
            MemorySegment[] rows = new MemorySegment[5];
            for (int i = 0; i < rows.length; i++) {
                rows[i] = view.asSlice(i * stride, bytes);
            }
            return rows;
        }
    }

    HalfRows takeHalfRows() {
        HalfRows rows;
        synchronized (halfRows) {
            rows = halfRows.poll();
        }
        return (rows != null ? rows : new HalfRows(c)).forThisThread();
    }

    void returnHalfRows(HalfRows rows) {
        if (rows == null) {
            return;
        }
        synchronized (halfRows) {
            halfRows.push(rows);
        }
    }

    /**
     * Widens the {@code C} half-precision values at {@code base} in {@code src} into the floats {@code dst},
     * exactly; float16 through {@code scratch}'s float row on the heap (see {@link #narrow}).
     */
    void widen(MemorySegment src, long base, DataType type, MemorySegment dst, HalfRows scratch) {
        if (type == DataType.BF16) {
            widenBf16(src, base, dst);
        } else {
            float16ToFloat(src, base, scratch.floats);
            MemorySegment.copy(scratch.floats, 0, dst, JAVA_FLOAT, 0, c);
        }
    }

    /** bfloat16 is the upper half of a float: zero-extended to int lanes and shifted up, exact. */
    private void widenBf16(MemorySegment src, long base, MemorySegment dst) {
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            ((IntVector) ShortVector.fromMemorySegment(HALVES, src, base + (long) i * Short.BYTES, ORDER)
                            .convertShape(VectorOperators.S2I, INTS, 0))
                    .lanewise(VectorOperators.LSHL, 16)
                    .reinterpretAsFloats()
                    .reinterpretAsLongs()
                    .intoMemorySegment(dst, (long) i * Float.BYTES, ORDER);
        }
        for (; i < c; i++) {
            dst.setAtIndex(JAVA_FLOAT, i, Elements.get(src, DataType.BF16, base / Short.BYTES + i));
        }
    }

    /** The {@code C} float16 values at byte {@code base} in {@code src}, widened into {@code floats}: see {@link #narrow}. */
    static void float16ToFloat(MemorySegment src, long base, float[] floats) {
        for (int i = 0; i < floats.length; i++) {
            floats[i] = Float.float16ToFloat(src.get(JAVA_SHORT_UNALIGNED, base + (long) i * Short.BYTES));
        }
    }

    /** {@code floats} rounded to float16 into {@code dst} at byte {@code base}: see {@link #narrow}. */
    private static void floatToFloat16(float[] floats, MemorySegment dst, long base) {
        for (int i = 0; i < floats.length; i++) {
            dst.set(JAVA_SHORT_UNALIGNED, base + (long) i * Short.BYTES, Float.floatToFloat16(floats[i]));
        }
    }

    /**
     * Rounds the {@code C} floats {@code src} to {@code type} into {@code dst} at {@code base}, ties to even.
     * float16 goes through {@code scratch}'s float row on the heap, in both directions: JDK 25's Vector API has
     * no float16 conversion, but C2 compiles {@link Float#floatToFloat16} and {@link Float#float16ToFloat} in a
     * plain loop with an int index, between a memory segment and a heap array, into the CPU's conversion
     * instructions ({@code vcvtps2ph}/{@code vcvtph2ps}); docs/benchmarks.md, "Measurements behind the code".
     */
    void narrow(MemorySegment src, MemorySegment dst, long base, DataType type, HalfRows scratch) {
        if (type == DataType.BF16) {
            narrowBf16(src, dst, base);
        } else {
            MemorySegment.copy(src, JAVA_FLOAT, 0, scratch.floats, 0, c);
            floatToFloat16(scratch.floats, dst, base);
        }
    }

    /** As {@link Elements#floatToBf16}, in int lanes: add half an ulp (less one on ties to an even result), truncate. */
    private void narrowBf16(MemorySegment src, MemorySegment dst, long base) {
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            IntVector bits = FloatVector.fromMemorySegment(SPECIES, src, (long) i * Float.BYTES, ORDER)
                    .reinterpretAsInts();
            IntVector upper = bits.lanewise(VectorOperators.LSHR, 16);
            bits.add(upper.and(1))
                    .add(0x7fff)
                    .lanewise(VectorOperators.LSHR, 16)
                    .blend(upper.or(0x0040), bits.and(0x7fff_ffff).compare(VectorOperators.GT, 0x7f80_0000)) // NaN
                    .convertShape(VectorOperators.I2S, HALVES, 0)
                    .intoMemorySegment(dst, base + (long) i * Short.BYTES, ORDER);
        }
        for (; i < c; i++) {
            Elements.set(dst, DataType.BF16, base / Short.BYTES + i, src.getAtIndex(JAVA_FLOAT, i));
        }
    }

    /**
     * Zeroed {@code 2C + 2 + LANES} floats (see {@link #backwardRows}), reused so that steady-state calls allocate
     * nothing.
     */
    float[] takeScratch() {
        float[] work;
        synchronized (gradientScratch) {
            work = gradientScratch.poll();
        }
        if (work == null) {
            return new float[2 * c + 2 + LANES];
        }
        Arrays.fill(work, 0);
        return work;
    }

    void returnScratch(float[] work) {
        if (work == null) {
            return;
        }
        synchronized (gradientScratch) {
            gradientScratch.push(work);
        }
    }

    @Override
    public String implementation(Tensor src, Tensor dst, Tensor scale, Tensor shift, long rows) {
        String refused = refused(src, dst, scale, shift);
        if (refused != null) {
            return scalar.implementation(src, dst, scale, shift, rows) + " (" + refused + ")";
        }
        int threads = splitter.threads(rows, rows * c);
        return "java:vector " + LANES + "x32" + (threads > 1 ? ", " + threads + " threads" : "");
    }

    /**
     * Why a forward call on these tensors goes to the scalar kernels, naming the tensors at fault; null if it does not.
     */
    private String refused(Tensor src, Tensor dst, Tensor scale, Tensor shift) {
        if (!rowsFit) {
            return "the vector kernels take rows of at most " + MAX_C + " elements";
        }
        StringJoiner faults = new StringJoiner(", ", "the vector kernels take rows with unit stride; ", "");
        faults.setEmptyValue("");
        addFault(faults, "src", src);
        addFault(faults, "dst", dst);
        addFault(faults, "scale", scale);
        addFault(faults, "shift", shift);
        return faults.length() == 0 ? null : faults.toString();
    }

    private void addFault(StringJoiner faults, String name, Tensor tensor) {
        // a tensor on the heap: the kernels see its native copy, in its layout (OwnedMemory.HeapCopies)
        if (tensor != null && !JavaKernels.hasUnitStrideRows(config.normalizedAxes(), tensor)) {
            faults.add(name + " is strided");
        }
    }

    @Override
    public void close() {
        // Nothing native to release.
    }
}
