package dev.panorm.bench;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import java.lang.foreign.Arena;
import java.util.Locale;

/**
 * What a small call costs right after a large one, per backend: one thread alternates a 1 x C forward on
 * {@code SMALL} with a {@code ROWS} x C forward on {@code LARGE} (each a {@code LayerNorm} with one thread) and
 * times the small calls only. The large call streams its tensors through the caches, as a transformer's matmuls
 * do between two norms, so the small call meets its code and data cold; {@code ROWS = 0} times the small call
 * alone. Both kernels are first warmed up together for 3 s, so that the Java kernel is compiled by C2 whatever
 * the pair is. Prints the mean time of a small call in each of 3 rounds of 2,000.
 *
 * <p>{@code java -cp target/test-classes:target/classes:$(cat target/benchmarks.classpath)
 * --enable-native-access=ALL-UNNAMED --add-modules=jdk.incubator.vector dev.panorm.bench.ColdCall SMALL LARGE
 * ROWS [C]}, e.g. {@code ColdCall ONEDNN JAVA 512}.
 */
public final class ColdCall {
    private ColdCall() {}

    public static void main(String[] args) {
        Backend small = Backend.valueOf(args[0].toUpperCase(Locale.ROOT));
        Backend large = Backend.valueOf(args[1].toUpperCase(Locale.ROOT));
        int rows = Integer.parseInt(args[2]);
        int c = args.length > 3 ? Integer.parseInt(args[3]) : 4096;
        try (Arena arena = Arena.ofShared();
                LayerNorm smallNorm = LayerNorm.create(LayerNormConfig.of(c), small, 1);
                LayerNorm largeNorm = LayerNorm.create(LayerNormConfig.of(c), large, 1);
                LayerNorm java = LayerNorm.create(LayerNormConfig.of(c), Backend.JAVA, 1)) {
            Tensor x = Tensor.allocate(arena, DataType.F32, 1, c).copyFrom(new float[c]);
            Tensor y = Tensor.allocate(arena, DataType.F32, 1, c);
            Tensor xLarge = Tensor.allocate(arena, DataType.F32, Math.max(rows, 1), c)
                    .copyFrom(new float[Math.max(rows, 1) * c]);
            Tensor yLarge = Tensor.allocate(arena, DataType.F32, Math.max(rows, 1), c);
            Tensor gamma = Tensor.allocate(arena, DataType.F32, c).copyFrom(new float[c]);
            Tensor beta = Tensor.allocate(arena, DataType.F32, c).copyFrom(new float[c]);
            long until = System.nanoTime() + 3_000_000_000L;
            while (System.nanoTime() < until) {
                java.forward(xLarge, yLarge, gamma, beta);
                java.forward(x, y, gamma, beta);
                smallNorm.forward(x, y, gamma, beta);
                largeNorm.forward(xLarge, yLarge, gamma, beta);
            }
            for (int round = 0; round < 3; round++) {
                int calls = 2000;
                long nanos = 0;
                for (int i = 0; i < calls; i++) {
                    long start = System.nanoTime();
                    smallNorm.forward(x, y, gamma, beta);
                    nanos += System.nanoTime() - start;
                    if (rows > 0) {
                        largeNorm.forward(xLarge, yLarge, gamma, beta);
                    }
                }
                System.out.printf(
                        Locale.ROOT,
                        "1x%d on %s after %dx%d on %s: %.2f us%n",
                        c,
                        small,
                        rows,
                        c,
                        large,
                        nanos / 1e3 / calls);
            }
        }
    }
}
