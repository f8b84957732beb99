package dev.panorm;

import static dev.panorm.VectorKernel.BLOCK;
import static dev.panorm.VectorKernel.FOLDS;
import static dev.panorm.VectorKernel.INTS;
import static dev.panorm.VectorKernel.LANES;
import static dev.panorm.VectorKernel.ORDER;
import static dev.panorm.VectorKernel.SPECIES;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;

/**
 * {@link VectorKernel}'s loops for bfloat16 rows, read and written where they lie, without a float row in
 * between. A bf16 value is the upper half of a float, so one int lane holds two of them: shifted up by 16
 * it is the first (even) value, masked with {@code 0xFFFF0000} the second (odd). Each load of {@link #LANES}
 * ints gives two float vectors, even and odd values, in two integer operations, and each store of int
 * lanes joins two rounded vectors in two more. Sums do not care for the order of their terms; where
 * elements meet per-column values (scale, shift, their gradients) those are kept in the same order,
 * "paired": for each block of {@code 2 * LANES} columns, the even ones and then the odd ones.
 *
 * <p>Rounding to bf16 adds {@code 0x7fff} and the lowest kept bit to a float's bits and truncates, as {@link
 * Elements#floatToBf16} does for numbers, without its test for NaN: that test only matters for a NaN with
 * bits set in the lower half of its payload, which the addition could carry into the exponent. Here no NaN
 * has them. A NaN result of arithmetic is either the CPU's default NaN or an operand's NaN, made quiet
 * (IEEE 754 6.2.3), and every operand's lower half is zero: bf16 data by its format, the row's statistics
 * by the same rule (statistics from the caller are checked finite), and scale and shift because {@link #toPairs}
 * clears it (keeping the upper
 * half, the only bits that reach a bf16 NaN). So every NaN rounds to what {@code floatToBf16} makes of it.
 *
 * <p>The same rules as {@link VectorKernel}'s loops keep the vectors in registers (see the comment above
 * its loops).
 */
final class Bf16Pairs {
    private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /** The upper halves of int lanes: the odd bf16 values of a pair as floats. */
    private static final int ODD = 0xFFFF_0000;
    /** A float NaN's quiet bit. */
    private static final int QUIET = 0x0040_0000;
    /** From two float vectors of consecutive columns, their even columns; lanes from the second vector are exceptional. */
    private static final VectorShuffle<Float> EVENS = VectorShuffle.fromOp(SPECIES, lane -> 2 * lane);
    /** From two float vectors of consecutive columns, their odd columns. */
    private static final VectorShuffle<Float> ODDS = VectorShuffle.fromOp(SPECIES, lane -> 2 * lane + 1);
    /** Back from paired order: lane j of the first half of a block, from the even or odd vector. */
    private static final VectorShuffle<Float> FIRST =
            VectorShuffle.fromOp(SPECIES, lane -> lane / 2 + (lane % 2) * LANES);
    /** Lane j of the second half of a block. */
    private static final VectorShuffle<Float> SECOND =
            VectorShuffle.fromOp(SPECIES, lane -> (lane + LANES) / 2 + (lane % 2) * LANES);

    private Bf16Pairs() {}

    /** The columns of a row that the paired loops take; the rest are a scalar tail in column order. */
    static int paired(int c) {
        return c - c % (2 * LANES);
    }

