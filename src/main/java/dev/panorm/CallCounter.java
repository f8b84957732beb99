package dev.panorm;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * A {@link LayerNorm}'s calls in flight, counted by epoch. Closing waits for none to be left. A kernel frees native
 * memory that calls might still be using (plans it has dropped) once every call that entered before it dropped them
 * has ended: it begins a new epoch ({@link #advance}) after dropping them, and frees them once the epoch it left has
 * {@link #ended}. With a single count it waited for a moment with no call in flight, which several callers keeping
 * one {@code LayerNorm} busy seldom leave: 8 threads meeting new shapes grew native memory by 170 MiB a second.
 *
 * <p>Two counts suffice, by the epoch's parity: an epoch begins only once no call of the one before the current is
 * left, so the calls in flight belong to the current epoch and the one before.
 */
final class CallCounter {
    private final AtomicInteger[] inFlight = {new AtomicInteger(), new AtomicInteger()};
    private volatile long epoch; // a long: an int would wrap after 2^31 plans dropped

    /** Counts a call in; returns its epoch, for {@link #exit}. */
    long enter() {
        while (true) {
            long entered = epoch;
            inFlight[parity(entered)].incrementAndGet();
            if (epoch == entered) {
                return entered;
            }
            inFlight[parity(entered)].decrementAndGet(); // an epoch began meanwhile: count the call in that one
        }
    }

    /** Counts out a call that {@link #enter} returned {@code entered} for. */
    void exit(long entered) {
        inFlight[parity(entered)].decrementAndGet();
    }

    int inFlight() {
        return inFlight[0].get() + inFlight[1].get();
    }

    /**
     * Begins a new epoch if no call of the epoch before the current one is left. A call that enters in the new epoch
     * sees what the caller wrote before this.
     *
     * @return the epoch left, or -1 if none could begin
     */
    synchronized long advance() {
        long current = epoch;
        if (inFlight[parity(current + 1)].get() != 0) {
            return -1;
        }
        epoch = current + 1;
        return current;
    }

    /** Whether every call that entered in {@code left} (an epoch {@link #advance} left) or before has ended. */
    boolean ended(long left) {
        return epoch - left >= 2 || inFlight[parity(left)].get() == 0;
    }

    private static int parity(long epoch) {
        return (int) (epoch & 1);
    }
}
