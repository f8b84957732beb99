package dev.panorm;

/** {@link FusedContract} on {@link Backend#JAVA}. */
class FusedVectorTest extends FusedContract {
    @Override
    Backend backend() {
        return Backend.JAVA;
    }
}
