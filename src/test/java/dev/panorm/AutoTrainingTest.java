package dev.panorm;

/** The training contract, on AUTO. */
class AutoTrainingTest extends TrainingContract {
    @Override
    Backend backend() {
        return Backend.AUTO;
    }
}
