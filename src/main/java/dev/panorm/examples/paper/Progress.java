package dev.panorm.examples.paper;

import java.io.PrintStream;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

/**
 * The progress line on stderr: epochs done of all, the run that last finished one, elapsed time and an
 * estimate of the time left. On a terminal it is redrawn in place (at most five times a second); otherwise
 * a line is printed when a run finishes, so that logs stay short.
 *
 * <p>Epochs of the two networks cost different times, so the estimate keeps, per kind of work, the mean
 * duration of an epoch measured so far, and divides the training still to do by the threads that share it.
 */
final class Progress {
    /** Work still to do of one kind: epochs left, and the epochs and seconds measured so far. */
    private static final class Kind {
        long left;
        long measured;
        double seconds;
        final int parallel;

        Kind(long left, int parallel) {
            this.left = left;
            this.parallel = parallel;
        }
    }

    private final PrintStream out;
    private final boolean terminal;
    private final Map<String, Kind> kinds = new HashMap<>();
    private final long total;
    private final long start = System.nanoTime();
    private long done;
    private long lastDrawn;

    /**
     * @param epochs per kind of work, the epochs to do
     * @param parallel per kind of work, how many run at once
     */
    Progress(PrintStream out, Map<String, Long> epochs, Map<String, Integer> parallel) {
        this.out = out;
        this.terminal = System.console() != null && System.console().isTerminal();
        epochs.forEach((kind, n) -> kinds.put(kind, new Kind(n, parallel.getOrDefault(kind, 1))));
        this.total = epochs.values().stream().mapToLong(Long::longValue).sum();
    }

    /** One epoch of {@code kind} done, which took {@code seconds}. */
    synchronized void epochDone(String kind, double seconds, String what, int epoch, int epochs) {
        done++;
        Kind k = kinds.get(kind);
        k.left--;
        k.measured++;
        k.seconds += seconds;
        long now = System.nanoTime();
        if (terminal ? now - lastDrawn > 200_000_000L || done == total : epoch == epochs) {
            lastDrawn = now;
            String line = String.format(
                    Locale.ROOT,
                    "paper: %3.0f%% (%d/%d epochs) %s epoch %d/%d, %s elapsed, ~%s left",
                    100.0 * done / total,
                    done,
                    total,
                    what,
                    epoch,
                    epochs,
                    clock((now - start) / 1e9),
                    clock(secondsLeft()));
            if (terminal) {
                out.print("\r\033[K" + line);
            } else {
                out.println(line);
            }
            out.flush();
        }
    }

    private double secondsLeft() {
        double measured = kinds.values().stream().mapToDouble(k -> k.seconds).sum();
        long count = kinds.values().stream().mapToLong(k -> k.measured).sum();
        double fallback = count == 0 ? 0 : measured / count;
        double left = 0;
        for (Kind k : kinds.values()) {
            double perEpoch = k.measured > 0 ? k.seconds / k.measured : fallback;
            left += k.left * perEpoch / k.parallel;
        }
        return left;
    }

    /** Ends the redrawn line before other output. */
    synchronized void message(String text) {
        if (terminal) {
            out.print("\r\033[K");
        }
        out.println("paper: " + text);
        out.flush();
    }

    static String clock(double seconds) {
        long s = Math.round(seconds);
        return String.format(Locale.ROOT, "%d:%02d", s / 60, s % 60);
    }
}
