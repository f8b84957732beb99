package dev.panorm;

/** The training contract, on JAVA_SCALAR. */
class ScalarTrainingTest extends TrainingContract {
    @Override
    Backend backend() {
        return Backend.JAVA_SCALAR;
    }
}
