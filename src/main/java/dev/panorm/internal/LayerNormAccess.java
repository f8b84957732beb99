package dev.panorm.internal;

import dev.panorm.LayerNorm;
import dev.panorm.Tensor;

/**
 * What the module's other packages may ask of a {@link LayerNorm} beyond its API, as the JDK's
 * {@code SharedSecrets} do: {@link LayerNorm} registers the implementation when its class initializes,
 * which has happened once anyone holds one. This package is not exported.
 */
public final class LayerNormAccess {
    /** The operations behind the API. */
    public interface Operations {
        /**
         * Checks a forward run that is split into chunks, on the whole tensors, as one call on them would
         * check it, so that overlaps between chunks are refused before any chunk is written.
         *
         * @param norm the operation each chunk runs through
         * @param src the input's {@code [rows, normalized shape]} view, or null for a source that reads each
         *     chunk into memory of its own
         * @param dst the output's {@code [rows, normalized shape]} view
         * @param scale gamma, or null
         * @param shift beta, or null
         * @param mean one value per row (a vector), or null
         * @param variance one value per row (a vector); null for an inference run
         * @throws IllegalArgumentException naming the problem, as the call would
         */
        void checkChunkedForward(
                LayerNorm norm, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance);
    }

    private static volatile Operations operations;

    private LayerNormAccess() {}

    /**
     * Registers the implementation; called once, by {@link LayerNorm}.
     *
     * @param implementation the operations
     */
    public static void register(Operations implementation) {
        operations = implementation;
    }

    /** {@return the operations; LayerNorm has registered them once any instance exists} */
    public static Operations operations() {
        return operations;
    }
}
