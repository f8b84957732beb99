package example;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panorm.Backend;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.OneDnn;
import dev.panorm.Tensor;
import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

class EmbeddingsTest {
    /** [1, 2, 3, 4]: mean 2.5, variance 1.25, so y = (x - 2.5) / sqrt(1.25 + 1e-5). */
    private static final float[] EXPECTED = {-1.3416355f, -0.4472118f, 0.4472118f, 1.3416355f};

    @Test
    void theDefaultBackendNormalizes() {
        assertArrayEquals(EXPECTED, Embeddings.normalize(new float[] {1, 2, 3, 4}, 1, 4), 1e-6f);
    }

    @Test
    void oneDnnComesWithTheDependencyAndEveryBackendAgrees() {
        assertTrue(
                OneDnn.isAvailable(),
                () -> "oneDNN did not load: "
                        + OneDnn.loadFailure().orElseThrow().getMessage());
        for (Backend backend : Backend.values()) {
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(LayerNormConfig.of(4).withoutAffine(), backend)) {
                Tensor x = Tensor.ofFloats(arena, new float[] {1, 2, 3, 4}, 1, 4);
                norm.forward(x, x);
                assertArrayEquals(EXPECTED, x.toFloatArray(), 1e-6f, backend.name());
                if (backend == Backend.ONEDNN) {
                    assertEquals(Backend.ONEDNN, norm.lastBackend(), "the call on ONEDNN ran elsewhere");
                }
            }
        }
    }
}
