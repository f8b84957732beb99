package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

/** The contract, on AUTO, and the cost model's choices. */
class AutoKernelTest extends LayerNormContract {
    private static final long FORWARD_UP_TO = AutoModel.current().javaUpTo(AutoModel.Kind.FORWARD, DataType.F32);

    @Override
    Backend backend() {
        return Backend.AUTO;
    }

    /** Runs one forward call on {@code rows x c} float32 (or bf16) data and returns the backend that ran it. */
    private static Backend ranOn(long rows, int c, DataType type) {
        return ranOn(LayerNormConfig.of(c), Pass.FORWARD_INFERENCE, rows, type);
    }

    /** Waits for the kernels' warm-up and {@code norm}'s background plans: AUTO's steady state. */
    private static void settle(LayerNorm norm, Pass pass, Tensor like) {
        try {
            assertTrue(KernelWarmup.await(norm.config(), pass.forward, like), "the kernels did not warm up");
            if (norm.kernel() instanceof AutoKernel auto) {
                auto.awaitPlans();
            }
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void smallFloatCallsRunInTheVectorKernel() {
        assumeTrue(JavaKernels.vectorized() && OneDnn.isAvailable());
        assertEquals(Backend.JAVA, ranOn(1, 768, DataType.F32));
        assertEquals(Backend.JAVA, ranOn(FORWARD_UP_TO / 768, 768, DataType.F32));
    }

    /**
     * Calls on tensors of several arenas go where the model sends them, here Java, with the reference result: the
     * kernels see every tensor through memory the calling thread owns ({@link OwnedMemory}). Before, a call storing
     * into shared memory while reading confined memory went to oneDNN, since C2 recompiled such Java loops for seconds.
     */
    @Test
    void callsOnTensorsOfSeveralArenasRunWhereTheModelSendsThem() {
        assumeTrue(JavaKernels.vectorized() && OneDnn.isAvailable());
        int rows = 8;
        int c = 768;
        float[] values = TestData.gaussian(rows * c, 0.5, 2, 7);
        float[] weights = TestData.gaussian(c, 1, 0.5, 8);
        try (Arena confined = Arena.ofConfined();
                Arena shared = Arena.ofShared();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), Backend.AUTO)) {
            Tensor x = Tensor.ofFloats(confined, DataType.F32, values, rows, c);
            Tensor gamma = Tensor.ofFloats(confined, DataType.F32, weights, c);
            Tensor sharedGamma = Tensor.ofFloats(shared, DataType.F32, weights, c);
            Tensor autoGamma = Tensor.ofFloats(Arena.ofAuto(), DataType.F32, weights, c);
            Tensor y = Tensor.allocate(confined, DataType.F32, rows, c);
            Tensor sharedY = Tensor.allocate(shared, DataType.F32, rows, c);
            norm.forward(x, y, gamma, gamma);
            settle(norm, Pass.FORWARD_INFERENCE, x);
            norm.forward(x, y, gamma, gamma);
            assertEquals(Backend.JAVA, norm.lastBackend(), "all confined");
            norm.forward(x, y, sharedGamma, autoGamma);
            assertEquals(Backend.JAVA, norm.lastBackend(), "confined output, shared and automatic weights");
            TestAccess.assertForward(Backend.JAVA, values, rows, c, weights, weights, 1e-5, y.toFloatArray());
            norm.forward(x, sharedY, gamma, gamma);
            assertEquals(Backend.JAVA, norm.lastBackend(), "shared output, confined input");
            assertTrue(norm.implementation(x, sharedY, gamma, gamma).startsWith("auto: java"));
            TestAccess.assertForward(Backend.JAVA, values, rows, c, weights, weights, 1e-5, sharedY.toFloatArray());
            Tensor zeros = Tensor.allocate(confined, DataType.F32, rows, c); // x + 0: the same norm, fused
            sharedY.segment().fill((byte) 0);
            norm.forwardResidual(x, zeros, null, null, sharedY, gamma, gamma);
            assertEquals(Backend.JAVA, norm.lastBackend(), "fused, shared output, confined input");
            TestAccess.assertForward(Backend.JAVA, values, rows, c, weights, weights, 1e-5, sharedY.toFloatArray());
        }
    }

