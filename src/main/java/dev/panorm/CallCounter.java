package dev.panorm;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * A {@link LayerNorm}'s calls in flight. Closing waits for none to be left; a kernel frees native
 * memory that calls might still be using (plans it has dropped) only when none is in flight.
 */
final class CallCounter {
    private final AtomicInteger inFlight = new AtomicInteger();

    void enter() {
        inFlight.incrementAndGet();
    }

    /** Returns the calls still in flight. */
    int exit() {
        return inFlight.decrementAndGet();
    }

    int inFlight() {
        return inFlight.get();
    }
}
