package dev.panorm.bench;

import dev.panorm.Backend;
import dev.panorm.LayerNorm;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * AUTO against every fixed choice (oneDNN and the Java kernels, 1 and 2 threads), in one JVM, the
 * implementations alternating round by round so that a busy machine slows them alike; JMH's one fork per
 * combination cannot do that. Each group of shapes is a cycle that one thread runs call by call on one
 * {@code LayerNorm} per row length (a single shape: that shape alone; several: a model interleaving them,
 * as {@link MixedShapeBenchmark}). Prints a Markdown table: per shape, the median over rounds of each
 * implementation's mean time per call, and AUTO and its twin over the best fixed choice; for a cycle of several
 * shapes also the whole cycle's time (the sum over its shapes, median over rounds). Results are not checked here;
 * {@link LayerNormBenchmark} checks the same calls. The tensors lie in confined arenas, as in {@code panorm tune}.
 *
 * <p>Usage: {@code AutoVsBest OPS PASSES GROUPS [DTYPE [ROUNDS]]}, e.g.
 * {@code AutoVsBest layer,rms,precise forward,backward "1x4096,32x4096,512x4096,8x768,2048x768;8x768;512x1024"}.
 */
public final class AutoVsBest {
    /**
     * AUTO, the fixed choices, and a second AUTO on operations of its own: AUTO against itself, which says how far
     * apart this machine's noise puts two runs of the same path (a control, not a candidate for the best).
     */
    private static final String[] IMPLS = {"auto", "onednn-1t", "onednn-2t", "java-1t", "java-2t", "auto-twin"};
    /** The twin's index in {@link #IMPLS}. */
    private static final int TWIN = IMPLS.length - 1;

    private AutoVsBest() {}

    public static void main(String[] args) {
        String[] ops = args[0].split(",");
        String[] passes = args[1].split(",");
        String[] groups = args[2].split(";");
        String dtype = args.length > 3 ? args[3] : "f32";
        int rounds = args.length > 4 ? Integer.parseInt(args[4]) : 7;
        System.out.println(
                "| op | pass | cycle | shape | " + String.join(" | ", IMPLS) + " | AUTO / best | twin / best |");
        System.out.println("|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (String op : ops) {
            for (String passName : passes) {
                Pass pass = Pass.valueOf(passName.toUpperCase(Locale.ROOT));
                for (String group : groups) {
                    run(op, pass, group.split(","), dtype, rounds);
                }
            }
        }
    }

