package dev.panorm;

import static dev.panorm.VectorKernel.BLOCK;
import static dev.panorm.VectorKernel.FOLDS;
import static dev.panorm.VectorKernel.HALVES;
import static dev.panorm.VectorKernel.INTS;
import static dev.panorm.VectorKernel.LANES;
import static dev.panorm.VectorKernel.ORDER;
import static dev.panorm.VectorKernel.SPECIES;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;

/**
 * {@link VectorKernel}'s loops over float rows on the heap, for float16 data, and for bf16 data in the fused
 * kernel: their rows are widened into float rows anyway (JDK 25's Vector API has no float16 conversion:
 * {@link VectorKernel#narrow}), and on an array the loops need neither a copy into native memory nor the memory
 * segment checks that C2 repeats at every access. The loops are {@link VectorKernel}'s, line for line, so the
 * results have the same bits; the ones that write float16 do each element's operations in a plain loop that C2
 * vectorizes with the rounding, the ones that read or write bf16 convert in int lanes as {@link VectorKernel}
 * does (C2 does not vectorize the scalar bf16 conversions), written out in each loop: a vector passed to or
 * from a helper of ours is boxed once C2 compiles the helper on its own (see the comment above VectorKernel's
 * loops).
 */
final class HeapRows {
    private HeapRows() {}

    /** As {@link VectorKernel#sampleMean}. */
    static float sampleMean(float[] x, int c) {
        if (c < 4 * LANES) {
            return x[0];
        }
        FloatVector sum = FloatVector.fromArray(SPECIES, x, 0)
                .add(FloatVector.fromArray(SPECIES, x, LANES))
                .add(FloatVector.fromArray(SPECIES, x, 2 * LANES))
                .add(FloatVector.fromArray(SPECIES, x, 3 * LANES));
        for (VectorShuffle<Float> fold : FOLDS) {
            sum = sum.add(sum.rearrange(fold));
        }
        float mean = sum.lane(0) / (4 * LANES);
        return Float.isFinite(mean) ? mean : x[0];
    }

