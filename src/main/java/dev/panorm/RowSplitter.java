package dev.panorm;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;

/**
 * Splits the rows of a large call across threads: the caller computes the first part, a shared
 * pool of daemon threads the others. Small calls run on the caller alone and allocate nothing.
 */
final class RowSplitter {
    /**
     * Elements per part below which another thread costs more than it saves: waking a pool thread and
     * joining it costs tens of microseconds on a busy machine (docs/benchmarks.md, "Measurements behind
     * the code").
     */
    static final long MIN_ELEMENTS_PER_PART = 1 << 18;

    private static volatile ForkJoinPool pool;

    /** Work on rows {@code [from, to)}, as part {@code part} of the call. */
    interface RowRange {
        void run(long from, long to, int part);
    }

    private final int threads;

    /** @param threads the most threads one call may use; 0 for every core */
    RowSplitter(int threads) {
        this.threads = threads;
    }

    /** How many parts a call on {@code rows} rows of {@code elements} elements in all is split into. */
    int parts(long rows, long elements) {
        long bySize = elements / MIN_ELEMENTS_PER_PART;
        if (bySize <= 1 || rows <= 1) {
            return 1; // without asking for the core count, which costs more than a small call
        }
        int limit = threads == 0 ? Runtime.getRuntime().availableProcessors() : threads;
        return (int) Math.max(1, Math.min(Math.min(limit, rows), bySize));
    }

    /** Runs {@code work} over all rows, in {@link #parts} parts, and returns when every part is done, also when one fails. */
    void run(long rows, long elements, RowRange work) {
        int parts = parts(rows, elements);
        if (parts == 1) {
            work.run(0, rows, 0);
            return;
        }
        ForkJoinTask<?>[] others = new ForkJoinTask<?>[parts - 1];
        for (int part = 1; part < parts; part++) {
            long from = rows * part / parts;
            long to = rows * (part + 1) / parts;
            int index = part;
            others[part - 1] = pool().submit(() -> work.run(from, to, index));
        }
        try {
            work.run(0, rows / parts, 0);
        } finally {
            // Every part ends before the call returns, failed or not: the caller may free the memory next.
            for (ForkJoinTask<?> task : others) {
                task.quietlyJoin();
            }
        }
        for (ForkJoinTask<?> task : others) {
            task.join(); // rethrows a part's failure
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
