package dev.panorm;

/** The contract, on oneDNN. */
class OneDnnLayerNormTest extends LayerNormContract {
    @Override
    Backend backend() {
        return Backend.ONEDNN;
    }
}
