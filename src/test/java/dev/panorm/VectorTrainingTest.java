package dev.panorm;

/** The training contract, on JAVA. */
class VectorTrainingTest extends TrainingContract {
    @Override
    Backend backend() {
        return Backend.JAVA;
    }
}
