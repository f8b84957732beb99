package dev.panorm;

/** {@link FusedContract} on {@link Backend#ONEDNN}. */
class FusedOneDnnTest extends FusedContract {
    @Override
    Backend backend() {
        return Backend.ONEDNN;
    }
}
