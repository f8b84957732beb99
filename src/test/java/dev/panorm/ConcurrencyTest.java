package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/** One LayerNorm shared by many threads; closing it while they run; OpenMP teams under a caller's pool. */
class ConcurrencyTest {
    private static final int C = 768;
    private static final int[] ROW_COUNTS = {1, 7, 64, 300};

    @ParameterizedTest
    @EnumSource(
            value = Backend.class,
            names = {"ONEDNN", "JAVA", "JAVA_SCALAR"}) // AUTO is bit-exact only per choice
    void manyThreadsGetExactlyTheSingleThreadedResults(Backend backend) throws Exception {
        int threads = 8;
        float[] gamma = TestData.gaussian(C, 1, 1, 1);
        float[] beta = TestData.gaussian(C, 0, 1, 2);
        try (Arena arena = Arena.ofShared();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), backend);
                ExecutorService pool = Executors.newFixedThreadPool(threads)) {
            Tensor g = Tensor.ofFloats(arena, gamma, C);
            Tensor b = Tensor.ofFloats(arena, beta, C);
            float[][] inputs = new float[ROW_COUNTS.length][];
            float[][] expected = new float[ROW_COUNTS.length][];
            for (int i = 0; i < ROW_COUNTS.length; i++) {
                inputs[i] = TestData.gaussian(ROW_COUNTS[i] * C, i, 1 + i, 10 + i);
                Tensor dst = Tensor.allocate(arena, DataType.F32, ROW_COUNTS[i], C);
                norm.forward(Tensor.ofFloats(arena, inputs[i], ROW_COUNTS[i], C), dst, g, b);
                expected[i] = dst.toFloatArray();
            }
            CountDownLatch start = new CountDownLatch(1);
            List<Future<?>> results = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int thread = t;
                results.add(pool.submit(() -> {
                    start.await();
                    try (Arena own = Arena.ofConfined()) {
                        for (int call = 0; call < 100; call++) {
                            int shape = (thread + call) % ROW_COUNTS.length;
                            Tensor src = Tensor.ofFloats(own, inputs[shape], ROW_COUNTS[shape], C);
                            Tensor dst = Tensor.allocate(own, DataType.F32, ROW_COUNTS[shape], C);
                            norm.forward(src, dst, g, b);
                            assertArrayEquals(
                                    expected[shape], dst.toFloatArray(), "thread " + thread + ", call " + call);
                        }
                    }
                    return null;
                }));
            }
            start.countDown();
            for (Future<?> result : results) {
                result.get();
            }
        }
    }

    @ParameterizedTest
    @EnumSource(
            value = Backend.class,
            names = {"ONEDNN", "JAVA", "JAVA_SCALAR"}) // AUTO is bit-exact only per choice
    void closingWhileCallsAreInFlightFailsLateCallersCleanly(Backend backend) throws Exception {
        int threads = 4;
        AtomicLong calls = new AtomicLong();
        LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C).withoutAffine(), backend);
        try (ExecutorService pool = Executors.newFixedThreadPool(threads)) {
            List<Future<String>> results = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                results.add(pool.submit(() -> {
                    try (Arena own = Arena.ofConfined()) {
                        Tensor data = Tensor.ofFloats(own, TestData.gaussian(64 * C, 0, 1, 3), 64, C);
                        while (true) {
                            norm.forward(data, data);
                            calls.incrementAndGet();
                        }
                    } catch (IllegalStateException e) {
                        return e.getMessage();
                    }
                }));
            }
            while (calls.get() < 1000) {
                Thread.onSpinWait();
            }
            norm.close();
            for (Future<String> result : results) {
                assertEquals("this LayerNorm is closed", result.get());
            }
        }
        assertTrue(calls.get() >= 1000);
    }

    /**
     * OpenMP gives every Java thread that calls a multi-threaded oneDNN primitive a team of its own:
     * {@code callers x threads} OS threads in all, alive as long as the calling Java thread. Worker
     * threads inherit their creator's name, which is how they are counted here.
     */
    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void eachCallingThreadGetsItsOwnOpenMpTeamOfTheConfiguredSize(int threadsPerCall) throws Exception {
        int callers = 4;
        String prefix = "omp-probe-" + threadsPerCall + "-";
        AtomicInteger ids = new AtomicInteger();
        ExecutorService pool =
                Executors.newFixedThreadPool(callers, task -> new Thread(task, prefix + ids.getAndIncrement()));
        int rows = 256;
        int c = 1024; // large enough that oneDNN splits rows across every thread it is given
        try (Arena arena = Arena.ofShared();
                LayerNorm norm =
                        LayerNorm.create(LayerNormConfig.of(c).withoutAffine(), Backend.ONEDNN, threadsPerCall)) {
            Tensor src = Tensor.ofFloats(arena, TestData.gaussian(rows * c, 0, 1, 5), rows, c);
            CountDownLatch done = new CountDownLatch(callers);
            CountDownLatch counted = new CountDownLatch(1);
            List<Future<?>> results = new ArrayList<>();
            for (int t = 0; t < callers; t++) {
                results.add(pool.submit(() -> {
                    try (Arena own = Arena.ofConfined()) {
                        for (int call = 0; call < 20; call++) {
                            norm.forward(src, Tensor.allocate(own, DataType.F32, rows, c));
                        }
                    }
                    done.countDown();
                    counted.await(); // keep every caller, and so its team, alive until counted
                    return null;
                }));
            }
            done.await();
            assertEquals(callers * threadsPerCall, threadsNamed(prefix), "OS threads of " + callers + " callers");
            counted.countDown();
            for (Future<?> result : results) {
                result.get();
            }
        } finally {
            pool.shutdown();
            assertTrue(pool.awaitTermination(10, TimeUnit.SECONDS));
        }
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (threadsNamed(prefix) != 0) { // a team ends with the Java thread that owns it
            assertTrue(System.nanoTime() < deadline, threadsNamed(prefix) + " OpenMP threads outlived their callers");
            Thread.sleep(10);
        }
    }

    /**
     * A thread count above OpenMP's ({@code OMP_NUM_THREADS}, default the cores) is capped there: thousands once made
     * OpenMP's thread creation crash the JVM, and more threads than cores only oversubscribe them.
     */
    @ParameterizedTest
    @ValueSource(ints = {3, 20_000})
    void threadCountsAboveOpenMpsAreCapped(int threads) throws Exception {
        assumeTrue(OneDnn.isAvailable());
        int most = OneDnn.maxThreads();
        assumeTrue(threads > most, "this machine has " + most + " OpenMP threads");
        String prefix = "omp-cap-" + threads;
        int rows = 256;
        int c = 1024;
        for (Backend backend : new Backend[] {Backend.ONEDNN, Backend.AUTO}) {
            Thread caller = new Thread(
                    () -> {
                        try (Arena arena = Arena.ofConfined();
                                LayerNorm norm =
                                        LayerNorm.create(LayerNormConfig.of(c).withoutAffine(), backend, threads)) {
                            Tensor src = Tensor.ofFloats(arena, TestData.gaussian(rows * c, 0, 1, 6), rows, c);
                            Tensor dst = Tensor.allocate(arena, DataType.F32, rows, c);
                            String implementation = norm.implementation(src, dst, null, null);
                            assertTrue( // AUTO may choose Java on some machines; oneDNN names its thread count
                                    backend == Backend.AUTO
                                            || implementation.endsWith(most == 1 ? "" : ", " + most + " threads"),
                                    implementation);
                            norm.forward(src, dst);
                            assertTrue(threadsNamed(prefix) <= most, threadsNamed(prefix) + " OpenMP threads");
                        } catch (IOException e) {
                            throw new UncheckedIOException(e);
                        }
                    },
                    prefix);
            AtomicReference<Throwable> failure = new AtomicReference<>();
            caller.setUncaughtExceptionHandler((thread, e) -> failure.set(e));
            caller.start();
            caller.join();
            if (failure.get() != null) {
                throw new AssertionError(backend + ": " + failure.get().getMessage(), failure.get());
            }
        }
    }

    /** Threads of this process whose OS-level name starts with {@code prefix} (Linux). */
    private static long threadsNamed(String prefix) throws IOException {
        long count = 0;
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/self/task"))) {
            for (Path task : tasks) {
                try {
                    count += Files.readString(task.resolve("comm")).startsWith(prefix) ? 1 : 0;
                } catch (IOException exited) {
                    // the thread ended while we looked: NoSuchFileException, or ESRCH ("No such process") mid-read
                }
            }
        }
        return count;
    }

    /**
     * A large call gets all threads whatever ran before it on the same Java thread: a small call sets the
     * thread's OpenMP count to 1, and a LayerNorm created afterwards once read that as "all".
     */
    @Test
    void aLargeCallGetsAllThreadsAfterASmallOneOnTheSameThread() throws Exception {
        int cores = OneDnn.maxThreads();
        Assumptions.assumeTrue(cores > 1, "one OpenMP thread in this process");
        Thread caller = new Thread(() -> {
            try (Arena arena = Arena.ofConfined();
                    LayerNorm small = LayerNorm.create(LayerNormConfig.of(768), Backend.ONEDNN)) {
                Tensor x = Tensor.allocate(arena, DataType.F32, 8, 768);
                Tensor p = Tensor.allocate(arena, DataType.F32, 768);
                small.forward(x, x, p, p); // one thread: below the threshold
                Tensor big = Tensor.allocate(arena, DataType.F32, 512, 1024);
                Tensor q = Tensor.allocate(arena, DataType.F32, 1024);
                for (Backend backend : List.of(Backend.ONEDNN, Backend.AUTO)) {
                    try (LayerNorm large = LayerNorm.create(LayerNormConfig.of(1024), backend)) {
                        assertTrue(
                                large.implementation(big, big, q, q).endsWith(", " + cores + " threads"),
                                backend + ": " + large.implementation(big, big, q, q));
                    }
                }
            }
        });
        AtomicReference<Throwable> failure = new AtomicReference<>();
        caller.setUncaughtExceptionHandler((thread, e) -> failure.set(e));
        caller.start();
        caller.join();
        if (failure.get() != null) {
            throw new AssertionError(failure.get());
        }
        assertEquals(cores, OneDnn.maxThreads(), "what info reports does not depend on the calling thread either");
    }
}
