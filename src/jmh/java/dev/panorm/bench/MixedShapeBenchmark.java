package dev.panorm.bench;

import dev.panorm.Backend;
import dev.panorm.LayerNorm;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.AuxCounters.Type;
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
import org.openjdk.jmh.infra.BenchmarkParams;

/**
 * One thread cycles through a transformer's shapes, as a model interleaves decode, prefill and the
 * layers of two widths: each invocation makes one call on each of {@link #SHAPES}, in order, on one
 * {@code LayerNorm} per row length, with the implementation {@code impl}. The one-shape-per-fork
 * {@link LayerNormBenchmark} cannot see what a call leaves behind for the next (the thread count
 * AUTO once carried from call to call, caches, the JIT's profile); this one can.
 *
 * <p>The score is the time of a whole cycle; the secondary metrics {@code shapeRxC} are each shape's
 * mean time per call in the cycle (timed with {@code System.nanoTime} around the call, which adds the
 * same few tens of nanoseconds to every implementation). Every output is checked against the scalar Java
 * reference once per fork, on a separate {@code LayerNorm}, before timing.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 5, time = 400, timeUnit = TimeUnit.MILLISECONDS)
@Measurement(iterations = 5, time = 200, timeUnit = TimeUnit.MILLISECONDS)
@Fork(
        value = 1,
        jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--add-modules=jdk.incubator.vector", "-Xss4m"})
public class MixedShapeBenchmark {
    /** Decode and prefill at width 4096, a large batch, then two shapes at width 768. */
    static final String[] SHAPES = {"1x4096", "32x4096", "512x4096", "8x768", "2048x768"};

    @Param({"auto", "onednn-1t", "onednn-2t", "java-1t", "java-2t"})
    public String impl;

    /** {@code layer}, {@code rms} or {@code precise}, as in {@link Fixture}. */
    @Param({"layer", "rms", "precise"})
    public String op;

    @Param({"f32"})
    public String dtype;

    private Fixture[] fixtures;
    private final Map<Long, LayerNorm> norms = new HashMap<>();
    private LayerNorm[] normOf;
    private Pass pass;

    /** Each shape's mean time per call in this iteration, in microseconds (JMH reports these as they are). */
    @State(Scope.Thread)
    @AuxCounters(Type.EVENTS)
    public static class PerShape {
        public double shape1x4096;
        public double shape32x4096;
        public double shape512x4096;
        public double shape8x768;
        public double shape2048x768;
        private final long[] nanos = new long[SHAPES.length];
        private long cycles;

        @Setup(Level.Iteration)
        public void reset() {
            java.util.Arrays.fill(nanos, 0);
            cycles = 0;
        }

        void add(long[] cycle) {
            cycles++;
            for (int i = 0; i < cycle.length; i++) {
                nanos[i] += cycle[i];
            }
            shape1x4096 = nanos[0] / 1e3 / cycles;
            shape32x4096 = nanos[1] / 1e3 / cycles;
            shape512x4096 = nanos[2] / 1e3 / cycles;
            shape8x768 = nanos[3] / 1e3 / cycles;
            shape2048x768 = nanos[4] / 1e3 / cycles;
        }
    }

    @Setup(Level.Trial)
    public void setUp(BenchmarkParams params) {
        Backend backend = Backend.valueOf(impl.replaceFirst("-.*", "").toUpperCase(java.util.Locale.ROOT));
        int threads = impl.endsWith("-1t") ? 1 : impl.endsWith("-2t") ? 2 : 0;
        pass = Pass.ofBenchmark(params.getBenchmark());
        fixtures = new Fixture[SHAPES.length];
        normOf = new LayerNorm[SHAPES.length];
        for (int i = 0; i < SHAPES.length; i++) {
            Fixture fixture = fixtures[i] = new Fixture(SHAPES[i], dtype, op);
            try (Peer check = new Peer.Panorm(fixture, backend, threads)) {
                ResultCheck.against(fixture, check, pass);
            }
            normOf[i] =
                    norms.computeIfAbsent(fixture.channels, c -> LayerNorm.create(fixture.config(), backend, threads));
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        norms.values().forEach(LayerNorm::close);
        for (Fixture fixture : fixtures) {
            fixture.close();
        }
    }

    private final long[] cycle = new long[SHAPES.length];

    private void run(PerShape perShape) {
        for (int i = 0; i < fixtures.length; i++) {
            Fixture f = fixtures[i];
            LayerNorm norm = normOf[i];
            long start = System.nanoTime();
            switch (pass) {
                case FORWARD -> norm.forward(f.src, f.dst, f.scale, f.shift);
                case TRAINING -> norm.forwardTraining(f.src, f.dst, f.scale, f.shift, f.mean, f.variance);
                case BACKWARD ->
                    norm.backward(f.diffDst, f.src, f.mean, f.variance, f.scale, f.diffSrc, f.diffScale, f.diffShift);
                case GLOBALFORWARD ->
                    norm.forwardWithGlobalStatistics(f.src, f.dst, f.scale, f.shift, f.mean, f.variance);
                case BACKWARDDATA -> norm.backwardData(f.diffDst, f.src, f.mean, f.variance, f.scale, f.diffSrc);
            }
            cycle[i] = System.nanoTime() - start;
        }
        perShape.add(cycle);
    }

    @Benchmark
    public void forward(PerShape perShape) {
        run(perShape);
    }

    @Benchmark
    public void training(PerShape perShape) {
        run(perShape);
    }

    @Benchmark
    public void backward(PerShape perShape) {
        run(perShape);
    }

    @Benchmark
    public void globalForward(PerShape perShape) {
        run(perShape);
    }

    @Benchmark
    public void backwardData(PerShape perShape) {
        run(perShape);
    }
}
