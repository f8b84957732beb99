package dev.panorm.examples.paper;

import java.io.PrintStream;
import java.util.Locale;

/**
 * The progress line on stderr: epochs done of all, the run that last finished one, elapsed time and an
 * estimate of the time left. On a terminal it is redrawn in place (at most five times a second); otherwise
 * a line is printed when a run finishes, so that logs stay short.
 */
final class Progress {
    private final PrintStream out;
    private final boolean terminal;
    private final long total;
    private final long start = System.nanoTime();
    private long done;
    private long lastDrawn;

    Progress(PrintStream out, long totalEpochs) {
        this.out = out;
        this.terminal = System.console() != null && System.console().isTerminal();
        this.total = totalEpochs;
    }

    synchronized void epochDone(String what, int epoch, int epochs) {
        done++;
        long now = System.nanoTime();
        boolean runDone = epoch == epochs;
        if (terminal ? now - lastDrawn > 200_000_000L || done == total : runDone) {
            lastDrawn = now;
            double elapsed = (now - start) / 1e9;
            double left = done == 0 ? 0 : elapsed * (total - done) / done;
            String line = String.format(Locale.ROOT, "paper: %3.0f%% (%d/%d epochs) %s epoch %d/%d, %s elapsed, ~%s left",
                    100.0 * done / total, done, total, what, epoch, epochs, clock(elapsed), clock(left));
            if (terminal) {
                out.print("\r\033[K" + line);
            } else {
                out.println(line);
            }
            out.flush();
        }
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
