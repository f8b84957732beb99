package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.sun.management.ThreadMXBean;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Steady-state calls allocate nothing on the Java heap: counted with the JVM's per-thread
 * allocation counter (not timed), after the JIT has compiled the path. Calls alternate between two
 * destinations so that both the unchanged and the re-bound oneDNN memory paths are covered.
 */
class AllocationTest {
    private static final int C = 64;
    private static final int ROWS = 8;
    private static final int CALLS_PER_ROUND = 5_000;

    private record Fixture(
            Tensor src,
            Tensor[] dst,
            Tensor gamma,
            Tensor beta,
            Tensor mean,
            Tensor variance,
            Tensor dy,
            Tensor dGamma,
            Tensor dBeta,
            Tensor q) {
        /**
         * The tensors {@code config} takes (no shift and no mean for RMS normalization), with {@code in} for src
         * and dy, {@code out} for dst and dx, {@code parameters} for scale, shift and their gradients.
         */
        static Fixture create(
                Arena arena, int rows, LayerNormConfig config, DataType in, DataType out, DataType parameters) {
            int c = (int) config.normalizedSize();
            return new Fixture(
                    Tensors.makeOrOnHeap(arena, in, TestData.gaussian(rows * c, 0, 1, 1), rows, c),
                    new Tensor[] {allocate(arena, out, rows, c), allocate(arena, out, rows, c)},
                    Tensors.makeOrOnHeap(arena, parameters, TestData.gaussian(c, 1, 1, 2), c),
                    config.shift() ? Tensors.makeOrOnHeap(arena, parameters, TestData.gaussian(c, 0, 1, 3), c) : null,
                    config.rms() ? null : allocate(arena, DataType.F32, rows),
                    allocate(arena, DataType.F32, rows),
                    Tensors.makeOrOnHeap(arena, in, TestData.gaussian(rows * c, 0, 1, 4), rows, c),
                    allocate(arena, parameters, c),
                    config.shift() ? allocate(arena, parameters, c) : null,
                    allocate(arena, DataType.S8, rows, c));
        }

        /** A tensor of zeros in {@code arena}, or in a Java array when it is null. */
        private static Tensor allocate(Arena arena, DataType type, long... shape) {
            return arena != null ? Tensor.allocate(arena, type, shape) : Tensors.onHeap(type, shape);
        }
    }

    private interface Call {
        void run(LayerNorm norm, Fixture f, Tensor dst);
    }

    private static void assertAllocationFree(Backend backend, String what, Call call) {
        assertAllocationFree(backend, what, ROWS, C, CALLS_PER_ROUND, call);
    }

    private static void assertAllocationFree(
            Backend backend, String what, int rows, int c, int callsPerRound, Call call) {
        assertAllocationFree(backend, what, rows, c, callsPerRound, DataType.F32, DataType.F32, DataType.F32, call);
    }

    private static void assertAllocationFree(
            Backend backend,
            String what,
            int rows,
            int c,
            int callsPerRound,
            DataType in,
            DataType out,
            DataType parameters,
            Call call) {
        assertAllocationFree(LayerNormConfig.of(c), backend, what, rows, callsPerRound, in, out, parameters, call);
    }

    private static void assertAllocationFree(
            LayerNormConfig config,
            Backend backend,
            String what,
            int rows,
            int callsPerRound,
            DataType in,
            DataType out,
            DataType parameters,
            Call call) {
        try (Arena arena = Arena.ofConfined()) {
            assertAllocationFree(arena, config, backend, what, rows, callsPerRound, in, out, parameters, call);
        }
    }

