package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** A plan's native memory: zeroed and aligned as asked, released the last made first, once. */
class PlanMemoryTest {
    @Test
    void blocksAreZeroedAlignedAndWritable() {
        PlanMemory memory = new PlanMemory();
        try {
            for (long alignment : new long[] {1, 8, 64, 4096}) {
                MemorySegment block = memory.allocate(1000, alignment);
                assertEquals(0, block.address() % alignment, "alignment " + alignment);
                assertEquals(1000, block.byteSize());
                for (long i = 0; i < block.byteSize(); i++) {
                    assertEquals(0, block.get(ValueLayout.JAVA_BYTE, i), "byte " + i);
                }
                block.fill((byte) 7); // every byte is the block's own
            }
        } finally {
            memory.close();
        }
    }

    @Test
    void closeReleasesTheLastMadeFirstAndOnlyOnce() {
        PlanMemory memory = new PlanMemory();
        List<Long> destroyed = new ArrayList<>();
        for (long handle = 1; handle <= 3; handle++) {
            memory.own(MemorySegment.ofAddress(handle), segment -> destroyed.add(segment.address()));
        }
        memory.close();
        memory.close();
        assertEquals(List.of(3L, 2L, 1L), destroyed);
        assertThrows(IllegalStateException.class, () -> memory.allocate(8, 8));
        assertThrows(IllegalArgumentException.class, () -> new PlanMemory().allocate(8, 3));
    }
}
