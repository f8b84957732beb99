package example;

import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import java.lang.foreign.Arena;

/** What a user's code looks like: normalize a batch of embeddings in place. */
public final class Embeddings {
    private Embeddings() {}

    /** Layer-normalizes each row of {@code rows x dim} floats, without scale or shift, in place. */
    public static float[] normalize(float[] values, int rows, int dim) {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(dim).withoutAffine())) {
            Tensor x = Tensor.ofFloats(arena, values, rows, dim);
            norm.forward(x, x);
            return x.toFloatArray();
        }
    }
}
