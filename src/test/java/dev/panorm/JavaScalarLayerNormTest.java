package dev.panorm;

/** The contract, on JAVA_SCALAR. */
class JavaScalarLayerNormTest extends LayerNormContract {
    @Override
    Backend backend() {
        return Backend.JAVA_SCALAR;
    }
}