    private static void assertAllocationFree(
            Arena arena,
            LayerNormConfig config,
            Backend backend,
            String what,
            int rows,
            int callsPerRound,
            DataType in,
            DataType out,
            DataType parameters,
            Call call) {
        var threads = (ThreadMXBean) ManagementFactory.getThreadMXBean();
        long thread = Thread.currentThread().threadId();
        try (LayerNorm norm = LayerNorm.create(config, backend)) {
            Fixture f = Fixture.create(arena, rows, config, in, out, parameters);
            norm.forwardTraining(f.src(), f.dst()[0], f.gamma(), f.beta(), f.mean(), f.variance());
            // Steady state: the JIT needs a varying number of rounds (it compiles in the background, on a
            // busy machine), so warm up until 10 rounds in a row allocate nothing, within 300 rounds.
            int cleanRounds = 0;
            double perCall = Double.NaN;
            for (int round = 0; round < 300 && cleanRounds < 10; round++) {
                long before = threads.getThreadAllocatedBytes(thread);
                for (int i = 0; i < callsPerRound; i++) {
                    call.run(norm, f, f.dst()[(i >> 4) & 1]);
                }
                perCall = (threads.getThreadAllocatedBytes(thread) - before) / (double) callsPerRound;
                cleanRounds = perCall < 1 ? cleanRounds + 1 : 0;
            }
            assertTrue(
                    cleanRounds >= 10,
                    backend + " " + what + " (" + in + " in, " + out + " out, " + parameters
                            + " parameters) still allocates " + perCall + " bytes per call");
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void forwardAllocatesNothing(Backend backend) {
        assertAllocationFree(backend, "forward", (norm, f, dst) -> norm.forward(f.src(), dst, f.gamma(), f.beta()));
    }

    /**
     * Tensors of shared, automatic and global arenas: the kernels see them through views the calling thread owns, made
     * once per tensor and thread, inside a downcall that holds the arenas open ({@link OwnedMemory}).
     */
    @ParameterizedTest
    @CsvSource({
        "JAVA, shared",
        "JAVA, auto",
        "JAVA, global",
        "AUTO, shared",
        "AUTO, auto",
        "ONEDNN, shared",
        "JAVA_SCALAR, shared"
    })
    void callsOnMemoryOfOtherArenasAllocateNothing(Backend backend, String kind) {
        Arena arena = switch (kind) {
            case "shared" -> Arena.ofShared();
            case "auto" -> Arena.ofAuto();
            default -> Arena.global();
        };
        LayerNormConfig config = LayerNormConfig.of(C);
        try {
            assertAllocationFree(
                    arena,
                    config,
                    backend,
                    "forward, " + kind,
                    ROWS,
                    CALLS_PER_ROUND,
                    DataType.F32,
                    DataType.F32,
                    DataType.F32,
                    (norm, f, dst) -> norm.forward(f.src(), dst, f.gamma(), f.beta()));
            assertAllocationFree(
                    arena,
                    config,
                    backend,
                    "backward, " + kind,
                    ROWS,
                    CALLS_PER_ROUND,
                    DataType.F32,
                    DataType.F32,
                    DataType.F32,
                    (norm, f, dst) -> norm.backward(
                            f.dy(), f.src(), f.mean(), f.variance(), f.gamma(), dst, f.dGamma(), f.dBeta()));
            assertAllocationFree(
                    arena,
                    config,
                    backend,
                    "fused forward, " + kind,
                    ROWS,
                    CALLS_PER_ROUND,
                    DataType.BF16,
                    DataType.BF16,
                    DataType.F32,
                    (norm, f, dst) -> norm.forwardResidual(f.src(), f.dy(), null, null, dst, f.gamma(), f.beta()));
        } finally {
            if (kind.equals("shared")) {
                arena.close();
            }
        }
    }

    /** Contiguous heap tensors run through native copies that each thread keeps ({@link OwnedMemory.HeapCopies}). */
    @ParameterizedTest
    @EnumSource(
            value = Backend.class,
            names = {"AUTO", "JAVA", "JAVA_SCALAR"})
    void callsOnHeapTensorsAllocateNothing(Backend backend) {
        LayerNormConfig config = LayerNormConfig.of(C);
        DataType f32 = DataType.F32;
        assertAllocationFree(
                null,
                config,
                backend,
                "forward, heap",
                ROWS,
                CALLS_PER_ROUND,
                f32,
                f32,
                f32,
                (norm, f, dst) -> norm.forward(f.src(), dst, f.gamma(), f.beta()));
        assertAllocationFree(
                null,
                config,
                backend,
                "backward, heap",
                ROWS,
                CALLS_PER_ROUND,
                f32,
                f32,
                f32,
                (norm, f, dst) ->
                        norm.backward(f.dy(), f.src(), f.mean(), f.variance(), f.gamma(), dst, f.dGamma(), f.dBeta()));
        assertAllocationFree(
                null,
                config,
                backend,
                "quantized, heap",
                ROWS,
                CALLS_PER_ROUND,
                f32,
                f32,
                f32,
                (norm, f, dst) ->
                        norm.forwardQuantized(f.src(), f.dy(), null, dst, f.q(), f.gamma(), f.beta(), f.mean()));
        // a training loop: each tensor's copy at two places in turn, forward and backward (Tensor.earlierCopy)
        assertAllocationFree(
                null,
                config,
                backend,
                "training forward and backward in turn, heap",
                ROWS,
                CALLS_PER_ROUND,
                f32,
                f32,
                f32,
                (norm, f, dst) -> {
                    norm.forwardTraining(f.src(), dst, f.gamma(), f.beta(), f.mean(), f.variance());
                    norm.backward(f.dy(), f.src(), f.mean(), f.variance(), f.gamma(), dst, f.dGamma(), f.dBeta());
                });
        // strided: rows with gaps between them (vector kernels), and with gaps inside (scalar ones, copied back element
        // by element)
        long[] shape = {ROWS, C};
        Tensor stridedSrc = Tensor.of(
                MemorySegment.ofArray(TestData.gaussian(2 * ROWS * C, 0, 1, 1)), f32, shape, new long[] {2L * C, 1});
        Tensor stridedDst =
                Tensor.of(MemorySegment.ofArray(new float[2 * ROWS * C]), f32, shape, new long[] {2L * C, 2});
        assertAllocationFree(
                null,
                config,
                backend,
                "forward, strided on the heap",
                ROWS,
                CALLS_PER_ROUND,
                f32,
                f32,
                f32,
                (norm, f, dst) -> norm.forward(stridedSrc, stridedDst, f.gamma(), f.beta()));
        assertAllocationFree(
                null,
                config,
                backend,
                "forward in place, strided on the heap",
                ROWS,
                CALLS_PER_ROUND,
                f32,
                f32,
                f32,
                (norm, f, dst) -> norm.forward(stridedSrc, stridedSrc, f.gamma(), f.beta()));
    }

    /**
     * Two threads taking turns on the same tensors of a shared arena, as a server's request threads share weights:
     * each thread keeps its own views of them ({@link OwnedMemory}), so neither allocates per call. When only the
     * tensor kept a view, for the last thread, every turn made a new one.
     */
    @ParameterizedTest
    @EnumSource(
            value = Backend.class,
            names = {"JAVA", "AUTO"})
    void threadsTakingTurnsOnSharedTensorsAllocateNothing(Backend backend) throws Exception {
        var threads = (ThreadMXBean) ManagementFactory.getThreadMXBean();
        ExecutorService other = Executors.newSingleThreadExecutor();
        try (Arena arena = Arena.ofShared();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), backend)) {
            Fixture f = Fixture.create(arena, ROWS, LayerNormConfig.of(C), DataType.F32, DataType.F32, DataType.F32);
            Callable<Long> turn = () -> { // one call; the bytes this thread allocated in it
                long before = threads.getCurrentThreadAllocatedBytes();
                norm.forward(f.src(), f.dst()[0], f.gamma(), f.beta());
                return threads.getCurrentThreadAllocatedBytes() - before;
            };
            int cleanRounds = 0;
            long bytes = -1;
            for (int round = 0; round < 300 && cleanRounds < 10; round++) {
                bytes = 0;
                for (int i = 0; i < 1_000; i++) {
                    bytes += turn.call() + other.submit(turn).get();
                }
                cleanRounds = bytes == 0 ? cleanRounds + 1 : 0;
            }
            assertTrue(
                    cleanRounds >= 10,
                    backend + ": two threads taking turns still allocate " + bytes + " bytes per round");
        } finally {
            other.shutdownNow();
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void forwardTrainingAllocatesNothing(Backend backend) {
        assertAllocationFree(
                backend,
                "forwardTraining",
                (norm, f, dst) -> norm.forwardTraining(f.src(), dst, f.gamma(), f.beta(), f.mean(), f.variance()));
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void backwardAllocatesNothing(Backend backend) {
        assertAllocationFree(
                backend,
                "backward",
                (norm, f, dst) ->
                        norm.backward(f.dy(), f.src(), f.mean(), f.variance(), f.gamma(), dst, f.dGamma(), f.dBeta()));
    }

    /**
     * One long row: the vector kernels' loops run thousands of times per call, so C2's profile sees
     * the code after them rarely: a helper that took a vector there would not be inlined, and C2 would
     * box the vector on every call (see VectorKernel.FOLDS).
     */
    @ParameterizedTest
    @EnumSource(
            value = Backend.class,
            names = {"JAVA", "AUTO"})
    void oneLongRowAllocatesNothing(Backend backend) {
        assertAllocationFree(
                backend,
                "forward of 1 x 65536",
                1,
                1 << 16,
                200,
                (norm, f, dst) -> norm.forward(f.src(), dst, f.gamma(), f.beta()));
        assertAllocationFree(
                backend,
                "backward of 1 x 65536",
                1,
                1 << 16,
                200,
                (norm, f, dst) ->
                        norm.backward(f.dy(), f.src(), f.mean(), f.variance(), f.gamma(), dst, f.dGamma(), f.dBeta()));
    }

    /**
     * Half-precision data on the Java backend's vector kernels (float rows of scratch, reused): every pass, a
     * short and a long row, all bf16, all f16, and mixed types.
     */
    @ParameterizedTest
    @CsvSource({"BF16, BF16, BF16", "F16, F16, F16", "BF16, F32, F16", "F32, F16, BF16"})
    void halfPrecisionAllocatesNothing(DataType in, DataType out, DataType parameters) {
        for (int c : new int[] {C, 1 << 16}) {
            int rows = c == C ? ROWS : 1;
            int calls = c == C ? CALLS_PER_ROUND : 200;
            assertAllocationFree(
                    Backend.JAVA,
                    "forward of " + rows + " x " + c,
                    rows,
                    c,
                    calls,
                    in,
                    out,
                    parameters,
                    (norm, f, dst) -> norm.forward(f.src(), dst, f.gamma(), f.beta()));
            assertAllocationFree(
                    Backend.JAVA,
                    "forwardTraining of " + rows + " x " + c,
                    rows,
                    c,
                    calls,
                    in,
                    out,
                    parameters,
                    (norm, f, dst) -> norm.forwardTraining(f.src(), dst, f.gamma(), f.beta(), f.mean(), f.variance()));
            assertAllocationFree(
                    Backend.JAVA,
                    "backward of " + rows + " x " + c,
                    rows,
                    c,
                    calls,
                    in,
                    out,
                    parameters,
                    (norm, f, dst) -> norm.backward(
                            f.dy(), f.src(), f.mean(), f.variance(), f.gamma(), dst, f.dGamma(), f.dBeta()));
        }
    }

    /**
     * A call split across threads allocates its job on the caller (about 200 bytes), and nothing on the pool threads
     * once warm: the views of the caller's confined tensors and of the scratch rows are made once per thread, where
     * they took about 4 KB per call before. Counted on the pool's threads, which the calls above do not use.
     */
    @ParameterizedTest
    @CsvSource({"F32, F32, F32", "BF16, BF16, BF16", "F16, F16, F16", "BF16, F32, F16"})
    void splitCallsAllocateNothingOnThePoolThreads(DataType in, DataType out, DataType parameters) {
        var threads = (ThreadMXBean) ManagementFactory.getThreadMXBean();
        int rows = 512; // 512 x 1024: 2^19 elements, two threads' worth (RowSplitter)
        LayerNormConfig config = LayerNormConfig.of(1024);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(config, Backend.JAVA, 2)) {
            Fixture f = Fixture.create(arena, rows, config, in, out, parameters);
            norm.forwardTraining(f.src(), f.dst()[0], f.gamma(), f.beta(), f.mean(), f.variance());
            int cleanRounds = 0;
            double perCall = Double.NaN;
            for (int round = 0; round < 300 && cleanRounds < 10; round++) {
                long[] pool = poolThreadIds();
                long before = allocated(threads, pool);
                for (int i = 0; i < 20; i++) {
                    Tensor dst = f.dst()[i & 1];
                    norm.forward(f.src(), dst, f.gamma(), f.beta());
                    norm.backward(f.dy(), f.src(), f.mean(), f.variance(), f.gamma(), dst, f.dGamma(), f.dBeta());
                }
                perCall = (allocated(threads, pool) - before) / 40.0;
                cleanRounds = pool.length > 0 && perCall < 1 ? cleanRounds + 1 : 0;
            }
            assertTrue(
                    cleanRounds >= 10,
                    "split calls (" + in + " in, " + out + " out, " + parameters + " parameters) still allocate "
                            + perCall + " bytes per call on the pool threads");
        }
    }

    /** The ids of the row splitter's pool threads. */
    private static long[] poolThreadIds() {
        return Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.getName().startsWith("panorm-rows-"))
                .mapToLong(Thread::threadId)
                .toArray();
    }

    /** Bytes the threads {@code ids} allocated so far (a thread that ended counts nothing). */
    private static long allocated(ThreadMXBean threads, long[] ids) {
        long sum = 0;
        for (long bytes : threads.getThreadAllocatedBytes(ids)) {
            sum += Math.max(0, bytes);
        }
        return sum;
    }

    /**
     * The fused operations: residual add with and without keeping the sum, int8 output with per-row and
     * static scales, and the residual backward pass with an incoming gradient; {@code dst} doubles as the
     * residual (and, in backward, as the incoming gradient, in place). Also on one long row (see above).
     */
    @ParameterizedTest
    @EnumSource(Backend.class)
    void fusedOperationsAllocateNothing(Backend backend) {
        assertFusedAllocationFree(backend, DataType.F32, DataType.F32);
    }

    /**
     * The same on bf16 and float16 data (with scale, shift and bias of the data's type and float32) in the Java
     * vector kernels.
     */
    @ParameterizedTest
    @CsvSource({"BF16, BF16", "BF16, F32", "F16, F16", "F16, F32"})
    void fusedHalfPrecisionAllocatesNothing(DataType type, DataType parameters) {
        assertFusedAllocationFree(Backend.JAVA, type, parameters);
    }

    private static void assertFusedAllocationFree(Backend backend, DataType type, DataType parameters) {
        for (int c : new int[] {C, 1 << 16}) {
            int rows = c == C ? ROWS : 1;
            int calls = c == C ? CALLS_PER_ROUND : 200;
            assertAllocationFree(
                    backend,
                    "forwardResidual",
                    rows,
                    c,
                    calls,
                    type,
                    type,
                    parameters,
                    (norm, f, dst) -> norm.forwardResidual(f.src(), dst, null, f.dy(), dst, f.gamma(), f.beta()));
            assertAllocationFree(
                    backend,
                    "forwardResidual without sum",
                    rows,
                    c,
                    calls,
                    type,
                    type,
                    parameters,
                    (norm, f, dst) -> norm.forwardResidual(f.src(), dst, f.gamma(), null, dst, f.gamma(), f.beta()));
            assertAllocationFree(
                    backend,
                    "forwardResidualTraining",
                    rows,
                    c,
                    calls,
                    type,
                    type,
                    parameters,
                    (norm, f, dst) -> norm.forwardResidualTraining(
                            f.src(), dst, null, f.dy(), dst, f.gamma(), f.beta(), f.mean(), f.variance()));
            assertAllocationFree(
                    backend,
                    "forwardQuantized",
                    rows,
                    c,
                    calls,
                    type,
                    type,
                    parameters,
                    (norm, f, dst) ->
                            norm.forwardQuantized(f.src(), null, null, null, f.q(), f.gamma(), f.beta(), f.variance()));
            assertAllocationFree(
                    backend,
                    "forwardQuantized with residual and static scale",
                    rows,
                    c,
                    calls,
                    type,
                    type,
                    parameters,
                    (norm, f, dst) ->
                            norm.forwardQuantized(f.src(), dst, null, f.dy(), f.q(), f.gamma(), f.beta(), 0.05f));
            assertAllocationFree(
                    backend,
                    "backwardResidual",
                    rows,
                    c,
                    calls,
                    type,
                    type,
                    parameters,
                    (norm, f, dst) -> norm.backwardResidual(
                            f.dy(), dst, f.src(), f.mean(), f.variance(), f.gamma(), dst, f.dGamma(), f.dBeta()));
            assertAllocationFree( // not in place: oneDNN's norm backward, then its add
                    backend,
                    "backwardResidual into a third tensor",
                    rows,
                    c,
                    calls,
                    type,
                    type,
                    parameters,
                    (norm, f, dst) -> norm.backwardResidual(
                            f.dy(), f.dy(), f.src(), f.mean(), f.variance(), f.gamma(), dst, f.dGamma(), f.dBeta()));
        }
    }

    /**
     * AUTO while a new signature's plan waits for the background builder (held here by a task ahead of it, as a
     * machine busy enough to starve the builder's lowest priority holds it): the calls run in Java meanwhile and
     * allocate nothing. Each made a 64-byte call description before it learnt that a build was under way.
     */
    @Test
    void autoAllocatesNothingWhileAPlanWaitsForTheBuilder() throws InterruptedException {
        int rows = 128;
        int c = 1024; // float32 forward calls of this size go to oneDNN, and its Java kernel runs them meanwhile
        LayerNormConfig config = LayerNormConfig.of(c);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(config, Backend.AUTO)) {
            Tensor all = Tensor.allocate(arena, DataType.F32, 2 * rows, c);
            Tensor gamma = Tensor.allocate(arena, DataType.F32, c);
            Tensor beta = Tensor.allocate(arena, DataType.F32, c);
            assumeTrue(KernelWarmup.await(config, true, all));
            // New signatures, whose plans are built while calls go on: the JIT sees calls take every path.
            for (int more = 1; more <= 100; more++) {
                Tensor x = all.rows(1, 0, rows + more);
                for (int i = 0; i < 100; i++) {
                    norm.forward(x, x, gamma, beta);
                }
                ((AutoKernel) norm.kernel()).awaitPlans();
            }
        }
        Runnable release = PlanCache.holdBuilder();
        try {
            assertAllocationFree(
                    config,
                    Backend.AUTO,
                    "forward while its plan waits",
                    rows,
                    100,
                    DataType.F32,
                    DataType.F32,
                    DataType.F32,
                    (norm, f, dst) -> {
                        norm.forward(f.src(), dst, f.gamma(), f.beta());
                        assertEquals(Backend.JAVA, norm.lastBackend());
                    });
        } finally {
            release.run();
        }
    }

