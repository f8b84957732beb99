package dev.panorm;

import org.junit.jupiter.api.Test;
import java.lang.foreign.Arena;
import java.util.Random;

class SmokeTest {
    @Test
    void smoke() {
        System.out.println(OneDnn.version() + " " + OneDnn.cpuIsa() + " " + OneDnn.libraryPath() + " threads " + OneDnn.maxThreads());
        int rows = 32, c = 768;
        Random rnd = new Random(1);
        float[] x = new float[rows * c];
        for (int i = 0; i < x.length; i++) x[i] = (float) (rnd.nextGaussian() * 3 + 1e4);
        float[] g = new float[c], b = new float[c];
        for (int i = 0; i < c; i++) { g[i] = (float) rnd.nextGaussian(); b[i] = (float) rnd.nextGaussian(); }
        double[] ref = Reference.forward(x, rows, c, g, b, 1e-5);
        for (Backend backend : Backend.values()) {
            try (Arena arena = Arena.ofConfined(); LayerNorm ln = LayerNorm.create(LayerNormConfig.of(c), backend)) {
                Tensor src = Tensor.ofFloats(arena, x, rows, c);
                Tensor dst = Tensor.allocate(arena, DataType.F32, rows, c);
                ln.forward(src, dst, Tensor.ofFloats(arena, g, c), Tensor.ofFloats(arena, b, c));
                float[] y = dst.toFloatArray();
                double max = 0;
                for (int i = 0; i < y.length; i++) max = Math.max(max, Math.abs(y[i] - ref[i]));
                System.out.println(backend + " " + ln.implementation(rows) + " maxerr " + max);
            }
        }
    }
}
