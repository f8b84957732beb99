package dev.panorm;

import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.ToDoubleFunction;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.management.MalformedObjectNameException;
import javax.management.ObjectName;

/**
 * The soak behind {@code scripts/soak.sh}: for SECONDS, creates and closes (or abandons to the Cleaner)
 * LayerNorms of varied configurations and runs millions of small calls on them from two worker threads
 * and from short-lived ones, sampling the process's resident memory (RSS) and the JVM's native memory
 * tracking (NMT) every second. After a warm-up it takes a baseline and fails if either grew past its
 * bound by the end, if RSS still climbs steeply over the second half, or if a checked result differs
 * from the scalar backend's. The JIT's own memory is left out of both (see {@link #nmt}).
 * {@code docs/soak.md} explains the bounds. A main class, not a test: surefire never runs it.
 *
 * <p>Usage: {@code java -XX:NativeMemoryTracking=summary ... dev.panorm.Soak [SECONDS]};
 * {@code -Dsoak.freshThreads=false} leaves out the calls from short-lived threads.
 */
final class Soak {
    /** Growth after warm-up that fails a run; measured growth is in docs/soak.md. */
    static final double RSS_BOUND_MIB = 32;

    static final double NMT_BOUND_MIB = 8;
    /** The slope of RSS over the second half that fails a run, judged only when that half is long enough to fit. */
    static final double SLOPE_BOUND_MIB_PER_MINUTE = 8;

    static final int SLOPE_MIN_SECONDS = 60;
    static final int WARM_UP_MAX_SECONDS = 30;
    /**
     * Shorter runs end their warm-up (a quarter of the run) while memory still ramps up, and fail, or take no
     * sample after it and check nothing.
     */
    static final int MIN_SECONDS = 4 * WARM_UP_MAX_SECONDS;
    /** Growth compares medians over this many samples, so one sample caught mid-compilation cannot decide it. */
    static final int WINDOW = 5;
    /**
     * A run stops early once RSS less JIT has grown this many times its bound: the leak is plain, and memory would run
     * out.
     */
    static final int STOP_FACTOR = 4;

    static final int DEFAULT_SECONDS = 180;

    private static final boolean FRESH_THREADS = Boolean.parseBoolean(System.getProperty("soak.freshThreads", "true"));
    private static final int WORKERS = 2;
    /**
     * Normalized shapes: odd and even sizes, one with two axes; none tiny (a 3-element row can be ill-conditioned
     * enough to fail the check's plain tolerance).
     */
    private static final long[][] SHAPES = {{8}, {17}, {64}, {100}, {256}, {4, 24}};
    /** One cycle of calls on a batch; training comes before the backward passes that read its statistics. */
    private static final int CYCLE = 5;

    private static final int CALLS_PER_BATCH = 400 * CYCLE;
    /** Elements per tensor at most, so that a call costs microseconds on any backend (the scalar one included). */
    private static final long MAX_ELEMENTS = 1024;
    /** Every this many rounds a worker checks its results against the scalar backend. */
    private static final int CHECK_EVERY = 16;
    /**
     * Row counts of the shared LayerNorm: times four passes, far more signatures than the plans a oneDNN
     * LayerNorm keeps ({@link PlanCache#MAX_PLANS}), so plans are built and retired all the time,
     * while the other worker calls it.
     */
    private static final int SHARED_ROW_COUNTS = 64;
    /**
     * Short-lived threads started per second, each making a few calls, as a server with a thread per
     * request does. A fixed rate, so that what they cost does not depend on how fast the machine is.
     */
    private static final int REQUESTS_PER_SECOND = 50;

    private static final int CALLS_PER_REQUEST = 10 * CYCLE;
    private static final ObjectName DIAGNOSTIC_COMMAND = diagnosticCommand();
    private static final Pattern NMT_TOTAL = Pattern.compile("Total: reserved=\\d+KB, committed=(\\d+)KB");
    /** A category line of the summary, e.g. {@code -  Compiler (reserved=18432KB, committed=18432KB)}. */
    private static final Pattern NMT_CATEGORY =
            Pattern.compile("-\\s+([A-Za-z ]+?) \\(reserved=\\d+KB, committed=(\\d+)KB");

