package dev.panorm.bench;

import java.util.Locale;

/** The three passes every peer runs; named like the JMH benchmark methods that time them. */
enum Pass {
    FORWARD,
    TRAINING,
    BACKWARD;

    /** The pass a JMH benchmark method times, from its name ({@code ...LayerNormBenchmark.forward}). */
    static Pass ofBenchmark(String benchmark) {
        return valueOf(benchmark.substring(benchmark.lastIndexOf('.') + 1).toUpperCase(Locale.ROOT));
    }
}
