package dev.panorm;

/** The training contract, on JAVA_SCALAR. */
class JavaScalarTrainingTest extends TrainingContract {
    @Override
    Backend backend() {
        return Backend.JAVA_SCALAR;
    }
}
