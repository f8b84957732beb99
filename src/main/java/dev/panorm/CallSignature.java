package dev.panorm;

import java.util.Arrays;

/**
 * What makes two calls alike for a backend: the pass, the thread count, and the data type, shape and
 * strides of every tensor (the statistics' layout follows from the pass and src). A 64-bit key
 * computed without allocating finds candidates; {@link #matches} confirms exactly.
 */
final class CallSignature {
    // The tensors that shape a call, as indices into the arrays below.
    static final int SRC = 0;
    static final int DST = 1;
    static final int SCALE = 2;
    static final int SHIFT = 3;
    static final int DIFF_DST = 4;
    static final int DIFF_SRC = 5;
    static final int DIFF_SCALE = 6;
    static final int DIFF_SHIFT = 7;
    private static final int ROLES = 8;

    final Pass pass;
    final int threads;
    final long key;
    private final DataType[] types = new DataType[ROLES];
    private final long[][] shapes = new long[ROLES][];
    private final long[][] strides = new long[ROLES][];

    CallSignature(Pass pass, int threads, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor diffDst,
                  Tensor diffSrc, Tensor diffScale, Tensor diffShift) {
        this.pass = pass;
        this.threads = threads;
        this.key = key(pass, threads, src, dst, scale, shift, diffDst, diffSrc, diffScale, diffShift);
        Tensor[] tensors = {src, dst, scale, shift, diffDst, diffSrc, diffScale, diffShift};
        for (int role = 0; role < ROLES; role++) {
            if (tensors[role] != null) {
                types[role] = tensors[role].dataType();
                // A tensor's arrays never change, so keeping them (not copies) lets a later call with the
                // same tensor match by identity, the first thing Arrays.equals checks.
                shapes[role] = tensors[role].shapeArray();
                strides[role] = tensors[role].stridesArray();
            }
        }
    }

    static long key(Pass pass, int threads, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor diffDst,
                    Tensor diffSrc, Tensor diffScale, Tensor diffShift) {
        long key = pass.ordinal() * 31L + threads;
        key = mix(key, src);
        key = mix(key, dst);
        key = mix(key, scale);
        key = mix(key, shift);
        key = mix(key, diffDst);
        key = mix(key, diffSrc);
        key = mix(key, diffScale);
        return mix(key, diffShift);
    }

    private static long mix(long key, Tensor tensor) {
        return key * 0x9E3779B97F4A7C15L + (tensor == null ? 0x5DEECE66DL : tensor.layoutHash());
    }

    /** Whether a call with these arguments and {@code key} ({@link #key}) has this signature. */
    boolean matches(long key, Pass pass, int threads, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor diffDst,
                    Tensor diffSrc, Tensor diffScale, Tensor diffShift) {
        return this.key == key && this.pass == pass && this.threads == threads && same(SRC, src) && same(DST, dst)
                && same(SCALE, scale) && same(SHIFT, shift) && same(DIFF_DST, diffDst) && same(DIFF_SRC, diffSrc)
                && same(DIFF_SCALE, diffScale) && same(DIFF_SHIFT, diffShift);
    }

    private boolean same(int role, Tensor tensor) {
        if (tensor == null) {
            return types[role] == null;
        }
        return types[role] == tensor.dataType() && Arrays.equals(shapes[role], tensor.shapeArray())
                && Arrays.equals(strides[role], tensor.stridesArray());
    }

    /** The data type and shape of one role, for messages; null if absent. */
    String describe(int role) {
        return types[role] == null ? null : types[role] + Arrays.toString(shapes[role]);
    }
}