    private static final Set<String> NMT_JIT = Set.of("Code", "Compiler", "Arena Chunk");

    private final LongAdder calls = new LongAdder();
    private final LongAdder created = new LongAdder();
    private final LongAdder abandoned = new LongAdder();
    private final LongAdder arenas = new LongAdder();
    private final LongAdder checks = new LongAdder();
    private final LongAdder freshThreads = new LongAdder();
    private final AtomicLong sharedCursor = new AtomicLong();
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    private volatile boolean running = true;
    /** Used by both workers at once, with ever-changing row counts. */
    private final LayerNorm shared = LayerNorm.create(LayerNormConfig.of(64), Backend.ONEDNN);
    /** One signature per pass, called from threads that come and go. */
    private final LayerNorm steady = LayerNorm.create(LayerNormConfig.of(768), Backend.ONEDNN);

    /**
     * Memory in MiB: the process's resident set, the JVM's committed memory (native memory tracking),
     * and of that the JIT's own (see {@link #nmt}). The checks leave the JIT's part out.
     */
    private record Sample(double seconds, long calls, double rss, double nmt, double jit) {
        double rssLessJit() {
            return rss - jit;
        }

        double nmtLessJit() {
            return nmt - jit;
        }
    }

    public static void main(String[] args) throws Exception {
        int seconds = DEFAULT_SECONDS;
        if (args.length > 1
                || args.length == 1
                        && !(args[0].matches("[1-9][0-9]{0,6}") && Integer.parseInt(args[0]) >= MIN_SECONDS)) {
            System.err.println("usage: Soak [SECONDS]   (a whole number of seconds, at least " + MIN_SECONDS
                    + ", default " + DEFAULT_SECONDS + ")");
            System.exit(2);
        }
        if (args.length == 1) {
            seconds = Integer.parseInt(args[0]);
        }
        nmt(); // fails now, not after the run, if tracking is off
        System.exit(new Soak().run(seconds) ? 0 : 1);
    }

    private boolean run(int seconds) throws Exception {
        int warmUp = Math.min(WARM_UP_MAX_SECONDS, Math.max(1, seconds / 4));
        System.out.printf(
                Locale.ROOT,
                "soak: %d s, %d workers%s, warm-up %d s. Fails if, from the warm-up's last %d "
                        + "samples to the run's last %d (medians), RSS less JIT grows > %.0f MiB or NMT committed"
                        + " less JIT "
                        + "> %.0f MiB, or if RSS less JIT climbs > %.0f MiB/min over the second half (judged in runs"
                        + " of "
                        + "%d s or more).%n",
                seconds,
                WORKERS,
                FRESH_THREADS ? " and " + REQUESTS_PER_SECOND + " fresh threads a second" : " (no fresh threads)",
                warmUp,
                WINDOW,
                WINDOW,
                RSS_BOUND_MIB,
                NMT_BOUND_MIB,
                SLOPE_BOUND_MIB_PER_MINUTE,
                2 * SLOPE_MIN_SECONDS);
        System.out.printf(
                "%6s %11s %8s %8s %8s %8s %12s %12s%n",
                "time s", "calls", "calls/s", "RSS", "NMT", "JIT", "RSS-JIT MiB", "NMT-JIT MiB");
        List<Thread> workers = new ArrayList<>();
        for (int i = 0; i < WORKERS; i++) {
            long seed = 1000 + i;
            workers.add(
                    Thread.ofPlatform().name("soak-" + i).start(() -> guarded(() -> work(new SplittableRandom(seed)))));
        }
        if (FRESH_THREADS) {
            workers.add(Thread.ofPlatform()
                    .name("soak-requests")
                    .start(() -> guarded(() -> requests(new SplittableRandom(7)))));
        }
        List<Sample> samples = new ArrayList<>();
        long start = System.nanoTime();
        long previousCalls = 0;
        double baselineRss = Double.NaN;
        for (int second = 1; second <= seconds && failure.get() == null; second++) {
            Thread.sleep(Math.max(0, (start + second * 1_000_000_000L - System.nanoTime()) / 1_000_000));
            trimNativeHeap();
            double[] nmt = nmt();
            double rss = rssMiB();
            Sample s = new Sample((System.nanoTime() - start) / 1e9, calls.sum(), rss, nmt[0], nmt[1]);
            samples.add(s);
            System.out.printf(
                    Locale.ROOT,
                    "%6.0f %11d %8d %8.1f %8.1f %8.1f %12.1f %12.1f%s%n",
                    s.seconds,
                    s.calls,
                    s.calls - previousCalls,
                    s.rss,
                    s.nmt,
                    s.jit,
                    s.rssLessJit(),
                    s.nmtLessJit(),
                    second == warmUp ? "  <- baseline" : "");
            previousCalls = s.calls;
            if (second == warmUp) {
                baselineRss = median(samples.subList(Math.max(0, warmUp - WINDOW), warmUp), Sample::rssLessJit);
            }
            if (s.rssLessJit() - baselineRss > STOP_FACTOR * RSS_BOUND_MIB) {
                System.out.printf(
                        Locale.ROOT,
                        "soak: stopping early: RSS less JIT grew more than %d times its bound%n",
                        STOP_FACTOR);
                break;
            }
        }
        running = false;
        for (Thread worker : workers) {
            worker.join();
        }
        shared.close();
        steady.close();
        return verdict(seconds, warmUp, samples);
    }

