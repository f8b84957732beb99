package dev.panorm.bench;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * {@link FusedBenchmark}'s calls interleaved in one JVM: each round times a batch of every implementation
 * in turn, so that another tenant's load, which on a shared machine moves from minute to minute, falls on
 * all of them alike; it prints each one's median and best batch over the rounds and their ratios to the
 * norm alone. JMH's separate forks, minutes apart, cannot compare them that closely on a busy machine.
 *
 * <p>{@code java -cp target/test-classes:target/classes:$(cat target/benchmarks.classpath)
 * --add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED dev.panorm.bench.FusedInterleaved
 * [--dtype bf16|f16] [ROWSxC ...]}, after {@code scripts/bench.sh -l} has built the benchmarks. With half-precision
 * data it times the fused calls only, on each backend (the plain add it compares with is float32).
 */
public final class FusedInterleaved {
    private FusedInterleaved() {}

    /** One implementation: a name and a call. */
    private record Implementation(String name, Runnable call) {}

    public static void main(String[] args) {
        String dtype = "f32";
        if (args.length >= 2 && args[0].equals("--dtype")) {
            dtype = args[1];
            args = Arrays.copyOfRange(args, 2, args.length);
        }
        String[] shapes = args.length > 0 ? args : new String[] {"1x4096", "8x4096", "8192x4096"};
        for (String shape : shapes) {
            run(shape, dtype);
        }
    }

    private static void run(String shape, String dtype) {
        FusedBenchmark java = create(shape, "java", 1, dtype);
        FusedBenchmark oneDnn = create(shape, "onednn", 1, dtype);
        FusedBenchmark javaAll = create(shape, "java", 0, dtype);
        FusedBenchmark oneDnnAll = create(shape, "onednn", 0, dtype);
        FusedBenchmark auto = create(shape, "auto", 0, dtype);
        List<Implementation> implementations = dtype.equals("f32")
                ? List.of(
                        new Implementation("layerNorm", java::layerNorm),
                        new Implementation("addThenLayerNorm", java::addThenLayerNorm),
                        new Implementation("addThenLayerNorm(onednn)", oneDnn::addThenLayerNorm),
                        new Implementation("fused", java::fused),
                        new Implementation("fused(onednn)", oneDnn::fused),
                        new Implementation("fused(java, auto threads)", javaAll::fused),
                        new Implementation("fused(onednn, auto threads)", oneDnnAll::fused),
                        new Implementation("fused(AUTO)", auto::fused),
                        new Implementation("fusedNoSum", java::fusedNoSum),
                        new Implementation("fusedNoSum(onednn)", oneDnn::fusedNoSum),
                        new Implementation("backwardResidual", java::backwardResidual),
                        new Implementation("backwardResidual(onednn)", oneDnn::backwardResidual),
                        new Implementation("backwardResidual(java, auto)", javaAll::backwardResidual),
                        new Implementation("backwardResidual(onednn, auto)", oneDnnAll::backwardResidual),
                        new Implementation("backwardResidual(AUTO)", auto::backwardResidual),
                        new Implementation("int8", java::int8),
                        new Implementation("int8Static", java::int8Static),
                        new Implementation("int8Residual", java::int8Residual))
                : List.of(
                        new Implementation("fused", java::fused),
                        new Implementation("fused(onednn)", oneDnn::fused),
                        new Implementation("fused(AUTO)", auto::fused),
                        new Implementation("backwardResidual", java::backwardResidual),
                        new Implementation("backwardResidual(onednn)", oneDnn::backwardResidual),
                        new Implementation("backwardResidual(AUTO)", auto::backwardResidual));
        long elements = Long.parseLong(shape.split("x")[0]) * Long.parseLong(shape.split("x")[1]);
        int batch = (int) Math.max(1, Math.min(20_000, 50_000_000 / elements)); // about 10 ms per batch
        int rounds = 40;
        double[][] perCall = new double[implementations.size()][rounds];
        for (int round = -10; round < rounds; round++) { // the first 10 rounds warm up
            for (int k = 0; k < implementations.size(); k++) {
                Runnable call = implementations.get(k).call();
                long start = System.nanoTime();
                for (int i = 0; i < batch; i++) {
                    call.run();
                }
                if (round >= 0) {
                    perCall[k][round] = (System.nanoTime() - start) / 1e3 / batch;
                }
            }
        }
        for (FusedBenchmark benchmark : List.of(java, oneDnn, javaAll, oneDnnAll, auto)) {
            benchmark.tearDown();
        }
        double base = median(perCall[0]);
        System.out.printf(Locale.ROOT, "%s %s (%d calls per batch, %d rounds)%n", shape, dtype, batch, rounds);
        for (int k = 0; k < implementations.size(); k++) {
            System.out.printf(
                    Locale.ROOT,
                    "  %-32s median %10.2f us  best %10.2f us  median / first %5.2f%n",
                    implementations.get(k).name(),
                    median(perCall[k]),
                    Arrays.stream(perCall[k]).min().orElseThrow(),
                    median(perCall[k]) / base);
        }
    }

    private static FusedBenchmark create(String shape, String ln, int threads, String dtype) {
        FusedBenchmark benchmark = new FusedBenchmark();
        benchmark.shape = shape;
        benchmark.ln = ln;
        benchmark.threads = threads;
        benchmark.dtype = dtype;
        benchmark.setUp();
        return benchmark;
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }
}
