package dev.panorm;

import dev.panorm.internal.cache.AutoProfile;
import java.lang.foreign.Arena;

/**
 * Run in a fresh JVM by {@link AutoModelTest}: which model AUTO uses, and where it runs a forward call on each
 * row count given after the row length. Prints {@code model=...} and {@code rows=N BACKEND} lines.
 */
public final class ProfileProbe {
    private ProfileProbe() {}

    public static void main(String[] args) {
        int c = Integer.parseInt(args[0]);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c))) {
            Tensor gamma = Tensor.ofFloats(arena, TestData.gaussian(c, 1, 1, 2), c);
            Tensor beta = Tensor.ofFloats(arena, TestData.gaussian(c, 0, 1, 3), c);
            for (int i = 1; i < args.length; i++) {
                int rows = Integer.parseInt(args[i]);
                Tensor x = Tensor.ofFloats(arena, TestData.gaussian(rows * c, 0.5, 2, i), rows, c);
                norm.forward(x, x, gamma, beta);
                System.out.println("rows=" + rows + " " + norm.lastBackend());
            }
        }
        System.out.println("model=" + AutoProfile.describeInUse());
    }
}
