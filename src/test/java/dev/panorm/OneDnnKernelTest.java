package dev.panorm;

/** The contract, on oneDNN. */
class OneDnnKernelTest extends LayerNormContract {
    @Override
    Backend backend() {
        return Backend.ONEDNN;
    }
}
