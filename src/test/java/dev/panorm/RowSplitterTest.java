package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLongArray;
import org.junit.jupiter.api.Test;

class RowSplitterTest {
    /** Enough elements for two parts of at least {@link RowSplitter#MIN_ELEMENTS_PER_PART} each. */
    private static final long ELEMENTS = 2 * RowSplitter.MIN_ELEMENTS_PER_PART;

    @Test
    void theCallersFailureWaitsForTheOtherParts() {
        var otherPartStarted = new CountDownLatch(1);
        var otherPartDone = new AtomicBoolean();
        var failure = assertThrows(
                IllegalStateException.class,
                () -> new RowSplitter(2).run(2, ELEMENTS, (from, to, part) -> {
                    if (part == 0) {
                        await(otherPartStarted);
                        throw new IllegalStateException("caller's part failed");
                    }
                    otherPartStarted.countDown();
                    sleep(200);
                    otherPartDone.set(true);
                }));
        assertEquals("caller's part failed", failure.getMessage());
        assertTrue(otherPartDone.get(), "run returned while another part was still working on the rows");
    }

    @Test
    void anotherPartsFailureReachesTheCaller() {
        var failure = assertThrows(
                IllegalStateException.class,
                () -> new RowSplitter(2).run(2, ELEMENTS, (from, to, part) -> {
                    if (part == 1) {
                        throw new IllegalStateException("part 1 failed");
                    }
                }));
        assertTrue(failure.getMessage().contains("part 1 failed"), failure.getMessage());
    }

    @Test
    void everyRowIsInExactlyOnePart() {
        long rows = 1001;
        var covered = new AtomicLongArray((int) rows);
        new RowSplitter(2).run(rows, rows * RowSplitter.MIN_ELEMENTS_PER_PART, (from, to, part) -> {
            for (long row = from; row < to; row++) {
                covered.incrementAndGet((int) row);
            }
        });
        for (int row = 0; row < rows; row++) {
            assertEquals(1, covered.get(row), "row " + row);
        }
    }

    private static void await(CountDownLatch latch) {
        try {
            assertTrue(latch.await(10, TimeUnit.SECONDS));
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
    }
}
