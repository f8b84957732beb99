package dev.panorm.cli;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.OneDnn;
import dev.panorm.Tensor;
import dev.panorm.cli.Main.UsageException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import javax.management.JMException;
import javax.management.ObjectName;

/**
 * {@code panorm bench}: a short version of the JMH comparison ({@code docs/benchmarks.md}): forward
 * float32 layer normalization per shape on each backend, next to a plain copy of the same bytes (the
 * memory roof). Each measurement warms up for a while, then takes the median time per call over
 * batches; a few seconds per shape. For publishable numbers use {@code scripts/bench.sh}.
 */
final class Bench {
    static final String DEFAULT_SHAPES = "1x768,8x768,32x768,512x1024,2048x4096";

    /** One backend as the table shows it. */
    private record Candidate(String name, Backend backend, int threads) {}

    /** One measurement. */
    record Result(String shape, String candidate, double microseconds, double gigabytesPerSecond) {}

    private Bench() {}

    static List<Result> run(List<long[]> shapes, double seconds) {
        int cores = Runtime.getRuntime().availableProcessors();
        List<Candidate> candidates = new ArrayList<>();
        if (OneDnn.isAvailable()) {
            candidates.add(new Candidate("onednn-1t", Backend.ONEDNN, 1));
            if (cores > 1) {
                candidates.add(new Candidate("onednn-" + cores + "t", Backend.ONEDNN, cores));
            }
        }
        candidates.add(new Candidate("java-1t", Backend.JAVA, 1));
        candidates.add(new Candidate("java-scalar", Backend.JAVA_SCALAR, 1));
        candidates.add(new Candidate("auto", Backend.AUTO, 0));
        List<Result> results = new ArrayList<>();
        for (long[] shape : shapes) {
            String name = shape[0] + "x" + shape[1];
            try (Arena arena = Arena.ofConfined()) {
                Tensor x = Tensor.allocate(arena, DataType.F32, shape[0], shape[1]);
                Tensor y = Tensor.allocate(arena, DataType.F32, shape[0], shape[1]);
                Tensor gamma = Tensor.allocate(arena, DataType.F32, shape[1]);
                Tensor beta = Tensor.allocate(arena, DataType.F32, shape[1]);
                fill(x.segment(), new SplittableRandom(7));
                gamma.segment().fill((byte) 0x3f); // about 0.75
                double bytes = 2.0 * x.byteExtent(); // read src, write dst
                for (Candidate candidate : candidates) {
                    try (LayerNorm norm =
                            LayerNorm.create(LayerNormConfig.of(shape[1]), candidate.backend(), candidate.threads())) {
                        double perCall = medianSeconds(() -> norm.forward(x, y, gamma, beta), seconds);
                        results.add(new Result(name, candidate.name(), perCall * 1e6, bytes / perCall / 1e9));
                    }
                }
                MemorySegment from = x.segment();
                MemorySegment to = y.segment();
                double perCall = medianSeconds(() -> to.copyFrom(from), seconds);
                results.add(new Result(name, "copy-1t", perCall * 1e6, bytes / perCall / 1e9));
            }
        }
        return results;
    }

    static void printTable(List<Result> results, PrintStream out) {
        List<String> names = results.stream().map(Result::candidate).distinct().toList();
        List<String> shapes = results.stream().map(Result::shape).distinct().toList();
        out.printf(Locale.ROOT, "%-11s", "rows x C");
        names.forEach(name -> out.printf(Locale.ROOT, " %12s", name));
        out.printf(Locale.ROOT, " %14s %14s%n", "auto GB/s", "copy GB/s");
        for (String shape : shapes) {
            out.printf(Locale.ROOT, "%-11s", shape);
            double auto = 0;
            double copy = 0;
            for (String name : names) {
                for (Result result : results) {
                    if (result.shape().equals(shape) && result.candidate().equals(name)) {
                        out.printf(Locale.ROOT, " %9.2f us", result.microseconds());
                        auto = name.equals("auto") ? result.gigabytesPerSecond() : auto;
                        copy = name.equals("copy-1t") ? result.gigabytesPerSecond() : copy;
                    }
                }
            }
            out.printf(Locale.ROOT, " %14.1f %14.1f%n", auto, copy);
        }
        out.println(
                "\nforward float32, scale and shift; time per call (median); GB/s counts src read and dst written.");
        out.println("Full comparison with C and JNI: docs/benchmarks.md (scripts/bench.sh).");
    }

    static void printJson(List<Result> results, PrintStream out) {
        out.println("[");
        for (int i = 0; i < results.size(); i++) {
            Result r = results.get(i);
            out.printf(
                    Locale.ROOT,
                    "  {\"shape\": \"%s\", \"backend\": \"%s\", \"microseconds\": %.4f, "
                            + "\"gigabytesPerSecond\": %.3f}%s%n",
                    r.shape(),
                    r.candidate(),
                    r.microseconds(),
                    r.gigabytesPerSecond(),
                    i + 1 < results.size() ? "," : "");
        }
        out.println("]");
    }

