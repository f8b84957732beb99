package dev.panorm.bench;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
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
 * The residual add fused with layer normalization, and int8 output, side by side with what they replace,
 * all float32 with scale and shift, one thread each (the Java backend with {@code threads = 1}):
 * <ul>
 *   <li>{@code layerNorm}: the norm alone, {@code dst = LN(x)};
 *   <li>{@code addThenLayerNorm}: {@code s = x + r} (a Vector API loop) and then {@code LN(s)}, two calls;
 *   <li>{@code fused}: {@code forwardResidual} keeping s, {@code fusedNoSum} without it;
 *   <li>{@code int8}: {@code forwardQuantized} with per-row scales, no residual; {@code int8Static} with one
 *       scale; {@code int8Residual} with the residual add, keeping s.
 * </ul>
 * and {@code backwardResidual}: the fused backward pass with an incoming gradient for s, into a third tensor.
 * {@code ln} chooses the backend of every call ({@code java}, {@code auto}, or {@code onednn}: oneDNN's norm, and
 * for the fused calls its binary add, then its norm; int8 output runs in Java on every backend), {@code threads} the threads a call may use
 * ({@code 0}: the backend's choice per shape). Time per call, in microseconds.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 4, time = 200, timeUnit = TimeUnit.MILLISECONDS)
@Measurement(iterations = 6, time = 200, timeUnit = TimeUnit.MILLISECONDS)
@Fork(
        value = 1,
        jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--add-modules=jdk.incubator.vector", "-Xss4m"})
public class FusedBenchmark {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();

    @Param({"1x4096", "8x4096", "8192x4096"})
    public String shape;

    @Param({"java"})
    public String ln;

    @Param({"1"})
    public int threads;

    /** The data's type ({@code f32}, {@code bf16}, {@code f16}); scale and shift are float32. */
    @Param({"f32"})
    public String dtype;

    private Arena arena;
    private LayerNorm fusedNorm;
    private LayerNorm plainNorm;
    private Tensor x;
    private Tensor r;
    private Tensor s;
    private Tensor y;
    private Tensor q;
    private Tensor scales;
    private Tensor gamma;
    private Tensor beta;
    private Tensor mean;
    private Tensor variance;
    private Tensor dx;
    private Tensor dGamma;
    private Tensor dBeta;

    @Setup(Level.Trial)
    public void setUp() {
        String[] parts = shape.split("x");
        int rows = Integer.parseInt(parts[0]);
        int c = Integer.parseInt(parts[1]);
        arena = Arena.ofShared();
        SplittableRandom random = new SplittableRandom(1);
        DataType type = DataType.valueOf(dtype.toUpperCase(java.util.Locale.ROOT));
        x = filled(random, type, rows, c);
        r = filled(random, type, rows, c);
        s = Tensor.allocate(arena, type, rows, c);
        y = Tensor.allocate(arena, type, rows, c);
        q = Tensor.allocate(arena, DataType.S8, rows, c);
        scales = Tensor.allocate(arena, DataType.F32, rows);
        gamma = filled(random, DataType.F32, c);
        beta = filled(random, DataType.F32, c);
        mean = Tensor.allocate(arena, DataType.F32, rows);
        variance = Tensor.allocate(arena, DataType.F32, rows);
        dx = Tensor.allocate(arena, type, rows, c);
        dGamma = Tensor.allocate(arena, DataType.F32, c);
        dBeta = Tensor.allocate(arena, DataType.F32, c);
        LayerNormConfig config = LayerNormConfig.of(c);
        Backend backend = switch (ln) {
            case "onednn" -> Backend.ONEDNN;
            case "auto" -> Backend.AUTO;
            case "java" -> Backend.JAVA;
            default -> throw new IllegalArgumentException("ln must be java, onednn or auto, got " + ln);
        };
        fusedNorm = LayerNorm.create(config, backend, threads);
        plainNorm = LayerNorm.create(config, backend, threads);
        fusedNorm.forwardResidualTraining(x, r, null, s, y, gamma, beta, mean, variance);
        if (type != DataType.F32) {
            return; // the plain add below, and so the check, are float32 only
        }
        // Checked once, so that a broken kernel cannot post a fast number: fused == add, then norm.
        addThenLayerNorm();
        float[] separate = y.toFloatArray();
        fused();
        float[] together = y.toFloatArray();
        for (int i = 0; i < separate.length; i++) {
            if (Math.abs(separate[i] - together[i]) > 1e-4f * (1 + Math.abs(separate[i]))) {
                throw new IllegalStateException("fused and separate differ at " + i);
            }
        }
    }

    private Tensor filled(SplittableRandom random, DataType type, long... dims) {
        Tensor t = Tensor.allocate(arena, type, dims);
        float[] values = new float[Math.toIntExact(t.elementCount())];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) random.nextDouble(-2, 2);
        }
        return t.copyFrom(values);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        fusedNorm.close();
        plainNorm.close();
        arena.close();
    }

    /** {@code s = x + r}, the fastest plain add: Vector API, one pass. */
    private void add() {
        MemorySegment a = x.segment();
        MemorySegment b = r.segment();
        MemorySegment out = s.segment();
        long bytes = x.elementCount() * Float.BYTES;
        long step = (long) SPECIES.length() * Float.BYTES;
        for (long at = 0; at < bytes; at += step) { // the shapes are whole vectors
            FloatVector.fromMemorySegment(SPECIES, a, at, ORDER)
                    .add(FloatVector.fromMemorySegment(SPECIES, b, at, ORDER))
                    .reinterpretAsLongs() // as panorm stores: see VectorKernel's rules for loops
                    .intoMemorySegment(out, at, ORDER);
        }
    }

    @Benchmark
    public void layerNorm() {
        plainNorm.forward(x, y, gamma, beta);
    }

    @Benchmark
    public void addThenLayerNorm() {
        add();
        plainNorm.forward(s, y, gamma, beta);
    }

    @Benchmark
    public void fused() {
        fusedNorm.forwardResidual(x, r, null, s, y, gamma, beta);
    }

    @Benchmark
    public void fusedNoSum() {
        fusedNorm.forwardResidual(x, r, null, null, y, gamma, beta);
    }

    @Benchmark
    public void backwardResidual() {
        fusedNorm.backwardResidual(r, x, s, mean, variance, gamma, dx, dGamma, dBeta);
    }

    @Benchmark
    public void int8() {
        fusedNorm.forwardQuantized(x, null, null, null, q, gamma, beta, scales);
    }

    @Benchmark
    public void int8Static() {
        fusedNorm.forwardQuantized(x, null, null, null, q, gamma, beta, 0.05f);
    }

    @Benchmark
    public void int8Residual() {
        fusedNorm.forwardQuantized(x, r, null, s, q, gamma, beta, scales);
    }
}
