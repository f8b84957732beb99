package dev.panorm;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A steady-state forward call allocates nothing on the Java heap: counted with the JVM's per-thread
 * allocation counter (not timed), after the JIT has compiled the path. Calls alternate between two
 * destinations so that both the unchanged and the re-bound oneDNN memory paths are covered.
 */
class AllocationTest {
    private static final int CALLS_PER_ROUND = 10_000;

    @ParameterizedTest
    @EnumSource(Backend.class)
    void steadyStateForwardAllocatesNothing(Backend backend) {
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long thread = Thread.currentThread().threadId();
        try (Arena arena = Arena.ofConfined(); LayerNorm norm = LayerNorm.create(LayerNormConfig.of(64), backend)) {
            Tensor src = Tensor.ofFloats(arena, TestData.gaussian(8 * 64, 0, 1, 1), 8, 64);
            Tensor[] dst = {Tensor.allocate(arena, DataType.F32, 8, 64), Tensor.allocate(arena, DataType.F32, 8, 64)};
            Tensor gamma = Tensor.ofFloats(arena, TestData.gaussian(64, 1, 1, 2), 64);
            Tensor beta = Tensor.ofFloats(arena, TestData.gaussian(64, 0, 1, 3), 64);
            long measured = 0;
            for (int round = 0; round < 20; round++) {
                long before = threads.getThreadAllocatedBytes(thread);
                for (int i = 0; i < CALLS_PER_ROUND; i++) {
                    norm.forward(src, dst[(i >> 4) & 1], gamma, beta);
                }
                if (round >= 10) { // the first rounds warm up the JIT
                    measured += threads.getThreadAllocatedBytes(thread) - before;
                }
            }
            double perCall = measured / (10.0 * CALLS_PER_ROUND);
            assertTrue(perCall < 1, backend + " allocates " + perCall + " bytes per call");
        }
    }
}
