package dev.panorm;

/** {@link FusedContract} on {@link Backend#AUTO}. */
class FusedAutoTest extends FusedContract {
    @Override
    Backend backend() {
        return Backend.AUTO;
    }
}
