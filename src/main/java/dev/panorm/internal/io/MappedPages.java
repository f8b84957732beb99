package dev.panorm.internal.io;

import dev.panorm.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * Lets the pages of a memory-mapped tensor go once it is written, so that streaming a file larger than memory keeps a
 * small resident set: what {@code dev.panorm.pipeline.Pipeline} and {@code panorm normalize} do after each chunk.
 * Public for the module's own packages only: this package is not exported.
 */
public final class MappedPages {
    private MappedPages() {}

    /** Unloads the pages under {@code tensor} (null: none) if its memory is mapped; other memory is left alone. */
    public static void release(Tensor tensor) {
        if (tensor == null) {
            return;
        }
        MemorySegment segment = tensor.segment();
        if (segment.isMapped() && tensor.byteExtent() > 0) {
            segment.asSlice(0, tensor.byteExtent()).unload();
        }
    }
}
