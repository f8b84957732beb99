package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.ExecutorService;
import org.junit.jupiter.api.Test;

class BackgroundThreadsTest {
    private static final Path OWN_STAT = Path.of("/proc/thread-self/stat");

    /** The calling thread's niceness, field 19 of its /proc stat line (the fields after the name start at 3). */
    private static int niceness() {
        try {
            String stat = Files.readString(OWN_STAT);
            String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            return Integer.parseInt(fields[19 - 3]);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Test
    void backgroundWorkRunsAtTheLowestPriorityAndLeavesTheCallersAlone() throws Exception {
        assumeTrue(Files.isReadable(OWN_STAT), "Linux /proc");
        int callers = niceness();
        ExecutorService executor = BackgroundThreads.lowestPriority("panorm-test-background");
        try {
            Thread thread = executor.submit(Thread::currentThread).get();
            assertEquals("panorm-test-background", thread.getName());
            assertTrue(thread.isDaemon(), "a background thread keeps no JVM alive");
            assertEquals(19, executor.submit(BackgroundThreadsTest::niceness).get());
        } finally {
            executor.shutdown();
        }
        assertEquals(callers, niceness(), "the caller's own priority");
        ExecutorService normal = BackgroundThreads.normalPriority("panorm-test-normal");
        try {
            assertEquals(callers, normal.submit(BackgroundThreadsTest::niceness).get(), "normal priority");
        } finally {
            normal.shutdown();
        }
    }
}
