package dev.panorm;

/** The contract, on JAVA_SCALAR. */
class ScalarKernelTest extends LayerNormContract {
    @Override
    Backend backend() {
        return Backend.JAVA_SCALAR;
    }
}
