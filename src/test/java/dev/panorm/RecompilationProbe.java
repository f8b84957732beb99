package dev.panorm;

import java.lang.foreign.Arena;

/**
 * Run in a fresh JVM by {@link RecompilationTest}: the Java backend's forward, training and backward passes and the fused
 * forward on one type mix after another (all bf16, all float16, bf16 in with float32 out, float32 in with float16 out,
 * all float32), rows of 64 and of 65536, each for a fixed number of calls, on tensors of the arenas the argument names:
 * {@code confined}, {@code shared}, {@code switch} (every mix on a confined arena, then every mix on a shared one, as a
 * program that warms up on one kind and serves on another), {@code mixed} (data confined to the caller, outputs and
 * scale and shift from automatic arenas), or {@code heap} (every mix on a confined arena, then every mix on Java
 * arrays). Calls with a half-precision tensor run the loops on panorm's scratch rows next
 * to the caller's tensors, and so does the fused forward that does not keep the sum (its row buffer).
 */
public final class RecompilationProbe {
    private RecompilationProbe() {}

    public static void main(String[] args) {
        DataType[][] mixes = {
            {DataType.BF16, DataType.BF16, DataType.BF16},
            {DataType.F16, DataType.F16, DataType.F16},
            {DataType.BF16, DataType.F32, DataType.F16},
            {DataType.F32, DataType.F16, DataType.BF16},
            {DataType.F32, DataType.F32, DataType.F32}
        };
        String mode = args[0];
        for (String phase : mode.equals("switch")
                ? new String[] {"confined", "shared"}
                : mode.equals("heap") ? new String[] {"confined", "heap"} : new String[] {mode}) {
            for (DataType[] mix : mixes) {
                for (int c : new int[] {64, 1 << 16}) {
                    run(mix, c, phase);
                }
            }
        }
        System.out.println("done");
    }

    private static void run(DataType[] mix, int c, String phase) {
        int rows = c == 64 ? 8 : 1;
        int calls = c == 64 ? 100_000 : 2_000;
        try (Arena arena = phase.equals("shared") ? Arena.ofShared() : Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), Backend.JAVA)) {
            Arena data = phase.equals("heap") ? null : arena; // null: on the heap
            Arena other = phase.equals("mixed") ? Arena.ofAuto() : data; // outputs, scale and shift
            Tensor x = Tensors.makeOrOnHeap(data, mix[0], TestData.gaussian(rows * c, 0, 1, 1), rows, c);
            Tensor dy = Tensors.makeOrOnHeap(data, mix[0], TestData.gaussian(rows * c, 0, 1, 2), rows, c);
            Tensor y = Tensors.makeOrOnHeap(other, mix[1], new float[rows * c], rows, c);
            Tensor gamma = Tensors.makeOrOnHeap(other, mix[2], TestData.gaussian(c, 1, 1, 3), c);
            Tensor beta = Tensors.makeOrOnHeap(other, mix[2], TestData.gaussian(c, 0, 1, 4), c);
            Tensor dGamma = Tensors.makeOrOnHeap(other, mix[2], new float[c], c);
            Tensor dBeta = Tensors.makeOrOnHeap(other, mix[2], new float[c], c);
            Tensor mean = Tensors.makeOrOnHeap(other, DataType.F32, new float[rows], rows);
            Tensor variance = Tensors.makeOrOnHeap(other, DataType.F32, new float[rows], rows);
            for (int i = 0; i < calls; i++) {
                norm.forward(x, y, gamma, beta);
                norm.forwardTraining(x, y, gamma, beta, mean, variance);
                norm.backward(dy, x, mean, variance, gamma, y, dGamma, dBeta);
                norm.forwardResidual(x, dy, null, null, y, gamma, beta);
            }
        }
    }
}