    @Test
    void largerCallsAndOtherTypesRunOnOneDnn() {
        assumeTrue(OneDnn.isAvailable());
        assertEquals(Backend.ONEDNN, ranOn(FORWARD_UP_TO / 768 + 1, 768, DataType.F32));
    }

    /**
     * Rows of more than 2^19 elements get their statistics from Java on oneDNN (its float32 sums leave the accuracy
     * bound there), which never beats the Java kernel: AUTO runs the passes that compute statistics in Java, and a pass
     * with given statistics where the model sends it.
     */
    @Test
    void forwardPassesOnLongRowsThatComputeStatisticsRunInJava() {
        assumeTrue(JavaKernels.vectorized() && OneDnn.isAvailable());
        LayerNormConfig config = LayerNormConfig.of(1 << 20);
        assertEquals(Backend.JAVA, ranOn(config, Pass.FORWARD_INFERENCE, 4, DataType.F32));
        assertEquals(Backend.JAVA, ranOn(config, Pass.FORWARD_TRAINING, 4, DataType.F32));
        assertEquals(Backend.ONEDNN, ranOn(config, Pass.FORWARD_GLOBAL, 4, DataType.F32));
    }

    /** Runs one call of {@code pass} on {@code rows x c} data of {@code type} and returns the backend that ran it. */
    private static Backend ranOn(LayerNormConfig config, Pass pass, long rows, DataType type) {
        return ranOn(config, Backend.AUTO, pass, rows, type);
    }

