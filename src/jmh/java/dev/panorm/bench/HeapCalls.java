package dev.panorm.bench;

import com.sun.management.ThreadMXBean;
import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.util.Locale;
import java.util.Random;

/**
 * Calls on tensors in Java arrays ({@code MemorySegment.ofArray}), which the Java backends take. First a timeline: a
 * phase of {@code CALLS} training forward and backward calls on 8 x 256 tensors of a confined arena, then the same on
 * Java arrays, printing the mean time per call of each 2,000 (the heap phase is where C2's recompilation loop showed
 * before heap tensors went through native copies). Then the steady state of float32 forward on {@code ROWSxC} (after
 * {@code WARM} calls, the mean of 10,000, or of fewer for large shapes: 2^27 elements, at least 10 calls) on a confined
 * arena ({@code Backend.JAVA}) and on Java arrays with
 * {@code Backend.JAVA} and {@code Backend.JAVA_SCALAR}, with the bytes each call allocates. With {@code wide} as a
 * fourth argument the timeline's x, dy and y are rows of arrays twice as wide (row stride 2 x 256, unit stride along
 * the row), strided tensors on the heap.
 *
 * <p>{@code java -cp target/test-classes:target/classes:$(cat target/benchmarks.classpath)
 * --enable-native-access=ALL-UNNAMED --add-modules=jdk.incubator.vector dev.panorm.bench.HeapCalls [CALLS [ROWSxC
 * [WARM [wide]]]]}, e.g. {@code HeapCalls 20000 32x768 50000}.
 */
public final class HeapCalls {
    private HeapCalls() {}

    public static void main(String[] args) {
        int calls = args.length > 0 ? Integer.parseInt(args[0]) : 20_000;
        String[] shape = (args.length > 1 ? args[1] : "32x768").split("x");
        int warm = args.length > 2 ? Integer.parseInt(args[2]) : 50_000;
        boolean wide = args.length > 3 && args[3].equals("wide");
        for (boolean heap : new boolean[] {false, true}) {
            timeline(heap, wide, calls);
        }
        int rows = Integer.parseInt(shape[0]);
        int c = Integer.parseInt(shape[1]);
        steadyState("confined, JAVA", Backend.JAVA, false, rows, c, warm);
        steadyState("heap, JAVA", Backend.JAVA, true, rows, c, warm);
        steadyState("heap, JAVA_SCALAR", Backend.JAVA_SCALAR, true, rows, c, warm);
    }

    /** A tensor of zeros in {@code arena}, or in a Java array when {@code heap}. */
    private static Tensor zeros(Arena arena, boolean heap, long... shape) {
        long n = 1;
        for (long dimension : shape) {
            n *= dimension;
        }
        return heap
                ? Tensor.of(MemorySegment.ofArray(new float[(int) n]), DataType.F32, shape)
                : Tensor.allocate(arena, DataType.F32, shape);
    }

    /** Rows x c zeros, or with {@code wide} the first c columns of rows x 2c zeros. */
    private static Tensor rows(Arena arena, boolean heap, boolean wide, int rows, int c) {
        if (!wide) {
            return zeros(arena, heap, rows, c);
        }
        Tensor whole = zeros(arena, heap, rows, 2L * c);
        return Tensor.of(whole.segment(), DataType.F32, new long[] {rows, c}, new long[] {2L * c, 1});
    }

    private static void timeline(boolean heap, boolean wide, int calls) {
        int rows = 8;
        int c = 256;
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), Backend.JAVA)) {
            Tensor x = rows(arena, heap, wide, rows, c);
            Tensor dy = rows(arena, heap, wide, rows, c);
            Tensor y = rows(arena, heap, wide, rows, c);
            Tensor gamma = zeros(arena, heap, c);
            Tensor beta = zeros(arena, heap, c);
            Tensor dGamma = zeros(arena, heap, c);
            Tensor dBeta = zeros(arena, heap, c);
            Tensor mean = zeros(arena, heap, rows);
            Tensor variance = zeros(arena, heap, rows);
            Random random = new Random(1);
            float[] values = new float[rows * c];
            for (int i = 0; i < values.length; i++) {
                values[i] = (float) random.nextGaussian();
            }
            x.copyFrom(values);
            dy.copyFrom(values);
            StringBuilder line = new StringBuilder(heap ? "heap:    " : "confined:");
            long forward = 0;
            long backward = 0;
            for (int i = 0; i < calls; i++) {
                long start = System.nanoTime();
                norm.forwardTraining(x, y, gamma, beta, mean, variance);
                long middle = System.nanoTime();
                norm.backward(dy, x, mean, variance, gamma, y, dGamma, dBeta);
                long end = System.nanoTime();
                forward += middle - start;
                backward += end - middle;
                if ((i + 1) % 2000 == 0) {
                    line.append(String.format(Locale.ROOT, " %.1f/%.1f", forward / 2e6, backward / 2e6));
                    forward = 0;
                    backward = 0;
                }
            }
            System.out.println(line + "  (us per call, forward/backward, each 2,000 calls)");
        }
    }

    private static void steadyState(String name, Backend backend, boolean heap, int rows, int c, int warm) {
        var threads = (ThreadMXBean) ManagementFactory.getThreadMXBean();
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend)) {
            Tensor x = zeros(arena, heap, rows, c);
            Tensor y = zeros(arena, heap, rows, c);
            Tensor gamma = zeros(arena, heap, c);
            Tensor beta = zeros(arena, heap, c);
            for (int i = 0; i < warm; i++) {
                norm.forward(x, y, gamma, beta);
            }
            int timed = (int) Math.max(10, Math.min(10_000, (1L << 27) / ((long) rows * c)));
            long allocated = threads.getCurrentThreadAllocatedBytes();
            long start = System.nanoTime();
            for (int i = 0; i < timed; i++) {
                norm.forward(x, y, gamma, beta);
            }
            long elapsed = System.nanoTime() - start;
            long bytes = threads.getCurrentThreadAllocatedBytes() - allocated;
            System.out.printf(
                    Locale.ROOT,
                    "%-18s forward %dx%d: %9.2f us, %d bytes per call, mean of %d (%s)%n",
                    name,
                    rows,
                    c,
                    elapsed / 1e3 / timed,
                    bytes / timed,
                    timed,
                    norm.implementation(x, y, gamma, beta));
        }
    }
}
