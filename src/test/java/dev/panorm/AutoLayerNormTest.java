package dev.panorm;

/** The contract, on AUTO. */
class AutoLayerNormTest extends LayerNormContract {
    @Override
    Backend backend() {
        return Backend.AUTO;
    }
}
