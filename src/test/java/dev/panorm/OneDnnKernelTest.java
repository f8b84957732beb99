package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

/** The contract, on oneDNN, and its thread count per call. */
class OneDnnKernelTest extends LayerNormContract {
    @Override
    Backend backend() {
        return Backend.ONEDNN;
    }

    /**
     * With automatic threads a forward call gets all threads from its type's threshold on: half precision from
     * fewer elements than float32, since oneDNN's half-precision kernel spends more per element.
     */
    @Test
    void halfPrecisionGetsItsSecondThreadEarlierThanFloat() {
        assumeTrue(OneDnn.isAvailable());
        int cores = OneDnn.maxThreads();
        assumeTrue(cores > 1, "one OpenMP thread in this process");
        long half = OneDnnKernel.singleThreadBelow(Pass.FORWARD_INFERENCE, DataType.BF16);
        assertEquals(half, OneDnnKernel.singleThreadBelow(Pass.FORWARD_TRAINING, DataType.F16));
        assumeTrue(half % 768 == 0 && half < OneDnnKernel.SINGLE_THREAD_BELOW, "the thresholds are " + half);
        int rows = (int) (half / 768);
        assertEquals(1, threadsOn(DataType.BF16, rows - 1));
        assertEquals(cores, threadsOn(DataType.BF16, rows));
        if (!implementationOn(DataType.F16, rows).startsWith("java")) { // AMD Zen 5: no oneDNN code for float16
            assertEquals(cores, threadsOn(DataType.F16, rows));
        }
        assertEquals(1, threadsOn(DataType.F32, rows), "float32 at the same size");
    }

    /** The OpenMP threads ONEDNN reports for a forward call on {@code rows x 768} elements of {@code type}. */
    private static int threadsOn(DataType type, int rows) {
        String implementation = implementationOn(type, rows);
        return implementation.endsWith(" threads")
                ? Integer.parseInt(implementation.replaceFirst(".*, (\\d+) threads$", "$1"))
                : 1;
    }

    /** What ONEDNN says runs a forward call on {@code rows x 768} elements of {@code type}. */
    private static String implementationOn(DataType type, int rows) {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(768), Backend.ONEDNN)) {
            Tensor x = Tensor.allocate(arena, type, rows, 768);
            Tensor gamma = Tensor.allocate(arena, DataType.F32, 768);
            return norm.implementation(x, x, gamma, gamma);
        }
    }
}