    private static void run(String op, Pass pass, String[] shapes, String dtype, int rounds) {
        Fixture[] fixtures = new Fixture[shapes.length];
        for (int i = 0; i < shapes.length; i++) {
            fixtures[i] = new Fixture(shapes[i], dtype, op, Arena.ofConfined()); // as panorm tune measures
        }
        List<LayerNorm[]> norms = new ArrayList<>(); // per implementation, per shape
        for (String impl : IMPLS) {
            Backend backend = Backend.valueOf(impl.replaceFirst("-.*", "").toUpperCase(Locale.ROOT));
            int threads = impl.endsWith("-1t") ? 1 : impl.endsWith("-2t") ? 2 : 0;
            Map<Long, LayerNorm> byC = new HashMap<>();
            LayerNorm[] mine = new LayerNorm[shapes.length];
            for (int i = 0; i < shapes.length; i++) {
                Fixture f = fixtures[i];
                mine[i] = byC.computeIfAbsent(f.channels, c -> LayerNorm.create(f.config(), backend, threads));
            }
            norms.add(mine);
        }
        // Warm-up: long enough for C2 and for AUTO's own kernel warm-up (2^26 elements, then a second or two).
        long until = System.nanoTime() + 6_000_000_000L;
        while (System.nanoTime() < until) {
            for (LayerNorm[] mine : norms) {
                cycles(mine, fixtures, pass, 20, new long[shapes.length]);
            }
        }
        double[][][] perCall = new double[IMPLS.length][shapes.length][rounds];
        int[] counts = new int[IMPLS.length];
        for (int k = 0; k < IMPLS.length; k++) { // cycles for about 20 ms per implementation and round
            long start = System.nanoTime();
            int n = 0;
            while (System.nanoTime() - start < 20_000_000L) {
                cycles(norms.get(k), fixtures, pass, 1, new long[shapes.length]);
                n++;
            }
            counts[k] = n;
        }
        for (int round = 0; round < rounds; round++) {
            for (int j = 0; j < IMPLS.length; j++) {
                int k = (j + round) % IMPLS.length;
                long[] nanos = new long[shapes.length];
                cycles(norms.get(k), fixtures, pass, counts[k], nanos);
                for (int i = 0; i < shapes.length; i++) {
                    perCall[k][i][round] = nanos[i] / 1e3 / counts[k];
                }
            }
        }
        String cycle = shapes.length == 1 ? "alone" : "mixed";
        for (int i = 0; i < shapes.length; i++) {
            StringBuilder line = new StringBuilder("| " + op + " | "
                    + pass.name().toLowerCase(Locale.ROOT) + " | " + cycle + " | " + shapes[i] + " |");
            double[] medians = new double[IMPLS.length];
            for (int k = 0; k < IMPLS.length; k++) {
                double[] times = perCall[k][i].clone();
                Arrays.sort(times);
                medians[k] = times[rounds / 2];
            }
            System.out.println(line.append(ratios(medians)));
        }
        if (shapes.length > 1) { // a switch between backends costs the call after it cold caches: see the cycle whole
            StringBuilder line = new StringBuilder(
                    "| " + op + " | " + pass.name().toLowerCase(Locale.ROOT) + " | " + cycle + " | whole cycle |");
            double[] medians = new double[IMPLS.length];
            for (int k = 0; k < IMPLS.length; k++) {
                double[] totals = new double[rounds];
                for (int round = 0; round < rounds; round++) {
                    for (int i = 0; i < shapes.length; i++) {
                        totals[round] += perCall[k][i][round];
                    }
                }
                Arrays.sort(totals);
                medians[k] = totals[rounds / 2];
            }
            System.out.println(line.append(ratios(medians)));
        }
        for (LayerNorm[] mine : norms) {
            Arrays.stream(mine).distinct().forEach(LayerNorm::close);
        }
        for (Fixture f : fixtures) {
            f.close();
        }
    }

    /** The medians' cells, then AUTO's and its twin's over the best fixed choice's. */
    private static String ratios(double[] medians) {
        StringBuilder cells = new StringBuilder();
        double best = Double.MAX_VALUE;
        for (int k = 0; k < IMPLS.length; k++) {
            cells.append(String.format(Locale.ROOT, " %.3g us |", medians[k]));
            if (k != 0 && k != TWIN) {
                best = Math.min(best, medians[k]);
            }
        }
        return cells.append(String.format(Locale.ROOT, " %.2f | %.2f |", medians[0] / best, medians[TWIN] / best))
                .toString();
    }

    /** Runs {@code count} cycles, adding each shape's time to {@code nanos}. */
    private static void cycles(LayerNorm[] norms, Fixture[] fixtures, Pass pass, int count, long[] nanos) {
        for (int c = 0; c < count; c++) {
            for (int i = 0; i < fixtures.length; i++) {
                Fixture f = fixtures[i];
                LayerNorm norm = norms[i];
                long start = System.nanoTime();
                switch (pass) {
                    case FORWARD -> norm.forward(f.src, f.dst, f.scale, f.shift);
                    case TRAINING -> norm.forwardTraining(f.src, f.dst, f.scale, f.shift, f.mean, f.variance);
                    case BACKWARD ->
                        norm.backward(
                                f.diffDst, f.src, f.mean, f.variance, f.scale, f.diffSrc, f.diffScale, f.diffShift);
                    case GLOBALFORWARD ->
                        norm.forwardWithGlobalStatistics(f.src, f.dst, f.scale, f.shift, f.mean, f.variance);
                    case BACKWARDDATA -> norm.backwardData(f.diffDst, f.src, f.mean, f.variance, f.scale, f.diffSrc);
                }
                nanos[i] += System.nanoTime() - start;
            }
        }
    }
}