    /**
     * AUTO on every pass of layer, RMS and precise normalization, at a size each kind sends to Java (8 x 64) and
     * one that sends the one-primitive kinds to oneDNN with all threads and the composed ones to Java (128 x 1024);
     * float32 data, and half precision, which has crossovers of its own.
     */
    @ParameterizedTest
    @CsvSource({"layer, F32", "rms, F32", "precise, F32", "layer, BF16", "rms, F16"})
    void autoAllocatesNothingOnAnyPass(String kind, DataType type) {
        for (int[] shape : new int[][] {{ROWS, C}, {128, 1024}}) {
            int rows = shape[0];
            int c = shape[1];
            LayerNormConfig config = switch (kind) {
                case "layer" -> LayerNormConfig.of(c);
                case "rms" -> LayerNormConfig.rms(c);
                default -> LayerNormConfig.of(c).withPreciseStatistics(true);
            };
            int calls = rows * c > 4096 ? 100 : CALLS_PER_ROUND;
            for (Pass pass : Pass.values()) {
                assertAllocationFree(
                        config,
                        Backend.AUTO,
                        kind + " " + pass + " " + rows + "x" + c,
                        rows,
                        calls,
                        type,
                        type,
                        DataType.F32,
                        (norm, f, dst) -> {
                            switch (pass) {
                                case FORWARD_INFERENCE -> norm.forward(f.src(), dst, f.gamma(), f.beta());
                                case FORWARD_TRAINING ->
                                    norm.forwardTraining(f.src(), dst, f.gamma(), f.beta(), f.mean(), f.variance());
                                case FORWARD_GLOBAL ->
                                    norm.forwardWithGlobalStatistics(
                                            f.src(), dst, f.gamma(), f.beta(), f.mean(), f.variance());
                                case BACKWARD ->
                                    norm.backward(
                                            f.dy(),
                                            f.src(),
                                            f.mean(),
                                            f.variance(),
                                            f.gamma(),
                                            dst,
                                            f.dGamma(),
                                            f.dBeta());
                                case BACKWARD_DATA ->
                                    norm.backwardData(f.dy(), f.src(), f.mean(), f.variance(), f.gamma(), dst);
                                case BACKWARD_GLOBAL ->
                                    norm.backwardWithGlobalStatistics(
                                            f.dy(),
                                            f.src(),
                                            f.mean(),
                                            f.variance(),
                                            f.gamma(),
                                            dst,
                                            f.dGamma(),
                                            f.dBeta());
                                case BACKWARD_DATA_GLOBAL ->
                                    norm.backwardDataWithGlobalStatistics(
                                            f.dy(), f.src(), f.mean(), f.variance(), f.gamma(), dst);
                            }
                        });
            }
        }
    }
}
