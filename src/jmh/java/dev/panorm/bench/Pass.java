package dev.panorm.bench;

/** The three passes every peer runs; named like the JMH benchmark methods that time them. */
enum Pass {
    FORWARD, TRAINING, BACKWARD;

    /** The pass a JMH benchmark method times, from its name ({@code ...LayerNormBenchmark.forward}). */
    static Pass ofBenchmark(String benchmark) {
        return valueOf(benchmark.substring(benchmark.lastIndexOf('.') + 1).toUpperCase(java.util.Locale.ROOT));
    }
}
