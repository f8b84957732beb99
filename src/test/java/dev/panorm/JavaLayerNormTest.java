package dev.panorm;

/** The contract, on the Java backend (the Vector API kernels: the tests run with jdk.incubator.vector). */
class JavaLayerNormTest extends LayerNormContract {
    @Override
    Backend backend() {
        return Backend.JAVA;
    }
}
