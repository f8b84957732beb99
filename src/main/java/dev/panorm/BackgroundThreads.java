package dev.panorm;

import dev.panorm.internal.ffm.LinkerAbi;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * The single daemon threads that do panorm's work off the callers' threads. Those that build oneDNN plans and
 * free them run at the lowest scheduling priority. A caller wakes such a thread in the middle of a call; at
 * normal priority the woken thread, having slept, could take the caller's own core for the whole build: AUTO's
 * first call on a new shape of 1000x768 after an idle 20 ms took a median 1.0 to 1.6 ms instead of 0.7
 * (docs/benchmarks.md, "A woken plan builder took the caller's core"). Niceness 19 leaves the caller its core;
 * on a machine whose cores are all busy the work still runs, only later. The kernel warm-up keeps normal
 * priority: it starts the row splitter's pool threads, which do calls' work, and on Linux a new thread
 * inherits its creator's niceness.
 */
final class BackgroundThreads {
    /** Linux's {@code setpriority(PRIO_PROCESS, 0, nice)}: with who 0 it sets the calling thread's niceness. */
    private static final MethodHandle SET_PRIORITY = setPriority();

    private static final int PRIO_PROCESS = 0;
    private static final int LOWEST = 19;

    private BackgroundThreads() {}

    /** {@return an executor with one daemon thread named {@code name}, started on first use, at the lowest priority} */
    static ExecutorService lowestPriority(String name) {
        return single(name, true);
    }

    /** {@return an executor with one daemon thread named {@code name}, started on first use, at normal priority} */
    static ExecutorService normalPriority(String name) {
        return single(name, false);
    }

    private static ExecutorService single(String name, boolean lowest) {
        return Executors.newSingleThreadExecutor(task -> {
            Thread thread = new Thread(
                    () -> {
                        if (lowest) {
                            lowerPriority();
                        }
                        task.run();
                    },
                    name);
            thread.setDaemon(true);
            return thread;
        });
    }

    /** Best effort: where the call is missing or refused, the thread keeps its priority. */
    private static void lowerPriority() {
        if (SET_PRIORITY == null) {
            return;
        }
        try {
            int ignored = (int) SET_PRIORITY.invokeExact(PRIO_PROCESS, 0, LOWEST);
        } catch (Throwable e) {
            // Unchanged priority costs time, never correctness.
        }
    }

    /** null where libc has no {@code setpriority} or native access is denied: the threads then keep their priority. */
    private static MethodHandle setPriority() {
        return LinkerAbi.libcDowncall(
                "setpriority",
                FunctionDescriptor.of(
                        ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
    }
}
