package example;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panorm.Backend;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.OneDnn;
import dev.panorm.Tensor;
import java.io.File;
import java.lang.foreign.Arena;
import java.lang.module.ModuleDescriptor;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** panorm used from a module: Surefire runs these tests on the module path, patched into example.consumer. */
class ModulePathTest {
    /** [1, 2, 3, 4]: mean 2.5, variance 1.25, so y = (x - 2.5) / sqrt(1.25 + 1e-5). */
    private static final float[] EXPECTED = {-1.3416355f, -0.4472118f, 0.4472118f, 1.3416355f};

    @Test
    void panormIsTheModuleDevPanormAndExportsItsApiOnly() {
        assertEquals("example.consumer", getClass().getModule().getName(), "the tests did not run on the module path");
        Module panorm = LayerNorm.class.getModule();
        assertEquals("dev.panorm", panorm.getName());
        assertEquals(
                Set.of("dev.panorm", "dev.panorm.io", "dev.panorm.pipeline", "dev.panorm.arrow"),
                panorm.getDescriptor().exports().stream()
                        .map(ModuleDescriptor.Exports::source)
                        .collect(Collectors.toSet()));
        assertTrue(panorm.getPackages().containsAll(Set.of("dev.panorm.internal.dnnl", "dev.panorm.cli")));
    }

    @Test
    void oneDnnComesWithTheDependencyAndRuns() {
        assertTrue(
                OneDnn.isAvailable(),
                () -> "oneDNN did not load: "
                        + OneDnn.loadFailure().orElseThrow().getMessage());
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(4).withoutAffine(), Backend.ONEDNN)) {
            Tensor x = Tensor.ofFloats(arena, new float[] {1, 2, 3, 4}, 1, 4);
            norm.forward(x, x);
            assertEquals(Backend.ONEDNN, norm.lastBackend());
            assertArrayEquals(EXPECTED, x.toFloatArray(), 1e-6f);
        }
    }

    /**
     * Surefire puts on the module path only the modules that example.consumer requires, so the org.bytedeco
     * jars with oneDNN (which no module can require: they require JavaCPP's modules, which panorm leaves out)
     * land on the class path above. A program started with all its jars on --module-path has them there
     * instead, without jdk.incubator.vector unless it adds it: run one.
     */
    @Test
    void everythingOnTheModulePath() throws Exception {
        String modulePath =
                System.getProperty("consumer.modules") + File.pathSeparator + System.getProperty("consumer.classes");
        Process child = new ProcessBuilder(
                        ProcessHandle.current()
                                .info()
                                .command()
                                .orElse(Path.of(System.getProperty("java.home"), "bin", "java")
                                        .toString()),
                        "--enable-native-access=dev.panorm",
                        "--module-path",
                        modulePath,
                        "--module",
                        "example.consumer/example.Embeddings")
                .redirectErrorStream(true)
                .start();
        String output = new String(child.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(child.waitFor(60, TimeUnit.SECONDS), "the child JVM did not finish");
        assertEquals(0, child.exitValue(), output);
        List<String> lines =
                output.lines().filter(line -> line.contains(" ran ")).toList();
        assertEquals(Backend.values().length, lines.size(), output);
        assertTrue(lines.stream().anyMatch(line -> line.startsWith("ONEDNN ran ONEDNN [")), output);
        for (String line : lines) {
            String[] values =
                    line.substring(line.indexOf('[') + 1, line.indexOf(']')).split(", ");
            float[] y = new float[values.length];
            for (int i = 0; i < y.length; i++) {
                y[i] = Float.parseFloat(values[i]);
            }
            assertArrayEquals(EXPECTED, y, 1e-6f, line);
        }
    }
}
