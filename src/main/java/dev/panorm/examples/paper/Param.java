package dev.panorm.examples.paper;

import java.util.Arrays;

/** A trainable array and its gradient, which the backward passes accumulate into and the optimizer clears. */
record Param(String name, float[] value, float[] grad) {
    Param(String name, int size) {
        this(name, new float[size], new float[size]);
    }

    static Param filled(String name, int size, float value) {
        Param p = new Param(name, size);
        Arrays.fill(p.value, value);
        return p;
    }
}