    private boolean verdict(int seconds, int warmUp, List<Sample> samples) {
        List<String> problems = new ArrayList<>();
        if (failure.get() != null) {
            problems.add("a worker failed: " + failure.get());
            failure.get().printStackTrace();
        }
        String growth = "no samples after warm-up";
        if (samples.size() > warmUp) {
            List<Sample> baseline = samples.subList(Math.max(0, warmUp - WINDOW), warmUp);
            List<Sample> end = samples.subList(Math.max(warmUp, samples.size() - WINDOW), samples.size());
            double rss = median(end, Sample::rssLessJit) - median(baseline, Sample::rssLessJit);
            double nmt = median(end, Sample::nmtLessJit) - median(baseline, Sample::nmtLessJit);
            growth = String.format(
                    Locale.ROOT,
                    "growth after warm-up: RSS less JIT %+.1f MiB (bound %.0f), NMT less JIT "
                            + "%+.1f MiB (bound %.0f); RSS %+.1f, JIT %+.1f MiB",
                    rss,
                    RSS_BOUND_MIB,
                    nmt,
                    NMT_BOUND_MIB,
                    median(end, Sample::rss) - median(baseline, Sample::rss),
                    median(end, Sample::jit) - median(baseline, Sample::jit));
            if (rss > RSS_BOUND_MIB) {
                problems.add(String.format(
                        Locale.ROOT, "RSS less JIT grew %.1f MiB after warm-up, more than %.0f", rss, RSS_BOUND_MIB));
            }
            if (nmt > NMT_BOUND_MIB) {
                problems.add(String.format(
                        Locale.ROOT,
                        "NMT committed less JIT grew %.1f MiB after warm-up, more than %.0f",
                        nmt,
                        NMT_BOUND_MIB));
            }
            List<Sample> secondHalf = samples.subList(samples.size() / 2, samples.size());
            if (secondHalf.getLast().seconds - secondHalf.getFirst().seconds >= SLOPE_MIN_SECONDS) {
                double slope = slopeMiBPerMinute(secondHalf);
                growth += String.format(
                        Locale.ROOT,
                        "; RSS less JIT over the second half %+.1f MiB/min (bound %.0f)",
                        slope,
                        SLOPE_BOUND_MIB_PER_MINUTE);
                if (slope > SLOPE_BOUND_MIB_PER_MINUTE) {
                    problems.add(String.format(
                            Locale.ROOT,
                            "RSS less JIT still climbs %.1f MiB/min over the second half, " + "more than %.0f",
                            slope,
                            SLOPE_BOUND_MIB_PER_MINUTE));
                }
            }
        }
        if (samples.size() < seconds) {
            problems.add("stopped after " + samples.size() + " of " + seconds + " s");
        }
        long total = calls.sum();
        System.out.printf(
                Locale.ROOT,
                "soak: %s after %d s: %d calls (%.0f/s), %d LayerNorms created (%d left to the "
                        + "Cleaner), %d arenas, %d fresh threads, %d results checked against the scalar backend; %s%n",
                problems.isEmpty() ? "PASS" : "FAIL",
                samples.size(),
                total,
                total / Math.max(1.0, samples.size()),
                created.sum(),
                abandoned.sum(),
                arenas.sum(),
                freshThreads.sum(),
                checks.sum(),
                growth);
        problems.forEach(problem -> System.out.println("soak: FAIL: " + problem));
        return problems.isEmpty();
    }