    private static Backend ranOn(LayerNormConfig config, Backend backend, Pass pass, long rows, DataType type) {
        long c = config.normalizedSize();
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(config, backend)) {
            Tensor x = Tensor.ofFloats(arena, type, TestData.gaussian((int) (rows * c), 0.5, 2, 5), rows, c);
            Tensor y = Tensor.allocate(arena, type, rows, c);
            Tensor gamma = Tensor.ofFloats(arena, TestData.gaussian((int) c, 1, 1, 6), c);
            Tensor beta = config.shift() ? Tensor.allocate(arena, DataType.F32, c) : null;
            Tensor mean = config.rms() ? null : Tensor.allocate(arena, DataType.F32, rows);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
            Tensor dGamma = Tensor.allocate(arena, DataType.F32, c);
            Tensor dBeta = config.shift() ? Tensor.allocate(arena, DataType.F32, c) : null;
            norm.forwardTraining(x, y, gamma, beta, mean, variance);
            settle(norm, Pass.FORWARD_TRAINING, x);
            call(norm, pass, x, y, gamma, beta, mean, variance, dGamma, dBeta); // may start a plan's build
            settle(norm, pass, x);
            call(norm, pass, x, y, gamma, beta, mean, variance, dGamma, dBeta);
            return norm.lastBackend();
        }
    }

    private static void call(
            LayerNorm norm,
            Pass pass,
            Tensor x,
            Tensor y,
            Tensor gamma,
            Tensor beta,
            Tensor mean,
            Tensor variance,
            Tensor dGamma,
            Tensor dBeta) {
        switch (pass) {
            case FORWARD_INFERENCE -> norm.forward(x, y, gamma, beta);
            case FORWARD_TRAINING -> norm.forwardTraining(x, y, gamma, beta, mean, variance);
            case FORWARD_GLOBAL -> norm.forwardWithGlobalStatistics(x, y, gamma, beta, mean, variance);
            case BACKWARD -> norm.backward(x, x, mean, variance, gamma, y, dGamma, dBeta);
            case BACKWARD_DATA -> norm.backwardData(x, x, mean, variance, gamma, y);
            case BACKWARD_GLOBAL -> norm.backwardWithGlobalStatistics(x, x, mean, variance, gamma, y, dGamma, dBeta);
            case BACKWARD_DATA_GLOBAL -> norm.backwardDataWithGlobalStatistics(x, x, mean, variance, gamma, y);
        }
    }

    /** RMS and precise statistics never run oneDNN's compositions with AUTO: Java is faster at every size. */
    @Test
    void composedPassesRunInJavaAtEverySize() {
        assumeTrue(JavaKernels.vectorized() && OneDnn.isAvailable());
        LayerNormConfig rms = LayerNormConfig.rms(1024);
        LayerNormConfig precise = LayerNormConfig.of(1024).withPreciseStatistics(true);
        for (Pass pass : new Pass[] {Pass.FORWARD_INFERENCE, Pass.FORWARD_TRAINING}) {
            assertEquals(Backend.JAVA, ranOn(rms, pass, 256, DataType.F32), "RMS " + pass);
            assertEquals(Backend.JAVA, ranOn(precise, pass, 256, DataType.F32), "precise " + pass);
        }
        assertEquals(Backend.JAVA, ranOn(rms, Pass.BACKWARD, 256, DataType.F32));
        assertEquals(Backend.JAVA, ranOn(rms, Pass.BACKWARD_DATA, 256, DataType.F32));
        // One oneDNN primitive each: Java up to the crossover, oneDNN above (where there is one: on AMD CPUs without
        // AVX-512 the built-in model runs the full backward in Java at every size).
        Backend large = AutoModel.current().javaUpTo(AutoModel.Kind.BACKWARD, DataType.F32) < 256 * 1024
                ? Backend.ONEDNN
                : Backend.JAVA;
        assertEquals(large, ranOn(rms, Pass.BACKWARD_GLOBAL, 256, DataType.F32));
        assertEquals(Backend.JAVA, ranOn(rms, Pass.BACKWARD_GLOBAL, 8, DataType.F32));
        assertEquals(large, ranOn(precise, Pass.BACKWARD, 256, DataType.F32));
        assertEquals(Backend.ONEDNN, ranOn(rms, Pass.FORWARD_GLOBAL, 256, DataType.F32));
    }

    /**
     * float32 backward for the input only goes to Java again from the model's second crossover, where its split beats
     * oneDNN; the full backward and the forward pass of the same size stay on oneDNN. On AMD CPUs the built-in model
     * sends backward for the input only to Java at every size, and the full backward up to its crossover (without
     * AVX-512, at every size too).
     */
    @Test
    void largeFloatBackwardForTheInputRunsInJavaAgain() {
        assumeTrue(JavaKernels.vectorized() && OneDnn.isAvailable());
        LayerNormConfig config = LayerNormConfig.of(1024);
        long from = AutoModel.current().javaFrom(AutoModel.Kind.BACKWARD_DATA, DataType.F32);
        long upTo = AutoModel.current().javaUpTo(AutoModel.Kind.BACKWARD_DATA, DataType.F32);
        if (upTo == AutoModel.ALWAYS_JAVA) { // the built-in model on AMD CPUs: Java at every size
            long fullUpTo = AutoModel.current().javaUpTo(AutoModel.Kind.BACKWARD, DataType.F32);
            if (fullUpTo == AutoModel.ALWAYS_JAVA) { // without AVX-512, the full backward as well
                for (long rows : new long[] {1, 128, 1024}) {
                    assertEquals(Backend.JAVA, ranOn(config, Pass.BACKWARD_DATA, rows, DataType.F32), rows + " rows");
                    assertEquals(Backend.JAVA, ranOn(config, Pass.BACKWARD, rows, DataType.F32), rows + " rows");
                }
                return;
            }
            // rows of 1024: the last count within the crossover in Java, the next on oneDNN (Zen 4's is 2^16 - 1)
            for (long rows : new long[] {fullUpTo / 1024, fullUpTo / 1024 + 1, 1024}) {
                assertEquals(Backend.JAVA, ranOn(config, Pass.BACKWARD_DATA, rows, DataType.F32), rows + " rows");
            }
            assertEquals(Backend.JAVA, ranOn(config, Pass.BACKWARD, fullUpTo / 1024, DataType.F32));
            assertEquals(Backend.ONEDNN, ranOn(config, Pass.BACKWARD, fullUpTo / 1024 + 1, DataType.F32));
            return;
        }
        assumeTrue(from != AutoModel.NEVER && from % 1024 == 0 && from - 1024 > upTo, "the model has " + from);
        assumeTrue(AutoModel.current().javaFrom(AutoModel.Kind.BACKWARD, DataType.F32) > from, "full backward too");
        assertEquals(Backend.ONEDNN, ranOn(config, Pass.BACKWARD_DATA, from / 1024 - 1, DataType.F32));
        assertEquals(Backend.JAVA, ranOn(config, Pass.BACKWARD_DATA, from / 1024, DataType.F32));
        assertEquals(Backend.ONEDNN, ranOn(config, Pass.BACKWARD, from / 1024, DataType.F32));
        assertEquals(Backend.ONEDNN, ranOn(config, Pass.FORWARD_INFERENCE, from / 1024, DataType.F32));
    }

    /**
     * bfloat16 and float16 follow entries of their own: Java for small calls and the composed kinds, single
     * rows of any length backward but not forward, and above the crossovers wherever the ONEDNN backend runs
     * the call (oneDNN has no float16 code on CPUs without native float16, such as AMD's Zen 5: Java then).
     */
    @Test
    void halfPrecisionFollowsItsOwnCrossovers() {
        assumeTrue(JavaKernels.vectorized() && OneDnn.isAvailable());
        LayerNormConfig layer = LayerNormConfig.of(768);
        LayerNormConfig rms = LayerNormConfig.rms(768);
        for (DataType type : new DataType[] {DataType.BF16, DataType.F16}) {
            long forwardRows = AutoModel.BUILT_IN.javaUpTo(AutoModel.Kind.FORWARD, type) / 768;
            long backwardRows = AutoModel.BUILT_IN.javaUpTo(AutoModel.Kind.BACKWARD, type) / 768;
            assertTrue(forwardRows > 0 && backwardRows > 0, type + " sends some layer-norm calls to Java");
            assertEquals(Backend.JAVA, ranOn(layer, Pass.FORWARD_INFERENCE, forwardRows, type), type + " forward");
            assertEquals(
                    ranOn(layer, Backend.ONEDNN, Pass.FORWARD_INFERENCE, forwardRows + 1, type),
                    ranOn(layer, Pass.FORWARD_INFERENCE, forwardRows + 1, type),
                    type + " forward");
            int longRow = (int) (2 * forwardRows * 768); // beyond the crossover: single rows get no exception forward
            LayerNormConfig wide = LayerNormConfig.of(longRow);
            assertEquals(
                    ranOn(wide, Backend.ONEDNN, Pass.FORWARD_INFERENCE, 1, type),
                    ranOn(wide, Pass.FORWARD_INFERENCE, 1, type),
                    type + " forward, one long row");
            assertEquals(Backend.JAVA, ranOn(layer, Pass.BACKWARD, backwardRows, type), type + " backward");
            assertEquals(
                    ranOn(layer, Backend.ONEDNN, Pass.BACKWARD, backwardRows + 1, type),
                    ranOn(layer, Pass.BACKWARD, backwardRows + 1, type),
                    type + " backward");
            assertEquals(
                    Backend.JAVA,
                    ranOn(LayerNormConfig.of(16384), Pass.BACKWARD, 1, type),
                    type + " backward, one row");
            assertEquals(Backend.JAVA, ranOn(rms, Pass.FORWARD_INFERENCE, 64, type), type + " RMS forward");
            assertEquals(Backend.JAVA, ranOn(rms, Pass.BACKWARD, 64, type), type + " RMS backward");
            long globalRows = AutoModel.BUILT_IN.javaUpTo(AutoModel.Kind.FORWARD_GLOBAL, type) / 768;
            assertEquals(Backend.JAVA, ranOn(layer, Pass.FORWARD_GLOBAL, globalRows, type), type + " given statistics");
            assertEquals(
                    ranOn(layer, Backend.ONEDNN, Pass.FORWARD_GLOBAL, globalRows + 1, type),
                    ranOn(layer, Pass.FORWARD_GLOBAL, globalRows + 1, type),
                    type + " given statistics");
        }
    }

    @Test
    void everyKindHasAModelEntryForEveryType() {
        for (LayerNormConfig config : new LayerNormConfig[] {
            LayerNormConfig.of(8), LayerNormConfig.rms(8), LayerNormConfig.of(8).withPreciseStatistics(true)
        }) {
            long[][] table = AutoModel.BUILT_IN.byPass(config);
            assertEquals(DataType.values().length, table.length);
            for (long[] row : table) {
                assertEquals(Pass.values().length, row.length);
            }
        }
        assertEquals(AutoModel.Kind.FORWARD_COMPOSED, AutoModel.Kind.of(LayerNormConfig.rms(8), Pass.FORWARD_TRAINING));
        assertEquals(AutoModel.Kind.FORWARD_GLOBAL, AutoModel.Kind.of(LayerNormConfig.rms(8), Pass.FORWARD_GLOBAL));
        assertEquals(
                AutoModel.Kind.BACKWARD,
                AutoModel.Kind.of(LayerNormConfig.of(8).withPreciseStatistics(true), Pass.BACKWARD));
        assertEquals(AutoModel.Kind.BACKWARD_COMPOSED, AutoModel.Kind.of(LayerNormConfig.rms(8), Pass.BACKWARD_DATA));
        assertEquals(AutoModel.Kind.BACKWARD_DATA, AutoModel.Kind.of(LayerNormConfig.of(8), Pass.BACKWARD_DATA));
        assertEquals(
                AutoModel.Kind.BACKWARD_DATA, AutoModel.Kind.of(LayerNormConfig.rms(8), Pass.BACKWARD_DATA_GLOBAL));
        assertEquals(AutoModel.Kind.BACKWARD, AutoModel.Kind.of(LayerNormConfig.rms(8), Pass.BACKWARD_GLOBAL));
    }

    /**
     * A call the model sends to oneDNN, on a shape whose plan is not built yet, runs in the warm Java kernel
     * while the plan is built off the calling thread, and on oneDNN after; both results are right.
     */
    @Test
    void aNewShapeRunsInJavaWhileItsPlanIsBuilt() throws Exception {
        assumeTrue(JavaKernels.vectorized() && OneDnn.isAvailable() && KernelWarmup.ENABLED);
        LayerNormConfig config = LayerNormConfig.of(768);
        long rows = 2 * FORWARD_UP_TO / 768 + 1;
        float[] xs = TestData.gaussian((int) rows * 768, 0.5, 2, 21);
        float[] gammas = TestData.gaussian(768, 1, 1, 22);
        float[] betas = TestData.gaussian(768, 0, 1, 23);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(config)) {
            Tensor x = Tensor.ofFloats(arena, xs, rows, 768);
            Tensor y = Tensor.allocate(arena, DataType.F32, rows, 768);
            Tensor gamma = Tensor.ofFloats(arena, gammas, 768);
            Tensor beta = Tensor.ofFloats(arena, betas, 768);
            assertTrue(KernelWarmup.await(config, true, x));
            norm.forward(x, y, gamma, beta);
            assertEquals(Backend.JAVA, norm.lastBackend());
            Accuracy.assertForward(Backend.JAVA, xs, (int) rows, 768, gammas, betas, config.eps(), y.toFloatArray());
            ((AutoKernel) norm.kernel()).awaitPlans();
            norm.forward(x, y, gamma, beta);
            assertEquals(Backend.ONEDNN, norm.lastBackend());
            Accuracy.assertForward(Backend.ONEDNN, xs, (int) rows, 768, gammas, betas, config.eps(), y.toFloatArray());
        }
    }

    @Test
    void theChoiceIsDeterministicSoResultsAreReproducible() {
        float[] x = TestData.gaussian(8 * 768, 0.5, 2, 11);
        float[] first = null;
        for (int run = 0; run < 3; run++) {
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(LayerNormConfig.of(768))) {
                Tensor src = Tensor.ofFloats(arena, x, 8, 768);
                Tensor dst = Tensor.allocate(arena, DataType.F32, 8, 768);
                Tensor gamma = Tensor.ofFloats(arena, TestData.gaussian(768, 1, 1, 12), 768);
                Tensor beta = Tensor.ofFloats(arena, TestData.gaussian(768, 0, 1, 13), 768);
                settle(norm, Pass.FORWARD_INFERENCE, src);
                norm.forward(src, dst, gamma, beta);
                float[] y = dst.toFloatArray();
                if (first == null) {
                    first = y;
                } else {
                    assertArrayEquals(first, y, "run " + run);
                }
            }
        }
    }
}
