package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.management.ThreadMXBean;
import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

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
            Tensor dBeta) {
        /** The tensors {@code config} takes: no shift and no mean for RMS normalization. */
        static Fixture create(Arena arena, int rows, int c, LayerNormConfig config) {
            return new Fixture(
                    Tensor.ofFloats(arena, TestData.gaussian(rows * c, 0, 1, 1), rows, c),
                    new Tensor[] {
                        Tensor.allocate(arena, DataType.F32, rows, c), Tensor.allocate(arena, DataType.F32, rows, c)
                    },
                    Tensor.ofFloats(arena, TestData.gaussian(c, 1, 1, 2), c),
                    config.shift() ? Tensor.ofFloats(arena, TestData.gaussian(c, 0, 1, 3), c) : null,
                    config.rms() ? null : Tensor.allocate(arena, DataType.F32, rows),
                    Tensor.allocate(arena, DataType.F32, rows),
                    Tensor.ofFloats(arena, TestData.gaussian(rows * c, 0, 1, 4), rows, c),
                    Tensor.allocate(arena, DataType.F32, c),
                    config.shift() ? Tensor.allocate(arena, DataType.F32, c) : null);
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
        assertAllocationFree(LayerNormConfig.of(c), backend, what, rows, callsPerRound, call);
    }

    private static void assertAllocationFree(
            LayerNormConfig config, Backend backend, String what, int rows, int callsPerRound, Call call) {
        int c = (int) config.normalizedSize();
        var threads = (ThreadMXBean) ManagementFactory.getThreadMXBean();
        long thread = Thread.currentThread().threadId();
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(config, backend)) {
            Fixture f = Fixture.create(arena, rows, c, config);
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
            assertTrue(cleanRounds >= 10, backend + " " + what + " still allocates " + perCall + " bytes per call");
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void forwardAllocatesNothing(Backend backend) {
        assertAllocationFree(backend, "forward", (norm, f, dst) -> norm.forward(f.src(), dst, f.gamma(), f.beta()));
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
     * box the vector on every call (VectorKernel.sumLanes).
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
     * AUTO on every pass of layer, RMS and precise normalization, at a size each kind sends to Java (8 x 64) and
     * one that sends the one-primitive kinds to oneDNN with all threads and the composed ones to Java (128 x 1024).
     */
    @ParameterizedTest
    @ValueSource(strings = {"layer", "rms", "precise"})
    void autoAllocatesNothingOnAnyPass(String kind) {
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
                        config, Backend.AUTO, kind + " " + pass + " " + rows + "x" + c, rows, calls, (norm, f, dst) -> {
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
