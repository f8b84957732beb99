package dev.panorm.bench;

import java.util.Locale;

/**
 * The passes a peer runs; named like the JMH benchmark methods that time them. The JNI peer runs the first
 * three.
 */
enum Pass {
    FORWARD,
    TRAINING,
    BACKWARD,
    /** Forward with the statistics given (the fixture's, consistent with its input). */
    GLOBALFORWARD,
    /** Backward for the input only. */
    BACKWARDDATA;

    /** The pass a JMH benchmark method times, from its name ({@code ...LayerNormBenchmark.forward}). */
    static Pass ofBenchmark(String benchmark) {
        return valueOf(benchmark.substring(benchmark.lastIndexOf('.') + 1).toUpperCase(Locale.ROOT));
    }
}
