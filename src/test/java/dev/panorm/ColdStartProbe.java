package dev.panorm;

import java.lang.foreign.Arena;

/**
 * Run in a fresh JVM by {@link ColdStartTest}: AUTO's first call on a small shape, while the vector
 * kernels are still interpreted, and a call after their warm-up; then how many calls on 1 x 32 start a warm-up.
 * Prints {@code key=value} lines.
 */
public final class ColdStartProbe {
    private ColdStartProbe() {}

    public static void main(String[] args) throws Exception {
        LayerNormConfig config = LayerNormConfig.of(768);
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(config)) {
            Tensor x = Tensor.ofFloats(arena, TestData.gaussian(8 * 768, 0.5, 2, 1), 8, 768);
            Tensor gamma = Tensor.ofFloats(arena, TestData.gaussian(768, 1, 1, 2), 768);
            Tensor beta = Tensor.ofFloats(arena, TestData.gaussian(768, 0, 1, 3), 768);
            norm.forward(x, x, gamma, beta);
            System.out.println("first=" + norm.lastBackend());
            System.out.println("warm=" + KernelWarmup.await(config, true, x));
            norm.forward(x, x, gamma, beta);
            System.out.println("warmed=" + norm.lastBackend());
        }
        // small calls: each counts its 32 elements and KernelWarmup.CALL_ELEMENTS towards the warm-up's start (RMS
        // forward, whose warm-up nothing above started)
        LayerNormConfig small = LayerNormConfig.rms(32).withoutAffine();
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(small)) {
            Tensor x = Tensor.ofFloats(arena, TestData.gaussian(32, 0.5, 2, 4), 1, 32);
            int calls = 0;
            while (!KernelWarmup.started(small, true, DataType.F32) && calls < 200_000) {
                norm.forward(x, x);
                calls++;
            }
            System.out.println("callsBeforeWarmup=" + calls);
        }
    }
}