    private static double median(List<Sample> samples, ToDoubleFunction<Sample> value) {
        double[] values = samples.stream().mapToDouble(value).sorted().toArray();
        return (values[(values.length - 1) / 2] + values[values.length / 2]) / 2;
    }

    /** Least-squares slope of RSS less JIT against time. */
    private static double slopeMiBPerMinute(List<Sample> samples) {
        double n = samples.size();
        double meanT = samples.stream().mapToDouble(Sample::seconds).sum() / n;
        double meanR = samples.stream().mapToDouble(Sample::rssLessJit).sum() / n;
        double covariance = 0;
        double variance = 0;
        for (Sample s : samples) {
            covariance += (s.seconds - meanT) * (s.rssLessJit() - meanR);
            variance += (s.seconds - meanT) * (s.seconds - meanT);
        }
        return covariance / variance * 60;
    }

    private interface Work {
        void run() throws Exception;
    }

    /** Runs {@code work}; its failure stops the soak and fails it. */
    private void guarded(Work work) {
        try {
            work.run();
        } catch (Throwable e) {
            failure.compareAndSet(null, e);
            running = false;
        }
    }

    /** One worker, round after round: a fresh LayerNorm's life, then a batch on the shared one. */
    private void work(SplittableRandom random) {
        for (long round = 0; running; round++) {
            boolean check = round % CHECK_EVERY == 0;
            freshLayerNorm(random, check);
            long rows = 1 + sharedCursor.getAndIncrement() % SHARED_ROW_COUNTS;
            try (Arena arena = Arena.ofShared()) {
                arenas.increment();
                batch(shared, arena, DataType.F32, rows, CALLS_PER_BATCH, random, check);
            }
        }
    }

    /** A LayerNorm of a random configuration and backend, one to three batches, then closed or abandoned. */
    private void freshLayerNorm(SplittableRandom random, boolean check) {
        long[] shape = SHAPES[random.nextInt(SHAPES.length)];
        boolean rms = random.nextInt(6) == 0;
        LayerNormConfig config = (rms ? LayerNormConfig.rms(shape) : LayerNormConfig.of(shape))
                .withScale(random.nextBoolean())
                .withShift(random.nextBoolean())
                .withPreciseStatistics(!rms && random.nextInt(6) == 0);
        Backend backend = Backend.values()[random.nextInt(Backend.values().length)];
        DataType type = random.nextInt(3) == 0 ? DataType.BF16 : DataType.F32;
        LayerNorm norm = LayerNorm.create(config, backend, random.nextInt(2)); // 0 (automatic) or 1 thread
        created.increment();
        int batches = 1 + random.nextInt(3);
        for (int b = 0; b < batches && running; b++) {
            try (Arena arena = random.nextBoolean() ? Arena.ofConfined() : Arena.ofShared()) {
                arenas.increment();
                long rows = 1 + random.nextInt((int) Math.max(1, MAX_ELEMENTS / config.normalizedSize()));
                batch(norm, arena, type, rows, CALLS_PER_BATCH, random, check && b == 0);
            }
        }
        if (random.nextInt(4) == 0) {
            abandoned.increment(); // unreachable from here on: the Cleaner must free it
        } else {
            norm.close();
        }
    }

