package dev.panorm.examples.paper;

import java.util.Arrays;

/**
 * Where the layer-normalization time of a run goes: per kind of call, how many panorm calls, the nanoseconds
 * inside them, and the nanoseconds spent copying between the model's float arrays and the off-heap tensors
 * panorm reads and writes. One per run, used by one thread.
 *
 * <p>Sums of tiny intervals are at the mercy of the scheduler (one preemption adds milliseconds to a call of
 * a microsecond), so for the profile every call's duration can be kept ({@link #keepEach}) and summarized by
 * its median.
 */
final class CallTimer {
    enum Kind {
        FORWARD_TRAINING,
        BACKWARD,
        FORWARD
    }

    final long[] calls = new long[Kind.values().length];
    final long[] callNanos = new long[Kind.values().length];
    long copyNanos;
    private boolean keepEach;
    private final long[][] each = new long[Kind.values().length][];
    private long[] eachCopy = new long[0];
    private int copies;

    /** From now on keeps every call's duration, for {@link #median}. */
    void keepEach() {
        keepEach = true;
        for (int k = 0; k < each.length; k++) {
            each[k] = new long[1024];
        }
        eachCopy = new long[1024];
    }

    /**
     * Records one call: copying in from {@code start} to {@code callStart}, the call, copying out until {@code end}.
     */
    void add(Kind kind, long start, long callStart, long callEnd, long end) {
        int k = kind.ordinal();
        long copy = (callStart - start) + (end - callEnd);
        if (keepEach) {
            if (calls[k] == each[k].length) {
                each[k] = Arrays.copyOf(each[k], 2 * each[k].length);
            }
            each[k][(int) calls[k]] = callEnd - callStart;
            if (copies == eachCopy.length) {
                eachCopy = Arrays.copyOf(eachCopy, 2 * eachCopy.length);
            }
            eachCopy[copies++] = copy;
        }
        calls[k]++;
        callNanos[k] += callEnd - callStart;
        copyNanos += copy;
    }

    long totalCalls() {
        return Arrays.stream(calls).sum();
    }

    long totalCallNanos() {
        return Arrays.stream(callNanos).sum();
    }

    /** The median duration of a call of {@code kind} (nanoseconds), or NaN if none was kept. */
    double median(Kind kind) {
        int k = kind.ordinal();
        return keepEach && calls[k] > 0 ? median(each[k], (int) calls[k]) : Double.NaN;
    }

    /** The median time spent copying around one call (nanoseconds). */
    double medianCopy() {
        return keepEach && copies > 0 ? median(eachCopy, copies) : Double.NaN;
    }

    private static double median(long[] values, int n) {
        long[] sorted = Arrays.copyOf(values, n);
        Arrays.sort(sorted);
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
    }

    void reset() {
        Arrays.fill(calls, 0);
        Arrays.fill(callNanos, 0);
        copyNanos = 0;
        copies = 0;
    }
}
