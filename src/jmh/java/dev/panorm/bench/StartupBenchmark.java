package dev.panorm.bench;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.OneDnn;
import dev.panorm.Tensor;
import java.lang.foreign.Arena;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * One-off costs, each measured once per fresh JVM (single-shot), over several JVMs.
 *
 * <ul>
 *   <li>{@code loadLibrary}: the first oneDNN {@code LayerNorm} in the process: panorm's classes, the
 *       jextract bindings, loading libdnnl.so.3 (already extracted to the user cache, as on every run
 *       after the first) and creating the engine.</li>
 *   <li>{@code firstCallOnNewShape}: with the library loaded and panorm's code warm ({@code warmShapes}
 *       other shapes seen, each called many times), the first forward call on a row count never seen
 *       before: it builds and caches the oneDNN primitive. Each iteration uses a new row count (1000 to
 *       1019 rows of 768: 2 OpenMP threads). After 40 shapes the whole run stays below the plan cache's
 *       capacity; after 80 the cache is full, and each call evicts a plan.</li>
 *   <li>{@code firstCallOnNewShapeCold}: the same right after the library is loaded, before any other
 *       call: panorm's own code still runs in the interpreter.</li>
 *   <li>{@code firstThousandCalls}: the first 1,000 forward calls on 8 x 768 of a {@code LayerNorm} created
 *       just before, in a fresh JVM (library loaded): the second in which the Vector API kernels still run
 *       interpreted.</li>
 * </ul>
 *
 * <p>{@code backend} chooses the backend ({@code ONEDNN}, {@code AUTO}, {@code JAVA}).
 */
public class StartupBenchmark {

    @Benchmark
    @BenchmarkMode(Mode.SingleShotTime)
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    @Warmup(iterations = 0)
    @Measurement(iterations = 1)
    @Fork(
            value = 10,
            jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--add-modules=jdk.incubator.vector"})
    public Object loadLibrary() {
        LayerNorm norm = LayerNorm.create(LayerNormConfig.of(768), Backend.ONEDNN);
        norm.close();
        return OneDnn.version();
    }

    /** Library loaded (one {@code LayerNorm} created), nothing called yet. */
    @State(Scope.Benchmark)
    public static class ColdProcess {
        static final int C = 768;

        @Param({"ONEDNN", "AUTO", "JAVA"})
        public String backend;

        Arena arena;
        LayerNorm norm;
        Tensor scale;
        Tensor shift;
        Tensor src;

        @Setup(Level.Trial)
        public void load() {
            arena = Arena.ofShared();
            OneDnn.version(); // loads the library whatever the backend
            norm = LayerNorm.create(LayerNormConfig.of(C), Backend.valueOf(backend));
            scale = Tensor.allocate(arena, DataType.F32, C);
            shift = Tensor.allocate(arena, DataType.F32, C);
            src = Tensor.allocate(arena, DataType.F32, 1000, C);
        }

        @TearDown(Level.Trial)
        public void close() {
            norm.close();
            arena.close();
        }
    }

    /**
     * Library loaded, code warmed on other shapes; each iteration gets a row count not seen before.
     * JMH runs the superclass's setup first.
     */
    @State(Scope.Benchmark)
    public static class WarmProcess extends ColdProcess {
        Tensor dst;
        private int nextRows = 1000;

        /**
         * Shapes seen before the first measured call: 40 leaves the plan cache (64 plans) room for all
         * 20 new ones; with 80 it is full, and each new shape evicts a plan.
         */
        @Param({"40", "80"})
        public int warmShapes;

        @Setup(Level.Trial)
        public void warmUp() {
            for (int rows = 1; rows <= warmShapes; rows++) { // warm the Java side, on shapes the benchmark never uses
                Tensor x = Tensor.allocate(arena, DataType.F32, rows * 30, C);
                for (int i = 0; i < 300; i++) {
                    norm.forward(x, x, scale, shift);
                }
            }
        }

        @Setup(Level.Iteration)
        public void newShape() {
            int rows = nextRows++;
            src = Tensor.allocate(arena, DataType.F32, rows, C);
            dst = Tensor.allocate(arena, DataType.F32, rows, C);
        }
    }

    @Benchmark
    @BenchmarkMode(Mode.SingleShotTime)
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    @Warmup(iterations = 0)
    @Measurement(iterations = 20)
    @Fork(
            value = 3,
            jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--add-modules=jdk.incubator.vector"})
    public void firstCallOnNewShape(WarmProcess process) {
        process.norm.forward(process.src, process.dst, process.scale, process.shift);
    }

    @Benchmark
    @BenchmarkMode(Mode.SingleShotTime)
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    @Warmup(iterations = 0)
    @Measurement(iterations = 1)
    @Fork(
            value = 10,
            jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--add-modules=jdk.incubator.vector"})
    public void firstCallOnNewShapeCold(ColdProcess process) {
        process.norm.forward(process.src, process.src, process.scale, process.shift);
    }

    /** A fresh JVM with the library loaded and a {@code LayerNorm} just created; 8 x 768 tensors. */
    @State(Scope.Benchmark)
    public static class FreshLayerNorm {
        @Param({"ONEDNN", "AUTO"})
        public String backend;

        Arena arena;
        LayerNorm norm;
        Tensor src;
        Tensor dst;
        Tensor scale;
        Tensor shift;

        @Setup(Level.Trial)
        public void create() {
            OneDnn.version();
            arena = Arena.ofShared();
            src = Tensor.allocate(arena, DataType.F32, 8, ColdProcess.C);
            dst = Tensor.allocate(arena, DataType.F32, 8, ColdProcess.C);
            scale = Tensor.allocate(arena, DataType.F32, ColdProcess.C);
            shift = Tensor.allocate(arena, DataType.F32, ColdProcess.C);
            norm = LayerNorm.create(LayerNormConfig.of(ColdProcess.C), Backend.valueOf(backend));
        }

        @TearDown(Level.Trial)
        public void close() {
            norm.close();
            arena.close();
        }
    }

    @Benchmark
    @BenchmarkMode(Mode.SingleShotTime)
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    @Warmup(iterations = 0)
    @Measurement(iterations = 1)
    @Fork(
            value = 10,
            jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--add-modules=jdk.incubator.vector"})
    public void firstThousandCalls(FreshLayerNorm fresh) {
        for (int i = 0; i < 1000; i++) {
            fresh.norm.forward(fresh.src, fresh.dst, fresh.scale, fresh.shift);
        }
    }
}