    /**
     * Copies the {@code c} floats of {@code columns} into {@code pairs} in paired order; a NaN is made quiet and
     * loses the lower half of its payload (see the class comment).
     */
    static void toPairs(MemorySegment columns, float[] pairs, int c) {
        int end = paired(c);
        long step = (long) LANES * Float.BYTES;
        for (int i = 0; i < end; i += 2 * LANES) {
            long at = (long) i * Float.BYTES;
            FloatVector first = FloatVector.fromMemorySegment(SPECIES, columns, at, ORDER);
            FloatVector second = FloatVector.fromMemorySegment(SPECIES, columns, at + step, ORDER);
            FloatVector even = first.rearrange(EVENS, second);
            FloatVector odd = first.rearrange(ODDS, second);
            even.blend(
                            even.reinterpretAsInts().and(ODD).or(QUIET).reinterpretAsFloats(),
                            even.test(VectorOperators.IS_NAN))
                    .intoArray(pairs, i);
            odd.blend(
                            odd.reinterpretAsInts().and(ODD).or(QUIET).reinterpretAsFloats(),
                            odd.test(VectorOperators.IS_NAN))
                    .intoArray(pairs, i + LANES);
        }
        for (int i = end; i < c; i++) { // the tail's NaNs reach the row's sums in the backward pass
            float value = columns.getAtIndex(FLOAT, i);
            pairs[i] = value == value ? value : Float.intBitsToFloat(Float.floatToRawIntBits(value) & ODD | QUIET);
        }
    }

    /** Puts the {@code c} floats at {@code from} in {@code work}, in paired order, back in column order. */
    static void fromPairs(float[] work, int from, int c) {
        for (int at = from; at < from + paired(c); at += 2 * LANES) {
            FloatVector even = FloatVector.fromArray(SPECIES, work, at);
            FloatVector odd = FloatVector.fromArray(SPECIES, work, at + LANES);
            FloatVector first = even.rearrange(FIRST, odd);
            even.rearrange(SECOND, odd).intoArray(work, at + LANES);
            first.intoArray(work, at);
        }
    }

    /** As {@link VectorKernel#sampleMean}: the mean of the row's first {@code 4 * LANES} values. */
    static float sampleMean(MemorySegment x, long base, int c) {
        if (c < 4 * LANES) {
            return bf16(x, base, 0);
        }
        IntVector first = IntVector.fromMemorySegment(INTS, x, base, ORDER);
        IntVector second = IntVector.fromMemorySegment(INTS, x, base + (long) LANES * Integer.BYTES, ORDER);
        FloatVector sum = first.lanewise(VectorOperators.LSHL, 16)
                .reinterpretAsFloats()
                .add(first.and(ODD).reinterpretAsFloats())
                .add(second.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats())
                .add(second.and(ODD).reinterpretAsFloats());
        for (VectorShuffle<Float> fold : FOLDS) {
            sum = sum.add(sum.rearrange(fold));
        }
        float mean = sum.lane(0) / (4 * LANES);
        return Float.isFinite(mean) ? mean : bf16(x, base, 0);
    }

