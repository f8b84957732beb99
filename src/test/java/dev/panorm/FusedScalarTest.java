package dev.panorm;

/** {@link FusedContract} on {@link Backend#JAVA_SCALAR}. */
class FusedScalarTest extends FusedContract {
    @Override
    Backend backend() {
        return Backend.JAVA_SCALAR;
    }
}
