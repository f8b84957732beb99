package dev.panorm.spark;

import dev.panorm.Backend;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The {@link LayerNorm}s of this JVM (an executor, or the driver in local mode): one per configuration,
 * backend and thread count, created by the first task that needs it and shared by every later task and
 * partition, closed when the JVM exits.
 *
 * <p>One per JVM rather than one per task thread: a {@code LayerNorm} is thread-safe, and its oneDNN
 * primitives (one per row count) are built once instead of once per thread. Per-thread instances would
 * also outlive their threads, which Spark's executor pool retires after a minute idle, with no hook to
 * free them.
 */
final class ExecutorNorms {
    private record Key(LayerNormConfig config, Backend backend, int threads) {}

    private static final ConcurrentHashMap<Key, LayerNorm> NORMS = new ConcurrentHashMap<>();

    static {
        // Close waits for calls in flight, so a task still running at exit finishes its chunk first.
        Runtime.getRuntime()
                .addShutdownHook(new Thread(() -> NORMS.values().forEach(LayerNorm::close), "panorm-close-norms"));
    }

    private ExecutorNorms() {}

    /** The shared operation; a failure to create it (oneDNN that cannot load) propagates and caches nothing. */
    static LayerNorm get(LayerNormConfig config, Backend backend, int threads) {
        return NORMS.computeIfAbsent(
                new Key(config, backend, threads), key -> LayerNorm.create(key.config, key.backend, key.threads));
    }
}
