package dev.panorm.bench;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * The float32 Java kernels' speed in one process, before and after calls on other data types ran in it: one JVM,
 * one {@code LayerNorm} (Java backend, one thread) on 32 x 768, and for each step of the cycle given (a data type:
 * f32, bf16 or f16; heap: float32 on heap arrays; arenas: float32 with its outputs in an automatic arena and its
 * inputs in a confined one) three seconds of that step's forward, backward, fused residual forward and int8 forward,
 * after which it prints the float32 calls' best time per call over 7 batches, and the step's own. Results are not checked here; {@link
 * LayerNormBenchmark} and {@link FusedBenchmark} check the same calls.
 *
 * <p>Usage: {@code TypeMix STEPS}, e.g. {@code TypeMix f32,bf16,f32,f16,f32,heap,f32} (the command at the end of
 * docs/benchmarks.md, "One process, several data types").
 */
public final class TypeMix {
    private static final int ROWS = 32;
    private static final int C = 768;
    private static final String[] CALLS = {"forward", "backward", "residual", "int8"};

    private TypeMix() {}

    public static void main(String[] args) {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), Backend.JAVA, 1)) {
            Tensor gamma = Tensor.allocate(arena, DataType.F32, C);
            Tensor beta = Tensor.allocate(arena, DataType.F32, C);
            Tensor dGamma = Tensor.allocate(arena, DataType.F32, C);
            Tensor dBeta = Tensor.allocate(arena, DataType.F32, C);
            Tensor mean = Tensor.allocate(arena, DataType.F32, ROWS);
            Tensor variance = Tensor.allocate(arena, DataType.F32, ROWS);
            Tensor scales = Tensor.allocate(arena, DataType.F32, ROWS);
            float[] values = new float[ROWS * C];
            for (int i = 0; i < values.length; i++) {
                values[i] = (float) Math.sin(i);
            }
            Map<String, Runnable[]> calls = new LinkedHashMap<>();
            for (DataType type : new DataType[] {DataType.F32, DataType.BF16, DataType.F16}) {
                Tensor x = Tensor.ofFloats(arena, type, values, ROWS, C);
                Tensor r = Tensor.ofFloats(arena, type, values, ROWS, C);
                Tensor y = Tensor.allocate(arena, type, ROWS, C);
                Tensor s = Tensor.allocate(arena, type, ROWS, C);
                Tensor dx = Tensor.allocate(arena, type, ROWS, C);
                Tensor q = Tensor.allocate(arena, DataType.S8, ROWS, C);
                norm.forwardTraining(x, y, gamma, beta, mean, variance);
                calls.put(type.name().toLowerCase(Locale.ROOT), new Runnable[] {
                    () -> norm.forward(x, y, gamma, beta),
                    () -> norm.backward(x, x, mean, variance, gamma, dx, dGamma, dBeta),
                    () -> norm.forwardResidual(x, r, null, s, y, gamma, beta),
                    () -> norm.forwardQuantized(x, null, null, null, q, gamma, beta, scales)
                });
            }
            // The float32 calls on heap arrays, as Backend.JAVA takes them.
            Tensor hx = Tensor.of(MemorySegment.ofArray(values.clone()), DataType.F32, ROWS, C);
            Tensor hr = Tensor.of(MemorySegment.ofArray(values.clone()), DataType.F32, ROWS, C);
            Tensor hy = Tensor.of(MemorySegment.ofArray(new float[ROWS * C]), DataType.F32, ROWS, C);
            Tensor hs = Tensor.of(MemorySegment.ofArray(new float[ROWS * C]), DataType.F32, ROWS, C);
            Tensor hdx = Tensor.of(MemorySegment.ofArray(new float[ROWS * C]), DataType.F32, ROWS, C);
            Tensor hq = Tensor.of(MemorySegment.ofArray(new byte[ROWS * C]), DataType.S8, ROWS, C);
            calls.put("heap", new Runnable[] {
                () -> norm.forward(hx, hy, gamma, beta),
                () -> norm.backward(hx, hx, mean, variance, gamma, hdx, dGamma, dBeta),
                () -> norm.forwardResidual(hx, hr, null, hs, hy, gamma, beta),
                () -> norm.forwardQuantized(hx, null, null, null, hq, gamma, beta, scales)
            });
            // float32 with its outputs in an automatic arena and its inputs in the confined one
            Arena auto = Arena.ofAuto();
            Tensor mx = Tensor.ofFloats(arena, DataType.F32, values, ROWS, C);
            Tensor my = Tensor.allocate(auto, DataType.F32, ROWS, C);
            Tensor ms = Tensor.allocate(auto, DataType.F32, ROWS, C);
            Tensor mdx = Tensor.allocate(auto, DataType.F32, ROWS, C);
            Tensor mq = Tensor.allocate(auto, DataType.S8, ROWS, C);
            Tensor mScales = Tensor.allocate(auto, DataType.F32, ROWS);
            calls.put("arenas", new Runnable[] {
                () -> norm.forward(mx, my, gamma, beta),
                () -> norm.backward(mx, mx, mean, variance, gamma, mdx, dGamma, dBeta),
                () -> norm.forwardResidual(mx, mx, null, ms, my, gamma, beta),
                () -> norm.forwardQuantized(mx, null, null, null, mq, gamma, beta, mScales)
            });
            for (String step : args[0].split(",")) {
                Runnable[] run = calls.get(step);
                if (run == null) {
                    throw new IllegalArgumentException("steps are f32, bf16, f16, heap or arenas, got " + step);
                }
                long end = System.nanoTime() + 3_000_000_000L;
                while (System.nanoTime() < end) {
                    for (Runnable call : run) {
                        bestMicros(call, 200);
                    }
                }
                StringBuilder line = new StringBuilder("after " + step + ", float32 us per call:");
                for (int k = 0; k < CALLS.length; k++) {
                    line.append(
                            String.format(Locale.ROOT, " %s %.2f", CALLS[k], bestMicros(calls.get("f32")[k], 1000)));
                }
                if (!step.equals("f32")) {
                    line.append("; " + step + " itself:");
                    for (int k = 0; k < CALLS.length; k++) {
                        line.append(String.format(Locale.ROOT, " %s %.2f", CALLS[k], bestMicros(run[k], 1000)));
                    }
                }
                System.out.println(line);
            }
        }
    }

    /** The best of 7 batches of {@code calls} calls, in microseconds per call. */
    private static double bestMicros(Runnable call, int calls) {
        double best = Double.MAX_VALUE;
        for (int batch = 0; batch < 7; batch++) {
            long start = System.nanoTime();
            for (int i = 0; i < calls; i++) {
                call.run();
            }
            best = Math.min(best, (System.nanoTime() - start) / 1e3 / calls);
        }
        return best;
    }
}