    /** As {@link VectorKernel#sums}, on a bf16 row. */
    static long sums(MemorySegment x, long base, int c, float origin) {
        FloatVector s0 = FloatVector.zero(SPECIES);
        FloatVector s1 = s0;
        FloatVector q0 = s0;
        FloatVector q1 = s0;
        int end = paired(c);
        int i = 0;
        while (i < end) { // blocks of BLOCK elements, see VectorKernel.BLOCK
            int blockEnd = Math.min(end, i + BLOCK);
            FloatVector b0 = FloatVector.zero(SPECIES);
            FloatVector b1 = b0;
            FloatVector p0 = b0;
            FloatVector p1 = b0;
            for (; i < blockEnd; i += 2 * LANES) {
                IntVector bits = IntVector.fromMemorySegment(INTS, x, base + (long) i * Short.BYTES, ORDER);
                FloatVector d0 = bits.lanewise(VectorOperators.LSHL, 16)
                        .reinterpretAsFloats()
                        .sub(origin);
                FloatVector d1 = bits.and(ODD).reinterpretAsFloats().sub(origin);
                b0 = b0.add(d0);
                b1 = b1.add(d1);
                p0 = d0.fma(d0, p0);
                p1 = d1.fma(d1, p1);
            }
            s0 = s0.add(b0);
            s1 = s1.add(b1);
            q0 = q0.add(p0);
            q1 = q1.add(p1);
        }
        float tailSum = 0;
        float tailSquares = 0;
        for (; i < c; i++) {
            float d = bf16(x, base, i) - origin;
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
        return VectorKernel.pack(sum, square);
    }

    /** As {@link VectorKernel#sumOfSquares}, on a bf16 row. */
    static float sumOfSquares(MemorySegment x, long base, int c, float origin, float offset) {
        FloatVector a0 = FloatVector.zero(SPECIES);
        FloatVector a1 = a0;
        int end = paired(c);
        int i = 0;
        while (i < end) {
            int blockEnd = Math.min(end, i + BLOCK);
            FloatVector b0 = FloatVector.zero(SPECIES);
            FloatVector b1 = b0;
            for (; i < blockEnd; i += 2 * LANES) {
                IntVector bits = IntVector.fromMemorySegment(INTS, x, base + (long) i * Short.BYTES, ORDER);
                FloatVector d0 = bits.lanewise(VectorOperators.LSHL, 16)
                        .reinterpretAsFloats()
                        .sub(origin)
                        .sub(offset);
                FloatVector d1 = bits.and(ODD).reinterpretAsFloats().sub(origin).sub(offset);
                b0 = d0.fma(d0, b0);
                b1 = d1.fma(d1, b1);
            }
            a0 = a0.add(b0);
            a1 = a1.add(b1);
        }
        float tail = 0;
        for (; i < c; i++) {
            float d = bf16(x, base, i) - origin - offset;
            tail = Math.fma(d, d, tail);
        }
        FloatVector sum = a0.add(a1);
        for (VectorShuffle<Float> fold : FOLDS) {
            sum = sum.add(sum.rearrange(fold));
        }
        return sum.lane(0) + tail;
    }

    /**
     * As {@link VectorKernel#normalizeToBf16}, from a bf16 row, with {@code gamma} and {@code beta} in paired
     * order. Each result is rounded as {@link Elements#floatToBf16} rounds it, and each pair of rounded vectors is
     * stored into y as one joined vector, through its {@code LongVector} view (see docs/performance.md, "Other Vector
     * API code in the same process"). Before that view, stores of int vectors into a segment took a slow path, and the
     * joined pairs went through an int array copied into y per row; the direct store is 11 to 20% faster on AMD Zen 5
     * (docs/benchmarks.md, "bf16 forward stores its rows directly").
     */
    static void normalize(
            MemorySegment x,
            long xBase,
            MemorySegment y,
            long yBase,
            int c,
            float[] gamma,
            float[] beta,
            float origin,
            float offset,
            float rstd) {
        float shift = -offset * rstd;
        int end = paired(c);

        int i = 0;
        for (; i < end; i += 2 * LANES) {
            IntVector bits = IntVector.fromMemorySegment(INTS, x, xBase + (long) i * Short.BYTES, ORDER);
            FloatVector evenY = bits.lanewise(VectorOperators.LSHL, 16)
                    .reinterpretAsFloats()
                    .sub(origin)
                    .fma(rstd, shift)
                    .fma(FloatVector.fromArray(SPECIES, gamma, i), FloatVector.fromArray(SPECIES, beta, i));
            FloatVector oddY = bits.and(ODD)
                    .reinterpretAsFloats()
                    .sub(origin)
                    .fma(rstd, shift)
                    .fma(
                            FloatVector.fromArray(SPECIES, gamma, i + LANES),
                            FloatVector.fromArray(SPECIES, beta, i + LANES));
            // Round to nearest even: add 0x7fff and the lowest kept bit, truncate (NaN: see the class comment).
            IntVector even = evenY.reinterpretAsInts();
            IntVector odd = oddY.reinterpretAsInts();
            IntVector roundedEven =
                    even.add(even.lanewise(VectorOperators.LSHR, 16).and(1)).add(0x7fff);
            IntVector roundedOdd =
                    odd.add(odd.lanewise(VectorOperators.LSHR, 16).and(1)).add(0x7fff);
            roundedEven
                    .lanewise(VectorOperators.LSHR, 16)
                    .or(roundedOdd.and(ODD))
                    .reinterpretAsLongs()
                    .intoMemorySegment(y, yBase + (long) i * Short.BYTES, ORDER);
        }
        for (; i < c; i++) {
            long at = (long) i * Float.BYTES;
            float v = Math.fma(bf16(x, xBase, i) - origin, rstd, shift);
            Elements.set(y, DataType.BF16, yBase / Short.BYTES + i, Math.fma(v, gamma[i], beta[i]));
        }
    }

    /**
     * As {@link VectorKernel#accumulate}, on bf16 rows x and dy, with {@code gamma} and the gradient sums in {@code
     * work[0, 2C)} in paired order.
     */
    static void accumulate(
            MemorySegment x,
            long xBase,
            MemorySegment dy,
            long dyBase,
            int c,
            float[] gamma,
            float mu,
            float rstd,
            float[] work,
            boolean gradients) {
        if (gradients) {
            accumulateWithGradients(x, xBase, dy, dyBase, c, gamma, mu, rstd, work);
            return;
        }
        FloatVector sumG = FloatVector.zero(SPECIES);
        FloatVector sumGXhat = sumG;
        int end = paired(c);
        int i = 0;
        for (; i < end; i += 2 * LANES) {
            long at = (long) i * Float.BYTES;
            IntVector xBits = IntVector.fromMemorySegment(INTS, x, xBase + (long) i * Short.BYTES, ORDER);
            IntVector dyBits = IntVector.fromMemorySegment(INTS, dy, dyBase + (long) i * Short.BYTES, ORDER);
            FloatVector xhat0 = xBits.lanewise(VectorOperators.LSHL, 16)
                    .reinterpretAsFloats()
                    .sub(mu)
                    .mul(rstd);
            FloatVector xhat1 = xBits.and(ODD).reinterpretAsFloats().sub(mu).mul(rstd);
            FloatVector g0 = dyBits.lanewise(VectorOperators.LSHL, 16)
                    .reinterpretAsFloats()
                    .mul(FloatVector.fromArray(SPECIES, gamma, i));
            FloatVector g1 =
                    dyBits.and(ODD).reinterpretAsFloats().mul(FloatVector.fromArray(SPECIES, gamma, i + LANES));
            sumG = sumG.add(g0).add(g1);
            sumGXhat = g1.fma(xhat1, g0.fma(xhat0, sumGXhat));
        }
        float tailG = 0;
        float tailGXhat = 0;
        for (; i < c; i++) {
            float xhat = (bf16(x, xBase, i) - mu) * rstd;
            float g = bf16(dy, dyBase, i) * gamma[i];
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

    private static void accumulateWithGradients(
            MemorySegment x,
            long xBase,
            MemorySegment dy,
            long dyBase,
            int c,
            float[] gamma,
            float mu,
            float rstd,
            float[] work) {
        FloatVector sumG = FloatVector.zero(SPECIES);
        FloatVector sumGXhat = sumG;
        int end = paired(c);
        int i = 0;
        for (; i < end; i += 2 * LANES) {
            long at = (long) i * Float.BYTES;
            IntVector xBits = IntVector.fromMemorySegment(INTS, x, xBase + (long) i * Short.BYTES, ORDER);
            IntVector dyBits = IntVector.fromMemorySegment(INTS, dy, dyBase + (long) i * Short.BYTES, ORDER);
            FloatVector xhat0 = xBits.lanewise(VectorOperators.LSHL, 16)
                    .reinterpretAsFloats()
                    .sub(mu)
                    .mul(rstd);
            FloatVector xhat1 = xBits.and(ODD).reinterpretAsFloats().sub(mu).mul(rstd);
            FloatVector d0 = dyBits.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector d1 = dyBits.and(ODD).reinterpretAsFloats();
            FloatVector g0 = d0.mul(FloatVector.fromArray(SPECIES, gamma, i));
            FloatVector g1 = d1.mul(FloatVector.fromArray(SPECIES, gamma, i + LANES));
            sumG = sumG.add(g0).add(g1);
            sumGXhat = g1.fma(xhat1, g0.fma(xhat0, sumGXhat));
            d0.fma(xhat0, FloatVector.fromArray(SPECIES, work, i)).intoArray(work, i);
            d1.fma(xhat1, FloatVector.fromArray(SPECIES, work, i + LANES)).intoArray(work, i + LANES);
            d0.add(FloatVector.fromArray(SPECIES, work, c + i)).intoArray(work, c + i);
            d1.add(FloatVector.fromArray(SPECIES, work, c + i + LANES)).intoArray(work, c + i + LANES);
        }
        float tailG = 0;
        float tailGXhat = 0;
        for (; i < c; i++) {
            float d = bf16(dy, dyBase, i);
            float xhat = (bf16(x, xBase, i) - mu) * rstd;
            float g = d * gamma[i];
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

    /**
     * As {@link VectorKernel}'s input gradient, {@code dx = rstd * (g - meanG - xhat * meanGXhat)}, on bf16 rows
     * x, dy and dx, with {@code gamma} in paired order.
     */
    static void inputGradient(
            MemorySegment x,
            long xBase,
            MemorySegment dy,
            long dyBase,
            MemorySegment dx,
            long dxBase,
            int c,
            float[] gamma,
            float mu,
            float rstd,
            float meanG,
            float meanGXhat) {
        int end = paired(c);
        int i = 0;
        for (; i < end; i += 2 * LANES) {
            long at = (long) i * Float.BYTES;
            IntVector xBits = IntVector.fromMemorySegment(INTS, x, xBase + (long) i * Short.BYTES, ORDER);
            IntVector dyBits = IntVector.fromMemorySegment(INTS, dy, dyBase + (long) i * Short.BYTES, ORDER);
            FloatVector xhat0 = xBits.lanewise(VectorOperators.LSHL, 16)
                    .reinterpretAsFloats()
                    .sub(mu)
                    .mul(rstd);
            FloatVector xhat1 = xBits.and(ODD).reinterpretAsFloats().sub(mu).mul(rstd);
            IntVector even = dyBits.lanewise(VectorOperators.LSHL, 16)
                    .reinterpretAsFloats()
                    .mul(FloatVector.fromArray(SPECIES, gamma, i))
                    .sub(meanG)
                    .sub(xhat0.mul(meanGXhat))
                    .mul(rstd)
                    .reinterpretAsInts();
            IntVector odd = dyBits.and(ODD)
                    .reinterpretAsFloats()
                    .mul(FloatVector.fromArray(SPECIES, gamma, i + LANES))
                    .sub(meanG)
                    .sub(xhat1.mul(meanGXhat))
                    .mul(rstd)
                    .reinterpretAsInts();
            even.add(even.lanewise(VectorOperators.LSHR, 16).and(1))
                    .add(0x7fff)
                    .lanewise(VectorOperators.LSHR, 16)
                    .or(odd.add(odd.lanewise(VectorOperators.LSHR, 16).and(1))
                            .add(0x7fff)
                            .and(ODD))
                    .reinterpretAsLongs()
                    .intoMemorySegment(dx, dxBase + (long) i * Short.BYTES, ORDER);
        }
        for (; i < c; i++) {
            float xhat = (bf16(x, xBase, i) - mu) * rstd;
            float g = bf16(dy, dyBase, i) * gamma[i];
            Elements.set(dx, DataType.BF16, dxBase / Short.BYTES + i, (g - meanG - xhat * meanGXhat) * rstd);
        }
    }

    /** Value {@code i} of the bf16 row at byte {@code base}: the loops' tails count bytes, Elements elements. */
    static float bf16(MemorySegment x, long base, int i) {
        return Elements.get(x, DataType.BF16, base / Short.BYTES + i);
    }
}
