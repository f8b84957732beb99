package dev.panorm;

import dev.panorm.io.Npy;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Optional;

/**
 * Run in a child JVM by {@link NativeLibraryTest}: loading is once per JVM, so each loading
 * scenario needs a fresh one. Prints {@code key=value} lines.
 */
public final class LoaderProbe {
    private LoaderProbe() {}

    public static void main(String[] args) {
        System.out.println("module=" + LayerNorm.class.getModule().getName());
        System.out.println("java=" + normalizeOnce(Backend.JAVA));
        System.out.println("java again=" + normalizeOnce(Backend.JAVA));
        System.out.println("auto=" + normalizeOnce(Backend.AUTO));
        System.out.println("auto again=" + normalizeOnce(Backend.AUTO));
        System.out.println("java rows=" + normalizeRows(Backend.JAVA));
        System.out.println("auto rows=" + normalizeRows(Backend.AUTO));
        System.out.println("npy=" + writeNpyOnce());
        Optional<NativeLibraryException> failure = OneDnn.loadFailure();
        if (failure.isPresent()) {
            System.out.println("onednn=unavailable");
            System.out.println("message=" + failure.get().getMessage());
        } else {
            System.out.println("onednn=" + OneDnn.version());
            System.out.println("path=" + OneDnn.libraryPath());
            System.out.println("forward=" + normalizeOnce(Backend.ONEDNN));
        }
    }

    /** Writes a .npy file (its disk space reserved through a downcall where native access allows) and reads it. */
    private static String writeNpyOnce() {
        try (Arena arena = Arena.ofConfined()) {
            Path file = Files.createTempFile("panorm-probe", ".npy");
            try {
                Npy.write(file, Tensor.ofFloats(arena, new float[] {1, 2}, 2));
                return Arrays.equals(Npy.mapFloat32(file, arena).toFloatArray(), new float[] {1, 2}) ? "ok" : "wrong";
            } finally {
                Files.delete(file);
            }
        } catch (IOException | RuntimeException | Error e) {
            return e.toString();
        }
    }

    /** Normalizes [-1, 1] and reports whether the result is right. */
    /**
     * Rows the Java vector kernel takes, on a shared arena and with scale and shift absent (both of which it views as
     * its own thread's memory, where it may).
     */
    private static String normalizeRows(Backend backend) {
        int c = 256;
        float[] values = new float[8 * c];
        for (int i = 0; i < values.length; i++) {
            values[i] = i % 2 == 0 ? 1 : -1;
        }
        try (Arena arena = Arena.ofShared();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withoutAffine(), backend)) {
            Tensor data = Tensor.ofFloats(arena, values, 8, c);
            norm.forward(data, data);
            float[] y = data.toFloatArray();
            for (int i = 0; i < y.length; i++) {
                if (Math.abs(y[i] - values[i] * 0.999995f) > 1e-6) {
                    return "wrong at " + i;
                }
            }
            return "ok";
        } catch (RuntimeException e) {
            return e.toString();
        }
    }

    private static String normalizeOnce(Backend backend) {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(2).withoutAffine(), backend)) {
            Tensor data = Tensor.ofFloats(arena, new float[] {-1, 1}, 1, 2);
            norm.forward(data, data);
            float[] y = data.toFloatArray();
            return Math.abs(y[0] + 0.999995f) < 1e-6 && Math.abs(y[1] - 0.999995f) < 1e-6 ? "ok" : "wrong";
        }
    }
}
