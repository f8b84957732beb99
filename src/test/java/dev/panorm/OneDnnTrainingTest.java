package dev.panorm;

/** The training contract, on ONEDNN. */
class OneDnnTrainingTest extends TrainingContract {
    @Override
    Backend backend() {
        return Backend.ONEDNN;
    }
}