    /**
     * {@link #REQUESTS_PER_SECOND} times a second, a few calls on the steady LayerNorm from a new thread, which then
     * ends.
     */
    private void requests(SplittableRandom random) throws InterruptedException {
        long start = System.nanoTime();
        for (long n = 0; running; n++) {
            SplittableRandom own = random.split();
            boolean check = n % (CHECK_EVERY * REQUESTS_PER_SECOND) == 0;
            Runnable request = () -> guarded(() -> {
                try (Arena arena = Arena.ofConfined()) {
                    arenas.increment();
                    batch(steady, arena, DataType.F32, 4, CALLS_PER_REQUEST, own, check);
                }
            });
            (n % 2 == 0
                            ? Thread.ofVirtual().start(request)
                            : Thread.ofPlatform().start(request))
                    .join();
            freshThreads.increment();
            long next = start + (n + 1) * 1_000_000_000L / REQUESTS_PER_SECOND;
            Thread.sleep(Math.max(0, (next - System.nanoTime()) / 1_000_000));
        }
    }

    /** {@code count} calls on one set of tensors, cycling through the passes; then, if asked, a check. */
    private void batch(
            LayerNorm norm, Arena arena, DataType type, long rows, int count, SplittableRandom random, boolean check) {
        Batch b = Batch.allocate(arena, norm.config(), type, rows, random);
        for (int i = 0; i < count; i++) {
            switch (i % CYCLE) {
                case 0, 1 -> norm.forward(b.x, b.y, b.gamma, b.beta);
                case 2 -> norm.forwardTraining(b.x, b.y, b.gamma, b.beta, b.mean, b.variance);
                case 3 -> norm.backward(b.dy, b.x, b.mean, b.variance, b.gamma, b.dx, b.dGamma, b.dBeta);
                default -> norm.backwardData(b.dy, b.x, b.mean, b.variance, b.gamma, b.dx);
            }
        }
        calls.add(count);
        if (check) {
            check(norm, b, Batch.allocate(arena, norm.config(), type, rows, null));
            checks.increment();
        }
    }

    /** One training step on {@code norm} and on the scalar backend (into {@code expected}'s outputs), compared. */
    private static void check(LayerNorm norm, Batch b, Batch expected) {
        norm.forwardTraining(b.x, b.y, b.gamma, b.beta, b.mean, b.variance);
        norm.backward(b.dy, b.x, b.mean, b.variance, b.gamma, b.dx, b.dGamma, b.dBeta);
        try (LayerNorm scalar = LayerNorm.create(norm.config(), Backend.JAVA_SCALAR)) {
            scalar.forwardTraining(b.x, expected.y, b.gamma, b.beta, expected.mean, expected.variance);
            scalar.backward(
                    b.dy, b.x, expected.mean, expected.variance, b.gamma, expected.dx, expected.dGamma, expected.dBeta);
        }
        String call = norm + " on " + b.x;
        compare(call, "y", b.y, expected.y);
        compare(call, "mean", b.mean, expected.mean);
        compare(call, "variance", b.variance, expected.variance);
        compare(call, "dx", b.dx, expected.dx);
        compare(call, "dGamma", b.dGamma, expected.dGamma);
        compare(call, "dBeta", b.dBeta, expected.dBeta);
    }

    /**
     * Far looser than the tests' accuracy bounds (docs/accuracy.md), which these well-conditioned N(0, 1)
     * rows meet with room to spare: this catches corruption (a stale plan, memory of another call), not
     * rounding. bfloat16 outputs may differ by one rounding of their 8-bit significand.
     */
    private static void compare(String call, String name, Tensor actual, Tensor expected) {
        if (actual == null) {
            return;
        }
        double tolerance = actual.dataType() == DataType.F32 ? 2e-4 : 0x1p-6;
        for (long i = 0; i < actual.elementCount(); i++) {
            float a = Elements.get(actual.segment(), actual.dataType(), i);
            float e = Elements.get(expected.segment(), expected.dataType(), i);
            if (!(Math.abs(a - e) <= tolerance * (1 + Math.abs(e)))) {
                throw new IllegalStateException(
                        call + ": " + name + "[" + i + "] is " + a + ", the scalar backend gives " + e);
            }
        }
    }

