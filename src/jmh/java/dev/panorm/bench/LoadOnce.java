package dev.panorm.bench;

import dev.panorm.Backend;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.OneDnn;
import java.util.Locale;

/**
 * The first oneDNN {@code LayerNorm} of a fresh JVM, in two parts: loading (panorm's classes, the bindings, the cache
 * check, {@code dlopen}, the FFM linker's first downcalls) and creating the norm (the engine, the plan classes); one
 * line per process. Unlike {@code StartupBenchmark.loadLibrary} it runs on a class path of jars, as class-data sharing
 * needs, so that builds and JVM options can be timed in turn, process by process (docs/benchmarks.md, "Loading and the
 * command line's start", has the loop).
 */
public final class LoadOnce {
    private LoadOnce() {}

    public static void main(String[] args) {
        long start = System.nanoTime();
        OneDnn.version();
        long loaded = System.nanoTime();
        LayerNorm.create(LayerNormConfig.of(768), Backend.ONEDNN).close();
        long created = System.nanoTime();
        System.out.printf(
                Locale.ROOT,
                "%s load %.1f ms, create %.1f ms%n",
                args.length > 0 ? args[0] : "",
                (loaded - start) / 1e6,
                (created - loaded) / 1e6);
    }
}
