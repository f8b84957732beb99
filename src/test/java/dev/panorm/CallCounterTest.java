package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLongArray;
import org.junit.jupiter.api.Test;

/** The epochs by which a dropped plan waits for the calls that might still use it, and no longer. */
class CallCounterTest {
    @Test
    void anEpochEndsWithItsLastCallAndTheNextBeginsOnlyThen() {
        CallCounter calls = new CallCounter();
        long first = calls.enter();
        assertEquals(first, calls.advance(), "no call of an earlier epoch is left");
        assertFalse(calls.ended(first), "the first call is still in flight");

        long second = calls.enter();
        assertEquals(first + 1, second, "a call after the advance enters the new epoch");
        assertEquals(-1, calls.advance(), "a third epoch must wait for the first one's calls");
        assertEquals(2, calls.inFlight());

        calls.exit(first);
        assertTrue(calls.ended(first));
        assertEquals(second, calls.advance());
        assertFalse(calls.ended(second), "the second call is still in flight");
        assertTrue(calls.ended(first), "two epochs on, the first has ended whatever its count now holds");

        calls.exit(second);
        assertTrue(calls.ended(second));
        assertEquals(0, calls.inFlight());
    }

    /**
     * Threads enter and exit while another advances: once an epoch has ended, no call that entered in it is in flight.
     * Each caller publishes the epoch of its call between entering and exiting, as a kernel's use of a plan lies.
     */
    @Test
    void noCallOfAnEndedEpochIsInFlight() throws Exception {
        CallCounter calls = new CallCounter();
        int callers = 4;
        AtomicLongArray using = new AtomicLongArray(callers); // the epoch of each caller's call, or -1
        AtomicBoolean stop = new AtomicBoolean();
        List<Thread> threads = new ArrayList<>();
        for (int caller = 0; caller < callers; caller++) {
            int index = caller;
            using.set(index, -1);
            threads.add(Thread.ofPlatform().start(() -> {
                while (!stop.get()) {
                    long epoch = calls.enter();
                    using.set(index, epoch);
                    Thread.onSpinWait();
                    using.set(index, -1);
                    calls.exit(epoch);
                }
            }));
        }
        int ended = 0;
        try {
            for (long deadline = System.nanoTime() + 300_000_000L; System.nanoTime() < deadline; ) {
                long left = calls.advance();
                if (left < 0) {
                    continue;
                }
                while (!calls.ended(left)) {
                    Thread.onSpinWait();
                }
                ended++;
                for (int caller = 0; caller < callers; caller++) {
                    long epoch = using.get(caller);
                    assertTrue(epoch < 0 || epoch > left, "a call of epoch " + epoch + " after " + left + " ended");
                }
            }
        } finally {
            stop.set(true);
            for (Thread thread : threads) {
                thread.join();
            }
        }
        assertTrue(ended > 0, "no epoch ended while the callers ran");
        assertEquals(0, calls.inFlight());
    }
}