    /** The tensors of one batch, contiguous, from one arena; inputs drawn from N(0, 1), gamma around 1. */
    private record Batch(
            Tensor x,
            Tensor y,
            Tensor gamma,
            Tensor beta,
            Tensor mean,
            Tensor variance,
            Tensor dy,
            Tensor dx,
            Tensor dGamma,
            Tensor dBeta) {

        /** With {@code random} null, the inputs are left zero (for a batch that only receives outputs). */
        static Batch allocate(Arena arena, LayerNormConfig config, DataType type, long rows, SplittableRandom random) {
            long[] channels = config.normalizedShape();
            long[] shape = new long[channels.length + 1];
            shape[0] = rows;
            System.arraycopy(channels, 0, shape, 1, channels.length);
            boolean scale = config.scale();
            boolean shift = config.shift();
            return new Batch(
                    fill(Tensor.allocate(arena, type, shape), random, 0),
                    Tensor.allocate(arena, type, shape),
                    scale ? fill(Tensor.allocate(arena, DataType.F32, channels), random, 1) : null,
                    shift ? fill(Tensor.allocate(arena, DataType.F32, channels), random, 0) : null,
                    config.rms() ? null : Tensor.allocate(arena, DataType.F32, rows),
                    Tensor.allocate(arena, DataType.F32, rows),
                    fill(Tensor.allocate(arena, type, shape), random, 0),
                    Tensor.allocate(arena, type, shape),
                    scale ? Tensor.allocate(arena, DataType.F32, channels) : null,
                    shift ? Tensor.allocate(arena, DataType.F32, channels) : null);
        }

        private static Tensor fill(Tensor tensor, SplittableRandom random, double mean) {
            if (random != null) {
                for (long i = 0; i < tensor.elementCount(); i++) {
                    Elements.set(tensor.segment(), tensor.dataType(), i, (float) (mean + TestData.gaussian(random)));
                }
            }
            return tensor;
        }
    }

    /**
     * Gives the C heap's free memory back to the system ({@code jcmd PID System.trim_native_heap}), so
     * that RSS counts memory in use, not what malloc kept after the JIT's last large compilation.
     */
    private static void trimNativeHeap() throws Exception {
        ManagementFactory.getPlatformMBeanServer()
                .invoke(DIAGNOSTIC_COMMAND, "systemTrimNativeHeap", new Object[0], new String[0]);
    }

    private static ObjectName diagnosticCommand() {
        try {
            return new ObjectName("com.sun.management:type=DiagnosticCommand");
        } catch (MalformedObjectNameException e) {
            throw new AssertionError(e);
        }
    }

    private static double rssMiB() throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024.0; // "VmRSS:   123456 kB"
            }
        }
        throw new IllegalStateException("no VmRSS line in /proc/self/status (the soak needs Linux)");
    }

    /**
     * The JVM's committed memory and, of that, the JIT's own, in MiB, from native memory tracking (asked
     * in-process, as {@code jcmd PID VM.native_memory summary} would). The JIT's part is the code cache
     * and the compilers' scratch memory: C2 takes tens of MiB for a large method and frees it soon after,
     * and keeps recompiling the kernels for minutes while the soak varies their inputs, all within the
     * code cache's fixed reservation. It would drown a slow leak in noise.
     */
    private static double[] nmt() throws Exception {
        String summary = (String) ManagementFactory.getPlatformMBeanServer()
                .invoke(
                        DIAGNOSTIC_COMMAND,
                        "vmNativeMemory",
                        new Object[] {new String[] {"summary", "scale=KB"}},
                        new String[] {String[].class.getName()});
        Matcher total = NMT_TOTAL.matcher(summary);
        if (!total.find()) {
            throw new IllegalStateException("no native memory tracking total; run the JVM with "
                    + "-XX:NativeMemoryTracking=summary. It said: " + summary.strip());
        }
        long jit = 0;
        Matcher category = NMT_CATEGORY.matcher(summary);
        while (category.find()) {
            if (NMT_JIT.contains(category.group(1))) {
                jit += Long.parseLong(category.group(2));
            }
        }
        return new double[] {Long.parseLong(total.group(1)) / 1024.0, jit / 1024.0};
    }
}
