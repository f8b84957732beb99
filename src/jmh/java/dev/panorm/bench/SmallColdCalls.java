package dev.panorm.bench;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import java.lang.foreign.Arena;
import java.util.Locale;

/**
 * AUTO's forward calls on one small shape from the start of a fresh JVM: the mean time per call of each of {@code
 * BLOCKS} blocks of {@code CALLS} calls. While the vector kernels are cold AUTO runs such calls on oneDNN, and the
 * blocks show when its background warm-up started (the calls slow down while it competes for the cores) and when the
 * calls went to the Java kernel.
 *
 * <p>{@code java -cp target/test-classes:target/classes:$(cat target/benchmarks.classpath)
 * --enable-native-access=ALL-UNNAMED --add-modules=jdk.incubator.vector dev.panorm.bench.SmallColdCalls ROWSxC CALLS
 * BLOCKS}, e.g. {@code SmallColdCalls 1x32 50000 60}.
 */
public final class SmallColdCalls {
    private SmallColdCalls() {}

    public static void main(String[] args) {
        String[] shape = args[0].split("x");
        int rows = Integer.parseInt(shape[0]);
        int c = Integer.parseInt(shape[1]);
        int calls = Integer.parseInt(args[1]);
        int blocks = Integer.parseInt(args[2]);
        long start = System.nanoTime();
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), Backend.AUTO)) {
            Tensor x = Tensor.allocate(arena, DataType.F32, rows, c);
            Tensor y = Tensor.allocate(arena, DataType.F32, rows, c);
            Tensor gamma = Tensor.allocate(arena, DataType.F32, c);
            Tensor beta = Tensor.allocate(arena, DataType.F32, c);
            StringBuilder line = new StringBuilder();
            for (int block = 0; block < blocks; block++) {
                long before = System.nanoTime();
                for (int i = 0; i < calls; i++) {
                    norm.forward(x, y, gamma, beta);
                }
                line.append(String.format(Locale.ROOT, " %.2f", (System.nanoTime() - before) / 1e3 / calls));
            }
            System.out.printf(
                    Locale.ROOT,
                    "AUTO %s, us per call in blocks of %d:%s; %.2f s in all, last call on %s%n",
                    args[0],
                    calls,
                    line,
                    (System.nanoTime() - start) / 1e9,
                    norm.lastBackend());
        }
    }
}
