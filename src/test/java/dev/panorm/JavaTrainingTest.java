package dev.panorm;

/** The training contract, on JAVA. */
class JavaTrainingTest extends TrainingContract {
    @Override
    Backend backend() {
        return Backend.JAVA;
    }
}