    /** As {@link VectorKernel#sums}. */
    static long sums(float[] x, int c, float origin) {
        FloatVector s0 = FloatVector.zero(SPECIES);
        FloatVector s1 = s0;
        FloatVector q0 = s0;
        FloatVector q1 = s0;
        int i = 0;
        while (i <= c - 4 * LANES) {
            int blockEnd = Math.min(c - 4 * LANES, i + BLOCK - 4 * LANES);
            FloatVector b0 = FloatVector.zero(SPECIES);
            FloatVector b1 = b0;
            FloatVector b2 = b0;
            FloatVector b3 = b0;
            FloatVector p0 = b0;
            FloatVector p1 = b0;
            FloatVector p2 = b0;
            FloatVector p3 = b0;
            for (; i <= blockEnd; i += 4 * LANES) {
                FloatVector d0 = FloatVector.fromArray(SPECIES, x, i).sub(origin);
                FloatVector d1 = FloatVector.fromArray(SPECIES, x, i + LANES).sub(origin);
                FloatVector d2 =
                        FloatVector.fromArray(SPECIES, x, i + 2 * LANES).sub(origin);
                FloatVector d3 =
                        FloatVector.fromArray(SPECIES, x, i + 3 * LANES).sub(origin);
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
            FloatVector d = FloatVector.fromArray(SPECIES, x, i).sub(origin);
            s0 = s0.add(d);
            q0 = d.fma(d, q0);
        }
        float tailSum = 0;
        float tailSquares = 0;
        for (; i < c; i++) {
            float d = x[i] - origin;
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

    /** As {@link VectorKernel#sumOfSquares}. */
    static float sumOfSquares(float[] x, int c, float origin, float offset) {
        FloatVector a0 = FloatVector.zero(SPECIES);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int i = 0;
        while (i <= c - 4 * LANES) {
            int blockEnd = Math.min(c - 4 * LANES, i + BLOCK - 4 * LANES);
            FloatVector b0 = FloatVector.zero(SPECIES);
            FloatVector b1 = b0;
            FloatVector b2 = b0;
            FloatVector b3 = b0;
            for (; i <= blockEnd; i += 4 * LANES) {
                FloatVector d0 =
                        FloatVector.fromArray(SPECIES, x, i).sub(origin).sub(offset);
                FloatVector d1 =
                        FloatVector.fromArray(SPECIES, x, i + LANES).sub(origin).sub(offset);
                FloatVector d2 = FloatVector.fromArray(SPECIES, x, i + 2 * LANES)
                        .sub(origin)
                        .sub(offset);
                FloatVector d3 = FloatVector.fromArray(SPECIES, x, i + 3 * LANES)
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
            FloatVector d = FloatVector.fromArray(SPECIES, x, i).sub(origin).sub(offset);
            a0 = d.fma(d, a0);
        }
        float tail = 0;
        for (; i < c; i++) {
            float d = x[i] - origin - offset;
            tail = Math.fma(d, d, tail);
        }
        FloatVector sum = a0.add(a1).add(a2.add(a3));
        for (VectorShuffle<Float> fold : FOLDS) {
            sum = sum.add(sum.rearrange(fold));
        }
        return sum.lane(0) + tail;
    }

    /**
     * {@link VectorKernel#normalize} rounded to float16 into {@code y} at byte {@code base}: the same operations on each
     * element, written as a loop that C2 compiles into vector FMAs and {@code vcvtps2ph} (see
     * {@link VectorKernel#narrow}), with no float row stored in between.
     */
    static void normalizeToF16(
            float[] x,
            MemorySegment y,
            long base,
            float[] gamma,
            float[] beta,
            int c,
            float origin,
            float offset,
            float rstd) {
        float shift = -offset * rstd;
        for (int i = 0; i < c; i++) {
            float v = Math.fma(x[i] - origin, rstd, shift);
            y.set(
                    JAVA_SHORT_UNALIGNED,
                    base + (long) i * Short.BYTES,
                    Float.floatToFloat16(Math.fma(v, gamma[i], beta[i])));
        }
    }

    /**
     * {@link VectorKernel#normalize} from a float row into one, {@code y}, with scale and shift in the caller's float32
     * memory: {@link #normalizeToF16} before its rounding.
     */
    static void normalize(
            float[] x,
            float[] y,
            MemorySegment gamma,
            MemorySegment beta,
            int c,
            float origin,
            float offset,
            float rstd) {
        float shift = -offset * rstd;
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            long at = (long) i * Float.BYTES;
            FloatVector.fromArray(SPECIES, x, i)
                    .sub(origin)
                    .fma(rstd, shift)
                    .fma(
                            FloatVector.fromMemorySegment(SPECIES, gamma, at, ORDER),
                            FloatVector.fromMemorySegment(SPECIES, beta, at, ORDER))
                    .intoArray(y, i);
        }
        for (; i < c; i++) {
            float v = Math.fma(x[i] - origin, rstd, shift);
            y[i] = Math.fma(v, gamma.getAtIndex(JAVA_FLOAT_UNALIGNED, i), beta.getAtIndex(JAVA_FLOAT_UNALIGNED, i));
        }
    }

    /**
     * {@link #normalize} rounded to bf16 into {@code y} at byte {@code base}, with scale and shift in the caller's
     * float32 memory: a bf16 row widened for a small call (VectorKernel's {@code widenedBf16Row}).
     */
    static void normalizeToBf16(
            float[] x,
            MemorySegment y,
            long base,
            MemorySegment gamma,
            MemorySegment beta,
            int c,
            float origin,
            float offset,
            float rstd) {
        float shift = -offset * rstd;
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            long at = (long) i * Float.BYTES;
            IntVector bits = FloatVector.fromArray(SPECIES, x, i)
                    .sub(origin)
                    .fma(rstd, shift)
                    .fma(
                            FloatVector.fromMemorySegment(SPECIES, gamma, at, ORDER),
                            FloatVector.fromMemorySegment(SPECIES, beta, at, ORDER))
                    .reinterpretAsInts();
            IntVector upper = bits.lanewise(VectorOperators.LSHR, 16);
            bits.add(upper.and(1)) // ties to even, as Elements.floatToBf16
                    .add(0x7fff)
                    .lanewise(VectorOperators.LSHR, 16)
                    .blend(upper.or(0x0040), bits.and(0x7fff_ffff).compare(VectorOperators.GT, 0x7f80_0000))
                    .convertShape(VectorOperators.I2S, HALVES, 0)
                    .intoMemorySegment(y, base + (long) i * Short.BYTES, ORDER);
        }
        for (; i < c; i++) {
            float v = Math.fma(x[i] - origin, rstd, shift);
            Elements.set(
                    y,
                    DataType.BF16,
                    base / Short.BYTES + i,
                    Math.fma(v, gamma.getAtIndex(JAVA_FLOAT_UNALIGNED, i), beta.getAtIndex(JAVA_FLOAT_UNALIGNED, i)));
        }
    }

    /**
     * {@code s = x + r} over the {@code c} float16 values at bytes {@code xBase} of {@code x} and {@code rBase} of
     * {@code r}, widened (exactly) as they are added, in a loop that C2 vectorizes as {@link #normalizeToF16}.
     */
    static void addF16(MemorySegment x, long xBase, MemorySegment r, long rBase, float[] s, int c) {
        for (int i = 0; i < c; i++) {
            s[i] = Float.float16ToFloat(x.get(JAVA_SHORT_UNALIGNED, xBase + (long) i * Short.BYTES))
                    + Float.float16ToFloat(r.get(JAVA_SHORT_UNALIGNED, rBase + (long) i * Short.BYTES));
        }
    }

    /** {@code s += b} over {@code c} floats. */
    static void add(float[] s, float[] b, int c) {
        for (int i = 0; i < c; i++) {
            s[i] += b[i];
        }
    }

    /**
     * Rounds the {@code c} floats {@code s} to float16 into {@code sum} at byte {@code base}, and replaces them by the
     * rounded values, so that what is normalized next is s as stored.
     */
    static void roundToF16(float[] s, MemorySegment sum, long base, int c) {
        for (int i = 0; i < c; i++) {
            short rounded = Float.floatToFloat16(s[i]);
            sum.set(JAVA_SHORT_UNALIGNED, base + (long) i * Short.BYTES, rounded);
            s[i] = Float.float16ToFloat(rounded);
        }
    }

    /** As {@link VectorKernel#accumulate}, on heap rows. */
    static void accumulate(
            float[] x, float[] dy, float[] gamma, int c, float mu, float rstd, float[] work, boolean gradients) {
        if (gradients) {
            accumulateWithGradients(x, dy, gamma, c, mu, rstd, work);
            return;
        }
        FloatVector sumG = FloatVector.zero(SPECIES);
        FloatVector sumGXhat = sumG;
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            FloatVector xhat = FloatVector.fromArray(SPECIES, x, i).sub(mu).mul(rstd);
            FloatVector g = FloatVector.fromArray(SPECIES, dy, i).mul(FloatVector.fromArray(SPECIES, gamma, i));
            sumG = sumG.add(g);
            sumGXhat = g.fma(xhat, sumGXhat);
        }
        float tailG = 0;
        float tailGXhat = 0;
        for (; i < c; i++) {
            float xhat = (x[i] - mu) * rstd;
            float g = dy[i] * gamma[i];
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
            float[] x, float[] dy, float[] gamma, int c, float mu, float rstd, float[] work) {
        FloatVector sumG = FloatVector.zero(SPECIES);
        FloatVector sumGXhat = sumG;
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            FloatVector d = FloatVector.fromArray(SPECIES, dy, i);
            FloatVector xhat = FloatVector.fromArray(SPECIES, x, i).sub(mu).mul(rstd);
            FloatVector g = d.mul(FloatVector.fromArray(SPECIES, gamma, i));
            sumG = sumG.add(g);
            sumGXhat = g.fma(xhat, sumGXhat);
            d.fma(xhat, FloatVector.fromArray(SPECIES, work, i)).intoArray(work, i);
            d.add(FloatVector.fromArray(SPECIES, work, c + i)).intoArray(work, c + i);
        }
        float tailG = 0;
        float tailGXhat = 0;
        for (; i < c; i++) {
            float d = dy[i];
            float xhat = (x[i] - mu) * rstd;
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
     * As {@link VectorKernel}'s input gradient, rounded to float16 into {@code dx} at byte {@code base}: the same
     * operations on each element, in a loop that C2 vectorizes, as {@link #normalizeToF16}.
     */
    static void inputGradientToF16(
            float[] x,
            float[] dy,
            MemorySegment dx,
            long base,
            float[] gamma,
            int c,
            float mu,
            float rstd,
            float meanG,
            float meanGXhat) {
        for (int i = 0; i < c; i++) {
            float xhat = (x[i] - mu) * rstd;
            float g = dy[i] * gamma[i];
            dx.set(
                    JAVA_SHORT_UNALIGNED,
                    base + (long) i * Short.BYTES,
                    Float.floatToFloat16((g - meanG - xhat * meanGXhat) * rstd));
        }
    }

    /**
     * The fused kernel's input gradient {@code dx = rstd * (g - meanG - xhat * meanGXhat) + ds}, rounded to float16
     * into {@code dx} at byte {@code base}, as {@link #inputGradientToF16}.
     */
    static void inputGradientToF16(
            float[] x,
            float[] dy,
            float[] ds,
            MemorySegment dx,
            long base,
            float[] gamma,
            int c,
            float mu,
            float rstd,
            float meanG,
            float meanGXhat) {
        for (int i = 0; i < c; i++) {
            float xhat = (x[i] - mu) * rstd;
            float g = dy[i] * gamma[i];
            dx.set(
                    JAVA_SHORT_UNALIGNED,
                    base + (long) i * Short.BYTES,
                    Float.floatToFloat16(Math.fma(g - meanG - xhat * meanGXhat, rstd, ds[i])));
        }
    }

    /** The {@code c} bf16 values at byte {@code base} in {@code src}, widened (exactly) into {@code floats}. */
    static void bf16ToFloat(MemorySegment src, long base, float[] floats, int c) {
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            ((IntVector) ShortVector.fromMemorySegment(HALVES, src, base + (long) i * Short.BYTES, ORDER)
                            .convertShape(VectorOperators.S2I, INTS, 0))
                    .lanewise(VectorOperators.LSHL, 16)
                    .reinterpretAsFloats()
                    .intoArray(floats, i);
        }
        for (; i < c; i++) {
            floats[i] = Elements.get(src, DataType.BF16, base / Short.BYTES + i);
        }
    }

    /**
     * {@code s = x + r} over the {@code c} bf16 values at bytes {@code xBase} and {@code rBase}, widened exactly, r
     * through {@code rRow}. One loop that loaded x and r and stored s fell into C2's recompilation loop on an AVX2 CPU
     * (RecompilationTest; docs/benchmarks.md, "A third machine kind"); each row widened on its own, then the two rows
     * added on the heap, did not, at the cost of a pass over the row.
     */
    static void addBf16(MemorySegment x, long xBase, MemorySegment r, long rBase, float[] s, float[] rRow, int c) {
        bf16ToFloat(x, xBase, s, c);
        bf16ToFloat(r, rBase, rRow, c);
        add(s, rRow, c);
    }

    /** As {@link #roundToF16}, to bf16. */
    static void roundToBf16(float[] s, MemorySegment sum, long base, int c) {
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            IntVector bits = FloatVector.fromArray(SPECIES, s, i).reinterpretAsInts();
            IntVector upper = bits.lanewise(VectorOperators.LSHR, 16);
            IntVector rounded = bits.add(upper.and(1)) // ties to even, as Elements.floatToBf16
                    .add(0x7fff)
                    .lanewise(VectorOperators.LSHR, 16)
                    .blend(upper.or(0x0040), bits.and(0x7fff_ffff).compare(VectorOperators.GT, 0x7f80_0000));
            rounded.convertShape(VectorOperators.I2S, HALVES, 0)
                    .intoMemorySegment(sum, base + (long) i * Short.BYTES, ORDER);
            rounded.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(s, i);
        }
        for (; i < c; i++) {
            long at = base / Short.BYTES + i;
            Elements.set(sum, DataType.BF16, at, s[i]);
            s[i] = Elements.get(sum, DataType.BF16, at);
        }
    }

    /** As {@link #normalizeToF16}, to bf16. */
    static void normalizeToBf16(
            float[] x,
            MemorySegment y,
            long base,
            float[] gamma,
            float[] beta,
            int c,
            float origin,
            float offset,
            float rstd) {
        float shift = -offset * rstd;
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            FloatVector v = FloatVector.fromArray(SPECIES, x, i)
                    .sub(origin)
                    .fma(rstd, shift)
                    .fma(FloatVector.fromArray(SPECIES, gamma, i), FloatVector.fromArray(SPECIES, beta, i));
            IntVector bits = v.reinterpretAsInts();
            IntVector upper = bits.lanewise(VectorOperators.LSHR, 16);
            IntVector rounded = bits.add(upper.and(1)) // ties to even, as Elements.floatToBf16
                    .add(0x7fff)
                    .lanewise(VectorOperators.LSHR, 16)
                    .blend(upper.or(0x0040), bits.and(0x7fff_ffff).compare(VectorOperators.GT, 0x7f80_0000));
            rounded.convertShape(VectorOperators.I2S, HALVES, 0)
                    .intoMemorySegment(y, base + (long) i * Short.BYTES, ORDER);
        }
        for (; i < c; i++) {
            float v = Math.fma(x[i] - origin, rstd, shift);
            Elements.set(y, DataType.BF16, base / Short.BYTES + i, Math.fma(v, gamma[i], beta[i]));
        }
    }

    /** As the float16 {@link #inputGradientToF16} with an incoming gradient, to bf16. */
    static void inputGradientToBf16(
            float[] x,
            float[] dy,
            float[] ds,
            MemorySegment dx,
            long base,
            float[] gamma,
            int c,
            float mu,
            float rstd,
            float meanG,
            float meanGXhat) {
        int i = 0;
        for (; i <= c - LANES; i += LANES) {
            FloatVector xhat = FloatVector.fromArray(SPECIES, x, i).sub(mu).mul(rstd);
            FloatVector g = FloatVector.fromArray(SPECIES, dy, i).mul(FloatVector.fromArray(SPECIES, gamma, i));
            FloatVector v = g.sub(meanG)
                    .sub(xhat.mul(meanGXhat))
                    .fma(FloatVector.broadcast(SPECIES, rstd), FloatVector.fromArray(SPECIES, ds, i));
            IntVector bits = v.reinterpretAsInts();
            IntVector upper = bits.lanewise(VectorOperators.LSHR, 16);
            IntVector rounded = bits.add(upper.and(1)) // ties to even, as Elements.floatToBf16
                    .add(0x7fff)
                    .lanewise(VectorOperators.LSHR, 16)
                    .blend(upper.or(0x0040), bits.and(0x7fff_ffff).compare(VectorOperators.GT, 0x7f80_0000));
            rounded.convertShape(VectorOperators.I2S, HALVES, 0)
                    .intoMemorySegment(dx, base + (long) i * Short.BYTES, ORDER);
        }
        for (; i < c; i++) {
            float xhat = (x[i] - mu) * rstd;
            float g = dy[i] * gamma[i];
            Elements.set(
                    dx, DataType.BF16, base / Short.BYTES + i, Math.fma(g - meanG - xhat * meanGXhat, rstd, ds[i]));
        }
    }
}
