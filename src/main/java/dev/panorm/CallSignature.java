package dev.panorm;

import java.util.Arrays;

/**
 * What makes two calls alike for oneDNN: the pass, the thread count, and the data type, shape and
 * strides of every tensor (the statistics' layout follows from the pass and src). A 64-bit key
 * computed without allocating finds candidates; {@link #matches} confirms exactly.
 */
final class CallSignature {
    /** The roles whose layout a signature records, in the order messages name them. */
    private static final Role[] SHAPING = {
        Role.SRC, Role.DST, Role.SCALE, Role.SHIFT, Role.DIFF_DST, Role.DIFF_SRC, Role.DIFF_SCALE, Role.DIFF_SHIFT
    };

    final Pass pass;
    final int threads;
    final long key;
    /** Indexed by role ordinal. */
    private final DataType[] types = new DataType[Role.CALLER];

    private final long[][] shapes = new long[Role.CALLER][];
    private final long[][] strides = new long[Role.CALLER][];

    CallSignature(Call call, int threads) {
        this.pass = call.pass();
        this.threads = threads;
        this.key = key(
                pass,
                threads,
                call.src(),
                call.dst(),
                call.scale(),
                call.shift(),
                call.diffDst(),
                call.diffSrc(),
                call.diffScale(),
                call.diffShift());
        for (Role role : SHAPING) {
            Tensor tensor = call.tensor(role);
            if (tensor != null) {
                types[role.ordinal()] = tensor.dataType();
                // A tensor's arrays never change, so keeping them (not copies) lets a later call with the
                // same tensor match by identity, the first thing Arrays.equals checks.
                shapes[role.ordinal()] = tensor.shapeArray();
                strides[role.ordinal()] = tensor.stridesArray();
            }
        }
    }

    static long key(
            Pass pass,
            int threads,
            Tensor src,
            Tensor dst,
            Tensor scale,
            Tensor shift,
            Tensor diffDst,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift) {
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
    boolean matches(
            long key,
            Pass pass,
            int threads,
            Tensor src,
            Tensor dst,
            Tensor scale,
            Tensor shift,
            Tensor diffDst,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift) {
        return this.key == key
                && this.pass == pass
                && this.threads == threads
                && same(Role.SRC, src)
                && same(Role.DST, dst)
                && same(Role.SCALE, scale)
                && same(Role.SHIFT, shift)
                && same(Role.DIFF_DST, diffDst)
                && same(Role.DIFF_SRC, diffSrc)
                && same(Role.DIFF_SCALE, diffScale)
                && same(Role.DIFF_SHIFT, diffShift);
    }

    private boolean same(Role role, Tensor tensor) {
        int at = role.ordinal();
        if (tensor == null) {
            return types[at] == null;
        }
        return types[at] == tensor.dataType()
                && Arrays.equals(shapes[at], tensor.shapeArray())
                && Arrays.equals(strides[at], tensor.stridesArray());
    }

    /** The tensors, for messages: {@code ", src F32[8, 768], dst F32[8, 768], ..."}. */
    String describeTensors() {
        StringBuilder text = new StringBuilder();
        for (Role role : SHAPING) {
            int at = role.ordinal();
            if (types[at] != null) {
                text.append(", ")
                        .append(role.argumentName())
                        .append(' ')
                        .append(types[at])
                        .append(Arrays.toString(shapes[at]));
            }
        }
        return text.toString();
    }
}
