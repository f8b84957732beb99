package dev.panorm;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * Splits the rows of a large call across threads: the rows are cut into a fixed number of parts, which the
 * caller and threads of a shared pool of daemon threads take one at a time until none is left. Small calls run
 * on the caller alone and allocate nothing.
 *
 * <p>The caller starts on the parts at once and a pool thread joins whenever it gets a core, so a thread that is
 * slow to wake (tens of microseconds on a VM), or a core taken by another runtime's spinning threads (oneDNN's
 * OpenMP worker spins for a while after each call), costs the call about the time it is late, not the caller's
 * wait for a fixed half of the rows. Which thread runs a part does not change a result: a part's rows and its
 * index are fixed by the call's size, and callers combine per-part sums in part order.
 */
final class RowSplitter {
    /**
     * Elements per thread below which another thread costs more than it saves: waking a pool thread and
     * joining it costs tens of microseconds on a busy machine (docs/benchmarks.md, "Measurements behind
     * the code").
     */
    static final long MIN_ELEMENTS_PER_THREAD = 1 << 18;
    /** Parts per thread of a split call: enough for the caller to take over most of a late thread's share. */
    static final int PARTS_PER_THREAD = 4;
    /** How long a caller that has run out of parts spins for the pool's last ones before it parks. */
    private static final long SPIN_NANOS = 200_000;

    private static volatile ForkJoinPool pool;

    /** Work on rows {@code [from, to)}, as part {@code part} of the call. */
    interface RowRange {
        void run(long from, long to, int part);
    }

    /** The most threads one call may use. */
    private final int threads;

    /**
     * @param threads the most threads one call may use; 0 for every core, counted here once: {@code
     *     availableProcessors()} took 1.2 us per call in a container (AMD Zen 5), and a split call asked two or three
     *     times
     */
    RowSplitter(int threads) {
        this.threads = threads == 0 ? Runtime.getRuntime().availableProcessors() : threads;
    }

    /** How many threads a call on {@code rows} rows of {@code elements} elements in all runs on. */
    int threads(long rows, long elements) {
        long bySize = elements / MIN_ELEMENTS_PER_THREAD;
        if (bySize <= 1 || rows <= 1) {
            return 1;
        }
        return (int) Math.max(1, Math.min(Math.min(threads, rows), bySize));
    }

    /** How many parts such a call is cut into: 1 on one thread, else {@link #PARTS_PER_THREAD} per thread. */
    int parts(long rows, long elements) {
        return parts(rows, threads(rows, elements));
    }

    private static int parts(long rows, int threads) {
        return threads == 1 ? 1 : (int) Math.min(rows, (long) threads * PARTS_PER_THREAD);
    }

    /** Runs {@code work} over all rows, in {@link #parts} parts, and returns when every part is done, also when one fails. */
    void run(long rows, long elements, RowRange work) {
        int threads = threads(rows, elements);
        int parts = parts(rows, threads);
        if (parts == 1) {
            work.run(0, rows, 0);
            return;
        }
        Job job = new Job(rows, parts, work);
        for (int helper = 1; helper < threads; helper++) {
            pool().execute(job::take);
        }
        job.take();
        job.awaitParts();
        if (job.failure instanceof RuntimeException e) {
            throw e;
        }
        if (job.failure instanceof Error e) {
            throw e;
        }
        if (job.failure != null) { // a checked exception thrown past the compiler
            throw new IllegalStateException(job.failure);
        }
    }

    /** One split call: its parts, taken in order by whichever thread asks next. */
    private static final class Job {
        private final long rows;
        private final int parts;
        private final RowRange work;
        private final AtomicInteger next = new AtomicInteger();
        private final AtomicInteger done = new AtomicInteger();
        private final Thread caller = Thread.currentThread();
        /** The first part's failure; parts not started after it are skipped. */
        private volatile Throwable failure;

        Job(long rows, int parts, RowRange work) {
            this.rows = rows;
            this.parts = parts;
            this.work = work;
        }

        /**
         * Runs parts until none is left. A pool thread that comes after the call returned finds none and touches
         * nothing of it but this object: the rows may be freed by then.
         */
        void take() {
            for (int part = next.getAndIncrement(); part < parts; part = next.getAndIncrement()) {
                try {
                    if (failure == null) {
                        work.run(rows * part / parts, rows * (part + 1) / parts, part);
                    }
                } catch (Throwable e) {
                    if (failure == null) {
                        failure = e;
                    }
                } finally {
                    if (done.incrementAndGet() == parts && Thread.currentThread() != caller) {
                        LockSupport.unpark(caller);
                    }
                }
            }
        }

        /** Waits for the parts that pool threads are still running: spinning first, since a woken caller is late. */
        void awaitParts() {
            long spinUntil = System.nanoTime() + SPIN_NANOS;
            boolean interrupted = false;
            while (done.get() < parts) {
                if (System.nanoTime() < spinUntil) {
                    Thread.onSpinWait();
                } else {
                    LockSupport.park(this);
                    interrupted |= Thread.interrupted(); // else park returns at once, and this loop spins
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private static ForkJoinPool pool() {
        ForkJoinPool current = pool;
        if (current == null) {
            synchronized (RowSplitter.class) {
                current = pool;
                if (current == null) {
                    int size = Math.max(1, Runtime.getRuntime().availableProcessors() - 1);
                    current = pool = new ForkJoinPool(
                            size,
                            p -> {
                                var thread = ForkJoinPool.defaultForkJoinWorkerThreadFactory.newThread(p);
                                thread.setName("panorm-rows-" + thread.getPoolIndex());
                                thread.setDaemon(true);
                                return thread;
                            },
                            null,
                            false);
                }
            }
        }
        return current;
    }
}
