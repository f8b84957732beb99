package dev.panorm.bench;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The first forward call on each of {@code SHAPES} new row counts (1000, 1001, ... rows of 768), in a process
 * warmed as {@code StartupBenchmark.firstCallOnNewShape} warms it (40 other shapes, 300 calls each), idling
 * {@code PAUSE} milliseconds before each new shape, as a server does between requests. Unlike that single-shot
 * JMH benchmark, the calls run on the program's main thread, which a woken background thread can preempt.
 * Prints the median and quartiles of the first calls, of the second call on each shape, of the 20 calls after it
 * (for AUTO partly in Java while the shape's plan is built), and of the Java kernel's steady state on one thread
 * on the same tensors, the reference of issue 14's first-call target, timed after all shapes (with the flag
 * {@code interleaved}, as before 2026-12-02: after each shape, so that each first call follows 20 calls of
 * another {@code LayerNorm}). With the flag {@code reuse} the new shapes are views of two tensors allocated (and
 * written) once, as a server's batches of varying length are; without it each shape gets tensors just allocated,
 * whose memory the first call meets cold.
 *
 * <p>A control separates what a shape's newness costs from what every call pays after the same history (the
 * pause, and with {@code interleaved} the switch from the reference): before each new shape the same steps
 * (pause, one call, 20 more, with {@code interleaved} the reference's 20) run on a shape the backend has seen
 * (1000 + SHAPES + k rows, run and planned during the warm-up), on tensors of the same kind, and the line prints
 * that call's median as {@code seen shape, same history}.
 *
 * <p>{@code java -cp target/test-classes:target/classes:$(cat target/benchmarks.classpath)
 * --enable-native-access=ALL-UNNAMED --add-modules=jdk.incubator.vector dev.panorm.bench.FirstCalls BACKEND
 * [SHAPES [PAUSE [reuse] [interleaved]]]}, e.g. {@code FirstCalls AUTO 40 20 reuse}.
 */
public final class FirstCalls {
    private static final int C = 768;

    private FirstCalls() {}

    public static void main(String[] args) throws InterruptedException {
        Backend backend = Backend.valueOf(args[0].toUpperCase(Locale.ROOT));
        int shapes = args.length > 1 ? Integer.parseInt(args[1]) : 40;
        int pauseMillis = args.length > 2 ? Integer.parseInt(args[2]) : 20;
        List<String> flags = Arrays.asList(args).subList(Math.min(3, args.length), args.length);
        boolean reuse = flags.contains("reuse");
        boolean interleaved = flags.contains("interleaved");
        long[] first = new long[shapes];
        long[] second = new long[shapes];
        long[] steady = new long[shapes];
        long[] javaSteady = new long[shapes];
        long[] seen = new long[shapes];
        long[] more = new long[20];
        try (Arena arena = Arena.ofShared();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), backend);
                LayerNorm java = LayerNorm.create(LayerNormConfig.of(C), Backend.JAVA, 1)) {
            Tensor scale = Tensor.allocate(arena, DataType.F32, C);
            Tensor shift = Tensor.allocate(arena, DataType.F32, C);
            for (int rows = 1; rows <= 40; rows++) {
                Tensor x = Tensor.allocate(arena, DataType.F32, rows * 30, C);
                for (int i = 0; i < 300; i++) {
                    norm.forward(x, x, scale, shift);
                    java.forward(x, x, scale, shift);
                }
            }
            Tensor srcs = Tensor.allocate(arena, DataType.F32, 1000 + 2 * shapes, C);
            Tensor dsts = Tensor.allocate(arena, DataType.F32, 1000 + 2 * shapes, C);
            for (int shape = 0; shape < shapes; shape++) { // the control's shapes, seen and planned
                for (int i = 0; i < 3; i++) {
                    norm.forward(
                            srcs.rows(1, 0, 1000 + shapes + shape),
                            dsts.rows(1, 0, 1000 + shapes + shape),
                            scale,
                            shift);
                }
            }
            if (reuse) {
                norm.forward(srcs, dsts, scale, shift);
            }
            Thread.sleep(100); // plans built in the background finish
            for (int shape = 0; shape < shapes; shape++) {
                Thread.sleep(pauseMillis);
                int seenRows = 1000 + shapes + shape;
                Tensor seenSrc = rowsOf(srcs, reuse, arena, seenRows);
                Tensor seenDst = rowsOf(dsts, reuse, arena, seenRows);
                long control = System.nanoTime();
                norm.forward(seenSrc, seenDst, scale, shift);
                seen[shape] = System.nanoTime() - control;
                for (int i = 0; i < more.length; i++) {
                    norm.forward(seenSrc, seenDst, scale, shift);
                }
                if (interleaved) {
                    javaSteady(java, seenSrc, seenDst, scale, shift, more);
                }

                Thread.sleep(pauseMillis);
                int rows = 1000 + shape;
                Tensor src = rowsOf(srcs, reuse, arena, rows);
                Tensor dst = rowsOf(dsts, reuse, arena, rows);
                long start = System.nanoTime();
                norm.forward(src, dst, scale, shift);
                long between = System.nanoTime();
                norm.forward(src, dst, scale, shift);
                first[shape] = between - start;
                second[shape] = System.nanoTime() - between;
                for (int i = 0; i < more.length; i++) {
                    long before = System.nanoTime();
                    norm.forward(src, dst, scale, shift);
                    more[i] = System.nanoTime() - before;
                }
                steady[shape] = median(more);
                if (interleaved) {
                    javaSteady[shape] = javaSteady(java, src, dst, scale, shift, more);
                }
            }
            for (int shape = 0; shape < shapes && !interleaved; shape++) {
                int rows = 1000 + shape;
                Tensor src = rowsOf(srcs, reuse, arena, rows);
                Tensor dst = rowsOf(dsts, reuse, arena, rows);
                javaSteady[shape] = javaSteady(java, src, dst, scale, shift, more);
            }
        }
        System.out.printf(
                Locale.ROOT,
                "%s, %d new shapes, %d ms pause%s: first call %s, second call %s, steady %s; Java on one thread, steady"
                        + " %s; seen shape, same history: %s%n",
                backend,
                shapes,
                pauseMillis,
                (reuse ? ", tensors reused" : "") + (interleaved ? ", reference interleaved" : ""),
                quartiles(first),
                quartiles(second),
                quartiles(steady),
                quartiles(javaSteady),
                quartiles(seen));
    }

    /** The first {@code rows} rows of {@code all} with {@code reuse}, else a tensor of that many rows just allocated. */
    private static Tensor rowsOf(Tensor all, boolean reuse, Arena arena, int rows) {
        return reuse ? all.rows(1, 0, rows) : Tensor.allocate(arena, DataType.F32, rows, C);
    }

    /** The median of {@code times.length} calls of {@code java} on these tensors. */
    private static long javaSteady(LayerNorm java, Tensor src, Tensor dst, Tensor scale, Tensor shift, long[] times) {
        for (int i = 0; i < times.length; i++) {
            long before = System.nanoTime();
            java.forward(src, dst, scale, shift);
            times[i] = System.nanoTime() - before;
        }
        return median(times);
    }

    private static long median(long[] nanos) {
        Arrays.sort(nanos);
        return nanos[nanos.length / 2];
    }

    private static String quartiles(long[] nanos) {
        long[] sorted = nanos.clone();
        Arrays.sort(sorted);
        int n = sorted.length;
        return String.format(
                Locale.ROOT,
                "median %.0f us (quartiles %.0f, %.0f)",
                sorted[n / 2] / 1e3,
                sorted[n / 4] / 1e3,
                sorted[3 * n / 4] / 1e3);
    }
}
