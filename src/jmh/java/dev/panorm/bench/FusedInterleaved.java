package dev.panorm.bench;

import java.util.Arrays;
import java.util.Locale;

/**
 * {@link FusedBenchmark}'s calls interleaved in one JVM: each round times a batch of every implementation
 * in turn, so that another tenant's load, which on a shared machine moves from minute to minute, falls on
 * all of them alike; it prints each one's median and best batch over the rounds and their ratios to the
 * norm alone. JMH's separate forks, minutes apart, cannot compare them that closely on a busy machine.
 *
 * <p>{@code java -cp target/test-classes:target/classes:$(cat target/benchmarks.classpath)
 * --add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED dev.panorm.bench.FusedInterleaved
 * [ROWSxC ...]}, after {@code scripts/bench.sh -l} has built the benchmarks.
 */
public final class FusedInterleaved {
    private static final String[] NAMES = {
        "layerNorm",
        "addThenLayerNorm",
        "addThenLayerNorm(onednn)",
        "fused",
        "fusedNoSum",
        "int8",
        "int8Static",
        "int8Residual"
    };

    private FusedInterleaved() {}

    public static void main(String[] args) {
        String[] shapes = args.length > 0 ? args : new String[] {"1x4096", "8x4096", "8192x4096"};
        for (String shape : shapes) {
            run(shape);
        }
    }

    private static void run(String shape) {
        FusedBenchmark java = create(shape, "java");
        FusedBenchmark oneDnn = create(shape, "onednn");
        long elements = Long.parseLong(shape.split("x")[0]) * Long.parseLong(shape.split("x")[1]);
        int batch = (int) Math.max(1, Math.min(20_000, 50_000_000 / elements)); // about 10 ms per batch
        int rounds = 40;
        double[][] perCall = new double[NAMES.length][rounds];
        for (int round = -10; round < rounds; round++) { // the first 10 rounds warm up
            for (int k = 0; k < NAMES.length; k++) {
                long start = System.nanoTime();
                for (int i = 0; i < batch; i++) {
                    switch (k) {
                        case 0 -> java.layerNorm();
                        case 1 -> java.addThenLayerNorm();
                        case 2 -> oneDnn.addThenLayerNorm();
                        case 3 -> java.fused();
                        case 4 -> java.fusedNoSum();
                        case 5 -> java.int8();
                        case 6 -> java.int8Static();
                        default -> java.int8Residual();
                    }
                }
                if (round >= 0) {
                    perCall[k][round] = (System.nanoTime() - start) / 1e3 / batch;
                }
            }
        }
        java.tearDown();
        oneDnn.tearDown();
        double base = median(perCall[0]);
        System.out.printf(Locale.ROOT, "%s (%d calls per batch, %d rounds)%n", shape, batch, rounds);
        for (int k = 0; k < NAMES.length; k++) {
            System.out.printf(
                    Locale.ROOT,
                    "  %-26s median %10.2f us  best %10.2f us  median / layerNorm %5.2f%n",
                    NAMES[k],
                    median(perCall[k]),
                    Arrays.stream(perCall[k]).min().orElseThrow(),
                    median(perCall[k]) / base);
        }
    }

    private static FusedBenchmark create(String shape, String ln) {
        FusedBenchmark benchmark = new FusedBenchmark();
        benchmark.shape = shape;
        benchmark.ln = ln;
        benchmark.setUp();
        return benchmark;
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }
}
