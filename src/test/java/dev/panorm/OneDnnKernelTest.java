package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
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
     * With automatic threads a forward call gets all threads from its type's threshold on, one thread below it. The
     * thresholds depend on the CPU (on AMD's other than Zen 4, oneDNN's second thread costs more); on others half precision gets its
     * second thread from fewer elements than float32, since oneDNN's half-precision kernel spends more per element.
     */
    @Test
    void automaticThreadsSwitchAtEachTypesThreshold() {
        assumeTrue(OneDnn.isAvailable());
        int cores = OneDnn.maxThreads();
        assumeTrue(cores > 1, "one OpenMP thread in this process");
        long half = OneDnnKernel.singleThreadBelow(Pass.FORWARD_INFERENCE, DataType.BF16);
        long single = OneDnnKernel.singleThreadBelow(Pass.FORWARD_INFERENCE, DataType.F32);
        assertEquals(half, OneDnnKernel.singleThreadBelow(Pass.FORWARD_TRAINING, DataType.F16));
        assertEquals(single, OneDnnKernel.singleThreadBelow(Pass.FORWARD_TRAINING, DataType.F32));
        if (!OneDnnKernel.COSTLY_SECOND_THREAD) {
            assertTrue(half < single, half + " against " + single);
        }
        for (DataType type : new DataType[] {DataType.F32, DataType.BF16, DataType.F16}) {
            long below = type == DataType.F32 ? single : half;
            assertEquals(0, below % C, "the threshold of " + type + " is " + below);
            int rows = (int) (below / C);
            if (implementationOn(type, rows).startsWith("java")) { // AMD Zen 5: no oneDNN code for float16
                continue;
            }
            assertEquals(1, threadsOn(type, rows - 1), type.toString());
            assertEquals(cores, threadsOn(type, rows), type.toString());
        }
    }

    /** Row length of the calls above: every threshold is a multiple of it. */
    private static final int C = 1024;

    /** The OpenMP threads ONEDNN reports for a forward call on {@code rows x C} elements of {@code type}. */
    private static int threadsOn(DataType type, int rows) {
        String implementation = implementationOn(type, rows);
        return implementation.endsWith(" threads")
                ? Integer.parseInt(implementation.replaceFirst(".*, (\\d+) threads$", "$1"))
                : 1;
    }

    /** What ONEDNN says runs a forward call on {@code rows x C} elements of {@code type}. */
    private static String implementationOn(DataType type, int rows) {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), Backend.ONEDNN)) {
            Tensor x = Tensor.allocate(arena, type, rows, C);
            Tensor gamma = Tensor.allocate(arena, DataType.F32, C);
            return norm.implementation(x, x, gamma, gamma);
        }
    }
}
