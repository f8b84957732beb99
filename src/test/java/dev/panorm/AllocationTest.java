package dev.panorm;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Steady-state calls allocate nothing on the Java heap: counted with the JVM's per-thread
 * allocation counter (not timed), after the JIT has compiled the path. Calls alternate between two
 * destinations so that both the unchanged and the re-bound oneDNN memory paths are covered.
 */
class AllocationTest {
    private static final int C = 64;
    private static final int ROWS = 8;
    private static final int CALLS_PER_ROUND = 5_000;

    private record Fixture(Tensor src, Tensor[] dst, Tensor gamma, Tensor beta, Tensor mean, Tensor variance, Tensor dy,
                           Tensor dGamma, Tensor dBeta) {
        static Fixture create(Arena arena) {
            return new Fixture(Tensor.ofFloats(arena, TestData.gaussian(ROWS * C, 0, 1, 1), ROWS, C),
                    new Tensor[] {Tensor.allocate(arena, DataType.F32, ROWS, C), Tensor.allocate(arena, DataType.F32, ROWS, C)},
                    Tensor.ofFloats(arena, TestData.gaussian(C, 1, 1, 2), C), Tensor.ofFloats(arena, TestData.gaussian(C, 0, 1, 3), C),
                    Tensor.allocate(arena, DataType.F32, ROWS), Tensor.allocate(arena, DataType.F32, ROWS),
                    Tensor.ofFloats(arena, TestData.gaussian(ROWS * C, 0, 1, 4), ROWS, C),
                    Tensor.allocate(arena, DataType.F32, C), Tensor.allocate(arena, DataType.F32, C));
        }
    }

    private interface Call {
        void run(LayerNorm norm, Fixture f, Tensor dst);
    }

    private static void assertAllocationFree(Backend backend, String what, Call call) {
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long thread = Thread.currentThread().threadId();
        try (Arena arena = Arena.ofConfined(); LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), backend)) {
            Fixture f = Fixture.create(arena);
            norm.forwardTraining(f.src(), f.dst()[0], f.gamma(), f.beta(), f.mean(), f.variance());
            // Steady state: the JIT needs a varying number of rounds (it compiles in the background, on a
            // busy machine), so warm up until 10 rounds in a row allocate nothing, within 300 rounds.
            int cleanRounds = 0;
            double perCall = Double.NaN;
            for (int round = 0; round < 300 && cleanRounds < 10; round++) {
                long before = threads.getThreadAllocatedBytes(thread);
                for (int i = 0; i < CALLS_PER_ROUND; i++) {
                    call.run(norm, f, f.dst()[(i >> 4) & 1]);
                }
                perCall = (threads.getThreadAllocatedBytes(thread) - before) / (double) CALLS_PER_ROUND;
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
        assertAllocationFree(backend, "forwardTraining",
                (norm, f, dst) -> norm.forwardTraining(f.src(), dst, f.gamma(), f.beta(), f.mean(), f.variance()));
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void backwardAllocatesNothing(Backend backend) {
        assertAllocationFree(backend, "backward", (norm, f, dst) ->
                norm.backward(f.dy(), f.src(), f.mean(), f.variance(), f.gamma(), dst, f.dGamma(), f.dBeta()));
    }
}
