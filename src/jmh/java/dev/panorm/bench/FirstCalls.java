package dev.panorm.bench;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.Locale;

/**
 * The first forward call on each of {@code SHAPES} new row counts (1000, 1001, ... rows of 768), in a process
 * warmed as {@code StartupBenchmark.firstCallOnNewShape} warms it (40 other shapes, 300 calls each), idling
 * {@code PAUSE} milliseconds before each new shape, as a server does between requests. Unlike that single-shot
 * JMH benchmark, the calls run on the program's main thread, which a woken background thread can preempt.
 * Prints the median and quartiles of the first calls, of the second call on each shape, of the steady state
 * on the same tensors (the median of 20 more calls on each shape), and of the Java kernel's steady state on one
 * thread there, the reference of issue 14's first-call target. With {@code reuse} as a fourth argument the
 * new shapes are views of two tensors allocated (and written) once, as a server's batches of varying length are;
 * without it each shape gets tensors just allocated, whose memory the first call meets cold.
 *
 * <p>{@code java -cp target/test-classes:target/classes:$(cat target/benchmarks.classpath)
 * --enable-native-access=ALL-UNNAMED --add-modules=jdk.incubator.vector dev.panorm.bench.FirstCalls BACKEND
 * [SHAPES [PAUSE [reuse]]]}, e.g. {@code FirstCalls AUTO 40 20}.
 */
public final class FirstCalls {
    private static final int C = 768;

    private FirstCalls() {}

    public static void main(String[] args) throws InterruptedException {
        Backend backend = Backend.valueOf(args[0].toUpperCase(Locale.ROOT));
        int shapes = args.length > 1 ? Integer.parseInt(args[1]) : 40;
        int pauseMillis = args.length > 2 ? Integer.parseInt(args[2]) : 20;
        boolean reuse = args.length > 3 && args[3].equals("reuse");
        long[] first = new long[shapes];
        long[] second = new long[shapes];
        long[] steady = new long[shapes];
        long[] javaSteady = new long[shapes];
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
            Tensor srcs = Tensor.allocate(arena, DataType.F32, 1000 + shapes, C);
            Tensor dsts = Tensor.allocate(arena, DataType.F32, 1000 + shapes, C);
            if (reuse) {
                norm.forward(srcs, dsts, scale, shift);
            }
            for (int shape = 0; shape < shapes; shape++) {
                Thread.sleep(pauseMillis);
                int rows = 1000 + shape;
                Tensor src = reuse ? srcs.rows(1, 0, rows) : Tensor.allocate(arena, DataType.F32, rows, C);
                Tensor dst = reuse ? dsts.rows(1, 0, rows) : Tensor.allocate(arena, DataType.F32, rows, C);
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
                for (int i = 0; i < more.length; i++) {
                    long before = System.nanoTime();
                    java.forward(src, dst, scale, shift);
                    more[i] = System.nanoTime() - before;
                }
                javaSteady[shape] = median(more);
            }
        }
        System.out.printf(
                Locale.ROOT,
                "%s, %d new shapes, %d ms pause%s: first call %s, second call %s, steady %s; Java on one thread, steady"
                        + " %s%n",
                backend,
                shapes,
                pauseMillis,
                reuse ? ", tensors reused" : "",
                quartiles(first),
                quartiles(second),
                quartiles(steady),
                quartiles(javaSteady));
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
