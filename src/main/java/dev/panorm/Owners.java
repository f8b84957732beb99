package dev.panorm;

/**
 * Which kind of memory a tensor lies in, as C2's vector loops tell them apart: with an owner thread (a confined arena)
 * or without (shared, automatic, global). A loop that meets both kinds can be recompiled again and again, about a
 * hundred times slower (docs/performance.md, "Other Vector API code in the same process"). Kept apart from the vector
 * kernels so that AUTO can ask without loading the incubating Vector API.
 */
final class Owners {
    /** Any thread but the caller: memory it may not access is confined to the caller. */
    private static final Thread OTHER_THREAD = Thread.ofPlatform().unstarted(() -> {});

    private Owners() {}

    /** Whether {@code tensor} (null: absent) lies in memory without an owner thread (shared, automatic, global). */
    static boolean unowned(Tensor tensor) {
        return tensor != null && tensor.segment().isAccessibleBy(OTHER_THREAD);
    }

    /** Whether {@code tensor} (null: absent) lies in memory confined to the calling thread. */
    static boolean confined(Tensor tensor) {
        return tensor != null && !tensor.segment().isAccessibleBy(OTHER_THREAD);
    }
}
