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
    /** Enough elements for two threads of at least {@link RowSplitter#MIN_ELEMENTS_PER_THREAD} each. */
    private static final long ELEMENTS = 2 * RowSplitter.MIN_ELEMENTS_PER_THREAD;

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
        new RowSplitter(2).run(rows, rows * RowSplitter.MIN_ELEMENTS_PER_THREAD, (from, to, part) -> {
            for (long row = from; row < to; row++) {
                covered.incrementAndGet((int) row);
            }
        });
        for (int row = 0; row < rows; row++) {
            assertEquals(1, covered.get(row), "row " + row);
        }
    }

    @Test
    void partsAreFixedBySizeAndEachRunsOnce() {
        RowSplitter splitter = new RowSplitter(2);
        assertEquals(1, splitter.parts(1000, RowSplitter.MIN_ELEMENTS_PER_THREAD));
        assertEquals(2, splitter.threads(1000, ELEMENTS));
        assertEquals(2 * RowSplitter.PARTS_PER_THREAD, splitter.parts(1000, ELEMENTS));
        assertEquals(3, splitter.parts(3, ELEMENTS), "no part without rows");
        var runs = new AtomicLongArray(splitter.parts(1000, ELEMENTS));
        splitter.run(1000, ELEMENTS, (from, to, part) -> {
            assertEquals(1000L * part / runs.length(), from);
            assertEquals(1000L * (part + 1) / runs.length(), to);
            runs.incrementAndGet(part);
        });
        for (int part = 0; part < runs.length(); part++) {
            assertEquals(1, runs.get(part), "part " + part);
        }
    }

    /**
     * A pool thread that is late (asleep, or its core taken) costs a call no more than the part it runs: the caller
     * takes every other part rather than wait for a fixed share.
     */
    @Test
    void theCallerTakesThePartsALatePoolThreadHasNotStarted() {
        Thread caller = Thread.currentThread();
        int parts = new RowSplitter(2).parts(1000, ELEMENTS);
        var byCaller = new AtomicLongArray(1);
        var callerDone = new CountDownLatch(1);
        var covered = new AtomicLongArray(1000);
        new RowSplitter(2).run(1000, ELEMENTS, (from, to, part) -> {
            if (Thread.currentThread() == caller) {
                if (byCaller.incrementAndGet(0) == parts - 1) {
                    callerDone.countDown();
                }
            } else {
                await(callerDone); // held up until the caller has done all the rest
            }
            for (long row = from; row < to; row++) {
                covered.incrementAndGet((int) row);
            }
        });
        assertTrue(byCaller.get(0) >= parts - 1, byCaller.get(0) + " of " + parts + " parts on the caller");
        for (int row = 0; row < 1000; row++) {
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
