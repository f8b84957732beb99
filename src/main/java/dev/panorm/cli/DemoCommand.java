package dev.panorm.cli;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.NativeLibraryException;
import dev.panorm.OneDnn;
import dev.panorm.Tensor;
import dev.panorm.internal.cache.AutoProfile;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.ParentCommand;

/** {@code panorm demo}: one tensor through every backend, their agreement and timing side by side. */
@Command(
        name = "demo",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        description =
                "Normalizes a sample tensor with every backend; prints each one's timing and its error against the"
                        + " exact result, as a share of the documented bound (exit status 1 if any exceeds it).")
final class DemoCommand implements Callable<Integer> {
    private static final int ROWS = 64;
    private static final int C = 768;

    @ParentCommand
    private Main main;

    @Override
    public Integer call() {
        PrintStream out = main.out;
        LayerNormConfig config = LayerNormConfig.of(C);
        out.printf(
                Locale.ROOT,
                "panorm demo: layer normalization of F32[%d, %d], eps %.0e, with scale and shift%n%n",
                ROWS,
                C,
                config.eps());
        List<Backend> backends =
                new ArrayList<>(List.of(Backend.ONEDNN, Backend.JAVA, Backend.JAVA_SCALAR, Backend.AUTO));
        Optional<NativeLibraryException> failure = OneDnn.loadFailure();
        if (failure.isPresent()) {
            out.println(
                    "oneDNN is not available (" + failure.get().getMessage() + "); showing the Java backends only.");
            backends.remove(Backend.ONEDNN);
        }
        try (Arena arena = Arena.ofConfined()) {
            SplittableRandom random = new SplittableRandom(42);
            Tensor x = Tensor.allocate(arena, DataType.F32, ROWS, C);
            Tensor gamma = Tensor.allocate(arena, DataType.F32, C);
            Tensor beta = Tensor.allocate(arena, DataType.F32, C);
            fill(x, random, ROWS);
            fill(gamma, random, 1);
            fill(beta, random, 1);
            double[][] reference = reference(x.toFloatArray(), gamma.toFloatArray(), beta.toFloatArray(), config.eps());
            out.printf(
                    Locale.ROOT,
                    "%-12s %-34s %16s %12s %15s %12s%n",
                    "backend",
                    "implementation",
                    "median per call",
                    "throughput",
                    "max |y - exact|",
                    "of bound");
            boolean allWithin = true;
            for (Backend backend : backends) {
                Tensor y = Tensor.allocate(arena, DataType.F32, ROWS, C);
                try (LayerNorm norm = LayerNorm.create(config, backend)) {
                    double seconds = Bench.medianSeconds(() -> norm.forward(x, y, gamma, beta), 0.5);
                    double gigabytes = 2.0 * x.byteExtent() / 1e9; // read src, write dst
                    float[] result = y.toFloatArray();
                    double maxError = 0;
                    double worst = 0; // the largest error as a fraction of its element's bound
                    for (int i = 0; i < result.length; i++) {
                        double error = Math.abs(result[i] - reference[0][i]);
                        maxError = Math.max(maxError, error);
                        worst = Math.max(worst, error / reference[1][i]);
                    }
                    allWithin &= worst <= 1;
                    out.printf(
                            Locale.ROOT,
                            "%-12s %-34s %13.2f us %7.2f GB/s %15.2e %11.0f%%%n",
                            Options.name(backend),
                            norm.implementation(x, y, gamma, beta),
                            seconds * 1e6,
                            gigabytes / seconds,
                            maxError,
                            worst * 100);
                }
            }
            out.printf(
                    Locale.ROOT,
                    "%n%s: the last column is each backend's largest error over %d outputs as a share of"
                            + " the bound for that element (docs/accuracy.md: K = 8 u (kappa max(1, |gamma|) +"
                            + " |beta|)), against"
                            + " the exact result computed in double%n",
                    allWithin ? "agreement" : "DISAGREEMENT",
                    ROWS * C);
            // AUTO's crossovers depend on the machine: say whose it used, and how to measure this one's.
            boolean builtIn = !AutoProfile.inUse().isPresent();
            out.printf(
                    "%nauto's model: %s%s%n",
                    AutoProfile.describeInUse(),
                    builtIn ? "; `panorm tune` measures this machine's crossovers (a minute or two)" : "");
            return allWithin ? Main.OK : Main.FAILED;
        }
    }

    /** The exact result (in double) and each element's error bound from {@code docs/accuracy.md}. */
    private static double[][] reference(float[] x, float[] gamma, float[] beta, double eps) {
        double[] y = new double[x.length];
        double[] bound = new double[x.length];
        for (int base = 0; base < x.length; base += C) {
            double mean = 0;
            double largest = 0;
            for (int i = 0; i < C; i++) {
                mean += x[base + i];
                largest = Math.max(largest, Math.abs(x[base + i]));
            }
            mean /= C;
            double variance = 0;
            for (int i = 0; i < C; i++) {
                variance += (x[base + i] - mean) * (x[base + i] - mean);
            }
            double rstd = 1 / Math.sqrt(variance / C + eps);
            double kappa = largest * rstd;
            for (int i = 0; i < C; i++) {
                y[base + i] = (x[base + i] - mean) * rstd * gamma[i] + beta[i];
                bound[base + i] =
                        8 * 0x1p-24 * (kappa * Math.max(1, Math.abs(gamma[i])) + Math.abs(beta[i])) + 0x1p-126;
            }
        }
        return new double[][] {y, bound};
    }

    /** Rows with different offsets and spreads, like activations; a fixed seed keeps the demo repeatable. */
    private static void fill(Tensor tensor, SplittableRandom random, int rows) {
        int c = (int) tensor.dim(-1);
        float[] values = new float[rows * c];
        for (int r = 0; r < rows; r++) {
            double offset = random.nextDouble(-2, 2);
            double spread = random.nextDouble(0.5, 2);
            for (int i = 0; i < c; i++) {
                values[r * c + i] = (float) (offset + spread * gaussian(random));
            }
        }
        tensor.segment().copyFrom(MemorySegment.ofArray(values));
    }

    private static double gaussian(SplittableRandom random) {
        return Math.sqrt(-2 * Math.log(1 - random.nextDouble())) * Math.cos(2 * Math.PI * random.nextDouble());
    }
}
