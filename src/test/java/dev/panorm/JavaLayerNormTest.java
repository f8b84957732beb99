package dev.panorm;

/** The contract, on the pure-Java backend. */
class JavaLayerNormTest extends LayerNormContract {
    @Override
    Backend backend() {
        return Backend.JAVA;
    }
}
