package example;

import dev.panorm.Backend;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import java.lang.foreign.Arena;
import java.util.Arrays;

/** What a modular application's code looks like: normalize a batch of embeddings in place. */
public final class Embeddings {
    private Embeddings() {}

    /**
     * Normalizes [1, 2, 3, 4] on every backend and prints, per backend, the backend that ran the call
     * and the result: {@code ONEDNN ran ONEDNN [-1.3416355, ...]}.
     */
    public static void main(String[] args) {
        for (Backend backend : Backend.values()) {
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(LayerNormConfig.of(4).withoutAffine(), backend)) {
                Tensor x = Tensor.ofFloats(arena, new float[] {1, 2, 3, 4}, 1, 4);
                norm.forward(x, x);
                System.out.println(backend + " ran " + norm.lastBackend() + " " + Arrays.toString(x.toFloatArray()));
            }
        }
    }
}
