package dev.panorm.cli;

import dev.panorm.pipeline.Pipeline;
import java.io.PrintStream;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.util.Locale;

/**
 * A one-line progress bar on a terminal: units done (rows, measurements), rate and time left, redrawn at most five times a
 * second and erased at the end. Not drawn when stderr is not a terminal (a pipe, a file, a test).
 */
final class ProgressBar implements Pipeline.Progress {
    private static final long REDRAW_NANOS = 200_000_000;
    private static final long FIRST_DRAW_NANOS = 500_000_000; // short runs stay quiet
    private static final int WIDTH = 30;
    /** ANSI "erase in line" (EL 0): clears what a longer line left, without spaces that wrap on a narrow terminal. */
    private static final String ERASE_TO_END = "\033[K";

    private final PrintStream err;
    private final String unit;
    private long lastDraw;

    private ProgressBar(PrintStream err, String unit) {
        this.err = err;
        this.unit = unit;
    }

    /** A bar counting rows on {@code err} if it is the process's stderr and that is a terminal, else nothing. */
    static Pipeline.Progress onTerminal(PrintStream err) {
        return onTerminal(err, "rows");
    }

    /** A bar counting {@code unit} on {@code err} if it is the process's stderr and that is a terminal, else nothing. */
    static Pipeline.Progress onTerminal(PrintStream err, String unit) {
        return err == System.err && stderrIsTerminal() ? new ProgressBar(err, unit) : null;
    }

    /** {@code isatty(2)}: Java's Console can only tell whether stdin and stdout are terminals. */
    private static boolean stderrIsTerminal() {
        Linker linker = Linker.nativeLinker();
        return linker.defaultLookup()
                .find("isatty")
                .map(isatty -> {
                    try {
                        return (int) linker.downcallHandle(
                                                isatty,
                                                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT))
                                        .invokeExact(2)
                                == 1;
                    } catch (Throwable e) {
                        return false; // no bar rather than no run
                    }
                })
                .orElse(false);
    }

    @Override
    public void update(long rowsDone, long totalRows, long elapsedNanos) {
        boolean finished = rowsDone == totalRows;
        if (elapsedNanos < FIRST_DRAW_NANOS || (!finished && elapsedNanos - lastDraw < REDRAW_NANOS)) {
            return;
        }
        lastDraw = elapsedNanos;
        err.print("\r" + line(rowsDone, totalRows, elapsedNanos, unit) + ERASE_TO_END);
        if (finished) {
            err.print("\r" + ERASE_TO_END); // the summary line replaces the bar
        }
        err.flush();
    }

    /** E.g. {@code [=========>          ]  31% 1200000/3866624 rows, 412k rows/s, 6 s left}. */
    static String line(long rowsDone, long totalRows, long elapsedNanos) {
        return line(rowsDone, totalRows, elapsedNanos, "rows");
    }

    static String line(long rowsDone, long totalRows, long elapsedNanos, String unit) {
        double fraction = totalRows > 0 ? (double) rowsDone / totalRows : 0;
        int filled = (int) (fraction * WIDTH);
        String bar = "=".repeat(filled) + (filled < WIDTH ? ">" + " ".repeat(WIDTH - filled - 1) : "");
        double seconds = elapsedNanos / 1e9;
        double rate = seconds > 0 ? rowsDone / seconds : 0;
        long left = rate > 0 ? Math.round((totalRows - rowsDone) / rate) : 0;
        return String.format(
                Locale.ROOT,
                "[%s] %3d%% %d/%d %s, %s %s/s, %d s left",
                bar,
                Math.round(fraction * 100),
                rowsDone,
                totalRows,
                unit,
                compact(rate),
                unit,
                left);
    }

    private static String compact(double value) {
        return value >= 1e6
                ? String.format(Locale.ROOT, "%.1fM", value / 1e6)
                : value >= 1e3
                        ? String.format(Locale.ROOT, "%.0fk", value / 1e3)
                        : String.format(Locale.ROOT, "%.0f", value);
    }
}
