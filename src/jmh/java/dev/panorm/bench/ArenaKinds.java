package dev.panorm.bench;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * What a call costs on tensors of each kind of arena: float32 forward, int8 forward (dynamic scales) and fused residual
 * add + LayerNorm forward (writing the sum) on {@code ROWSxC}, {@code Backend.JAVA}, one thread, on a confined, a
 * shared and the global arena. One JVM runs all nine in turn, {@code CALLS} calls each per round, for {@code SECONDS};
 * it prints each one's fastest and median round and the median over rounds of each kind's difference to confined
 * memory, so that a machine's drifts between rounds cancel. Java kernels see memory of other arenas than the caller's
 * confined ones through views, and a shared arena's call runs inside a downcall that holds it open (the class comment
 * of {@code OwnedMemory}); the differences are what that costs.
 *
 * <p>{@code java -cp target/test-classes:target/classes:$(cat target/benchmarks.classpath)
 * --enable-native-access=ALL-UNNAMED --add-modules=jdk.incubator.vector dev.panorm.bench.ArenaKinds [ROWSxC [SECONDS
 * [CALLS]]]}, default {@code 1x64 15 20000}.
 */
public final class ArenaKinds {
    private static final String[] OPERATIONS = {"forward", "int8", "fused"};
    private static final String[] ARENAS = {"confined", "shared", "global"};
    /** Rounds left out at the start: compilation. */
    private static final int WARM_ROUNDS = 20;

    private ArenaKinds() {}

    public static void main(String[] args) {
        String[] shape = (args.length > 0 ? args[0] : "1x64").split("x");
        int rows = Integer.parseInt(shape[0]);
        int c = Integer.parseInt(shape[1]);
        long seconds = args.length > 1 ? Long.parseLong(args[1]) : 15;
        int calls = args.length > 2 ? Integer.parseInt(args[2]) : 20_000;
        LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), Backend.JAVA, 1);
        Arena[] arenas = {Arena.ofConfined(), Arena.ofShared(), Arena.global()};
        Runnable[][] byArena = new Runnable[arenas.length][];
        for (int a = 0; a < arenas.length; a++) {
            byArena[a] = calls(arenas[a], norm, rows, c);
        }
        List<double[]> rounds = new ArrayList<>(); // per round: us per call, operation-major
        long end = System.nanoTime() + seconds * 1_000_000_000L;
        for (int round = 0; System.nanoTime() < end || round <= WARM_ROUNDS; round++) {
            double[] times = new double[OPERATIONS.length * arenas.length];
            for (int op = 0; op < OPERATIONS.length; op++) {
                for (int a = 0; a < arenas.length; a++) {
                    Runnable call = byArena[a][op];
                    long start = System.nanoTime();
                    for (int i = 0; i < calls; i++) {
                        call.run();
                    }
                    times[op * arenas.length + a] = (System.nanoTime() - start) / 1e3 / calls;
                }
            }
            if (round >= WARM_ROUNDS) {
                rounds.add(times);
            }
        }
        System.out.printf(
                Locale.ROOT,
                "%s, %d rounds of %d calls; us per call, fastest / median round; then the median over rounds of the"
                        + " difference to confined%n",
                args.length > 0 ? args[0] : "1x64",
                rounds.size(),
                calls);
        for (int op = 0; op < OPERATIONS.length; op++) {
            StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "%-8s", OPERATIONS[op]));
            for (int a = 0; a < arenas.length; a++) {
                double[] times = column(rounds, op * arenas.length + a, -1);
                line.append(
                        String.format(Locale.ROOT, "  %s %.3f / %.3f", ARENAS[a], times[0], times[times.length / 2]));
            }
            for (int a = 1; a < arenas.length; a++) {
                double[] more = column(rounds, op * arenas.length + a, op * arenas.length);
                line.append(String.format(Locale.ROOT, "  | %s +%.3f", ARENAS[a], more[more.length / 2]));
            }
            System.out.println(line);
        }
    }

    /** Each round's time at {@code index}, less its time at {@code minus} (none: -1), sorted. */
    private static double[] column(List<double[]> rounds, int index, int minus) {
        return rounds.stream()
                .mapToDouble(times -> times[index] - (minus < 0 ? 0 : times[minus]))
                .sorted()
                .toArray();
    }

    /** The three operations on tensors of {@code arena}, x and r of values in [-1, 1], gamma ones and beta zeros. */
    private static Runnable[] calls(Arena arena, LayerNorm norm, int rows, int c) {
        float[] values = new float[rows * c];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) Math.sin(i);
        }
        float[] ones = new float[c];
        Arrays.fill(ones, 1f);
        Tensor x = Tensor.ofFloats(arena, values, rows, c);
        Tensor r = Tensor.ofFloats(arena, values, rows, c);
        Tensor y = Tensor.allocate(arena, DataType.F32, rows, c);
        Tensor sum = Tensor.allocate(arena, DataType.F32, rows, c);
        Tensor q = Tensor.allocate(arena, DataType.S8, rows, c);
        Tensor scales = Tensor.allocate(arena, DataType.F32, rows);
        Tensor gamma = Tensor.ofFloats(arena, ones, c);
        Tensor beta = Tensor.allocate(arena, DataType.F32, c);
        return new Runnable[] {
            () -> norm.forward(x, y, gamma, beta),
            () -> norm.forwardQuantized(x, null, null, null, q, gamma, beta, scales),
            () -> norm.forwardResidual(x, r, null, sum, y, gamma, beta),
        };
    }
}
