package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.panorm.internal.dnnl.Dnnl;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/** A failing oneDNN call becomes an exception naming the C function, oneDNN's status and the operation. */
class OneDnnExceptionTest {
    @Test
    void aRealFailingCallIsReportedWithItsStatusAndContext() {
        OneDnn.runtime();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
            // 13 dimensions: more than oneDNN's DNNL_MAX_NDIMS (12), so oneDNN itself refuses.
            MemorySegment dims = arena.allocate(ValueLayout.JAVA_LONG, 13).fill((byte) 1);
            MemorySegment strides = arena.allocate(ValueLayout.JAVA_LONG, 13).fill((byte) 1);
            int status = Dnnl.dnnl_memory_desc_create_with_strides(out, 13, dims, Dnnl.dnnl_f32(), strides);
            OneDnnException e = assertThrows(
                    OneDnnException.class,
                    () -> OneDnn.check(
                            status, "dnnl_memory_desc_create_with_strides", "layer normalization F32[2, 3]"));
            assertEquals(OneDnnStatus.INVALID_ARGUMENTS, e.status());
            assertEquals(Dnnl.dnnl_invalid_arguments(), e.code());
            assertEquals(
                    "dnnl_memory_desc_create_with_strides failed with dnnl_invalid_arguments"
                            + " (layer normalization F32[2, 3])",
                    e.getMessage());
        }
    }

    @Test
    void anUnknownStatusCodeIsNamedByItsNumber() {
        OneDnnException e = new OneDnnException(-12345, "dnnl_primitive_execute", "context");
        assertEquals(OneDnnStatus.UNKNOWN, e.status());
        assertEquals("dnnl_primitive_execute failed with unknown status -12345 (context)", e.getMessage());
    }
}
