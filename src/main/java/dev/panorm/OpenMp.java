package dev.panorm;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/**
 * The two OpenMP calls panorm makes, to libgomp, which the bundled oneDNN uses as its CPU runtime.
 * They are not part of oneDNN's C API, so they are bound here by hand rather than by jextract.
 * OpenMP's thread count is per calling thread; oneDNN reads it when it creates a primitive.
 * With a oneDNN built on another runtime, both calls do nothing and one thread is reported.
 */
final class OpenMp {
    private static final MethodHandle GET_MAX_THREADS;
    private static final MethodHandle SET_NUM_THREADS;
    /** Per Java thread, the count panorm last set on it (0: none yet), so that a call sets it only when it changes. */
    private static final ThreadLocal<int[]> SET = ThreadLocal.withInitial(() -> new int[1]);
    /**
     * The process's thread count (OMP_NUM_THREADS, or the number of cores), read once before panorm sets any:
     * {@link #maxThreads()} reads the calling thread's own count, which panorm lowers to 1 for small calls,
     * so reading it later would make what a call gets depend on what ran before it on the same thread.
     */
    private static final int DEFAULT_THREADS;

    static {
        OneDnn.runtime();
        SymbolLookup lookup = SymbolLookup.loaderLookup();
        Linker linker = Linker.nativeLinker();
        Optional<MemorySegment> get = lookup.find("omp_get_max_threads");
        Optional<MemorySegment> set = lookup.find("omp_set_num_threads");
        GET_MAX_THREADS = get.map(s -> linker.downcallHandle(s, FunctionDescriptor.of(ValueLayout.JAVA_INT)))
                .orElse(null);
        SET_NUM_THREADS = set.map(s -> linker.downcallHandle(s, FunctionDescriptor.ofVoid(ValueLayout.JAVA_INT)))
                .orElse(null);
        DEFAULT_THREADS = maxThreads();
        // Sets the count it has (no change): a handle's first call lifts a barrier that code compiled before it keeps,
        // allocating on every call until recompiled (OneDnnExecute.prime)
        setThreads(DEFAULT_THREADS);
    }

    /** {@return the process's OpenMP thread count: what "all threads" means for a call} */
    static int defaultThreads() {
        return DEFAULT_THREADS;
    }

    private OpenMp() {}

    /** OpenMP's thread count for the calling thread (OMP_NUM_THREADS, or the number of cores, unless changed). */
    private static int maxThreads() {
        if (GET_MAX_THREADS == null) {
            return 1;
        }
        try {
            return (int) GET_MAX_THREADS.invokeExact();
        } catch (Throwable e) {
            throw new IllegalStateException("omp_get_max_threads failed", e);
        }
    }

    /**
     * The calling thread's record of the count panorm last set on it, for {@link #setThreads(int[], int)};
     * code that runs on one thread at a time can keep it rather than look it up per call.
     */
    static int[] threadsSetOnCallingThread() {
        return SET.get();
    }

    /** Sets the calling thread's count, whose record is {@code set}, unless it is {@code threads} already. */
    static void setThreads(int[] set, int threads) {
        if (set[0] != threads) {
            setThreads(threads);
            set[0] = threads;
        }
    }

    /** Sets the calling thread's OpenMP thread count. */
    private static void setThreads(int threads) {
        if (SET_NUM_THREADS == null) {
            return;
        }
        try {
            SET_NUM_THREADS.invokeExact(threads);
        } catch (Throwable e) {
            throw new IllegalStateException("omp_set_num_threads failed", e);
        }
    }
}