    /** The longest warm-up waiting for the JIT, in seconds. */
    static final double MAX_WARMUP_SECONDS = 5;

    /** How long the JIT must compile nothing for the warm-up to end. */
    private static final long JIT_IDLE_NANOS = 100_000_000;

    /** {@code "ROWSxC,..."} as {rows, C} pairs. */
    static List<long[]> parseShapes(String text) {
        List<long[]> shapes = new ArrayList<>();
        for (String item : text.split(",", -1)) { // -1: an empty item is refused, not dropped
            String[] parts = item.trim().split("x", -1);
            try {
                long rows = Long.parseLong(parts[0]);
                long c = parts.length == 2 ? Long.parseLong(parts[1]) : -1;
                if (parts.length != 2 || rows < 1 || c < 1 || rows > 1L << 28 || c > 1L << 28 || rows * c > 1L << 28) {
                    throw new NumberFormatException();
                }
                shapes.add(new long[] {rows, c});
            } catch (NumberFormatException e) {
                throw new UsageException("--shapes takes ROWSxC[,ROWSxC...] with positive sizes of at most 2^28 "
                        + "elements, got '" + item + "'");
            }
        }
        return shapes;
    }

    /**
     * Warms up for {@code seconds} and then until the JIT has been idle for a while (at most {@value
     * #MAX_WARMUP_SECONDS} s), then times batches for {@code seconds}; the median seconds per call. The Java vector
     * kernels are slow until C2 compiles them, which takes thousands of calls and, on a busy machine, seconds:
     * a fixed warm-up of half a second timed them interpreted, at 300 times their speed.
     */
    static double medianSeconds(Runnable call, double seconds) {
        long budget = (long) (seconds * 1e9);
        long start = System.nanoTime();
        long warmUntil = start + (long) (Math.max(seconds, MAX_WARMUP_SECONDS) * 1e9);
        CompilationMXBean jit = jit();
        boolean watchJit = jit != null && jit.isCompilationTimeMonitoringSupported();
        long compiled = watchJit ? jit.getTotalCompilationTime() : 0;
        long windowStart = start;
        int calls = 0;
        while (true) {
            call.run();
            calls++;
            long now = System.nanoTime();
            if (now - windowStart < JIT_IDLE_NANOS || calls < 3) {
                continue;
            }
            long compiledNow = watchJit ? jit.getTotalCompilationTime() : compiled;
            boolean idle = compiledNow == compiled && jitQueueEmpty();
            if (now - start >= budget && idle || now >= warmUntil) {
                break;
            }
            compiled = compiledNow;
            windowStart = now;
        }
        double estimate = (System.nanoTime() - start) / 1e9 / calls;
        int batch = (int) Math.max(1, Math.min(100_000, 1e-3 / estimate)); // batches of about a millisecond
        List<Double> perCall = new ArrayList<>();
        long deadline = System.nanoTime() + budget;
        while (System.nanoTime() < deadline || perCall.size() < 5) {
            long begin = System.nanoTime();
            for (int i = 0; i < batch; i++) {
                call.run();
            }
            perCall.add((System.nanoTime() - begin) / 1e9 / batch);
        }
        perCall.sort(null);
        return perCall.get(perCall.size() / 2);
    }

    /**
     * Whether the JIT is compiling nothing and has nothing queued, as {@code jcmd PID Compiler.queue} shows; true where
     * the JVM does not say. A window with no compilation finished is not enough: on a busy machine a starved compiler
     * thread finishes nothing for a while, and the warm-up ended with the kernels still interpreted (24 ms a call of
     * 16x32 in one run of {@code demo} at a load of 6 on 2 cores, 7 us once compiled).
     */
    private static boolean jitQueueEmpty() {
        try {
            Object queue = ManagementFactory.getPlatformMBeanServer()
                    .invoke(
                            new ObjectName("com.sun.management:type=DiagnosticCommand"),
                            "compilerQueue",
                            new Object[] {null},
                            new String[] {String[].class.getName()});
            // "Current compiles:" and each queue's heading, then one line per method, or "Empty" under a queue.
            return queue instanceof String text
                    && text.lines().noneMatch(line -> line.contains("CompilerThread") || line.matches("\\s*\\d.*"));
        } catch (JMException | RuntimeException | NoClassDefFoundError unknown) {
            return true;
        }
    }

    /** The JIT's bean; null where java.management is not in the module graph (then the warm-up is fixed). */
    private static CompilationMXBean jit() {
        try {
            return ManagementFactory.getCompilationMXBean();
        } catch (NoClassDefFoundError noManagement) {
            return null;
        }
    }

    private static void fill(MemorySegment segment, SplittableRandom random) {
        for (long i = 0; i < segment.byteSize() / Float.BYTES; i++) {
            segment.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) random.nextDouble(-2, 2));
        }
    }
}
