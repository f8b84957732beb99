package dev.panorm.bench;

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
import org.openjdk.jmh.infra.BenchmarkParams;

/**
 * Layer normalization of a {@code rows x C} tensor (scale and shift, eps 1e-5), or RMS normalization, or
 * layer normalization with precise statistics ({@code op}), five passes (forward, training, backward, forward
 * with given statistics, backward for the input only; the JNI peers run the first three), raced across
 * implementations ({@code impl}): panorm's oneDNN path with 1 or 2 OpenMP threads, its Java
 * Vector API kernel on 1 or 2 threads, its scalar Java kernel, its automatic choice, and the JNI peer
 * (JavaCPP's oneDNN presets) with 1 or 2 threads. Each combination runs in its own fork; its setup
 * checks the result against the scalar Java reference once, so a fast wrong answer cannot be timed.
 *
 * <p>Time per call, in microseconds. Run through {@code scripts/bench.sh}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 5, time = 200, timeUnit = TimeUnit.MILLISECONDS)
@Measurement(iterations = 6, time = 200, timeUnit = TimeUnit.MILLISECONDS)
@Fork(
        value = 1,
        jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--add-modules=jdk.incubator.vector", "-Xss4m"})
public class LayerNormBenchmark {
    @Param({"1x768", "8x768", "32x768", "128x1024", "512x1024", "2048x4096", "8192x1024", "1x65536", "3x1000", "257x768"
    })
    public String shape;

    @Param({"f32", "bf16", "f16"})
    public String dtype;

    /** {@code layer}, {@code rms} or {@code precise} ({@link Fixture}); the JNI peers run {@code layer} only. */
    @Param({"layer"})
    public String op;

    @Param({"onednn-1t", "onednn-2t", "java-1t", "java-2t", "java-scalar", "auto", "jni-1t", "jni-2t"})
    public String impl;

    private Fixture fixture;
    private Peer peer;

    @Setup(Level.Trial)
    public void setUp(BenchmarkParams params) {
        fixture = new Fixture(shape, dtype, op);
        peer = Peer.create(impl, fixture);
        Pass pass = Pass.ofBenchmark(params.getBenchmark());
        peer.prepare(pass);
        ResultCheck.against(fixture, peer, pass);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        peer.close();
        fixture.close();
    }

    @Benchmark
    public void forward() {
        peer.forward();
    }

    @Benchmark
    public void training() {
        peer.training();
    }

    @Benchmark
    public void backward() {
        peer.backward();
    }

    @Benchmark
    public void globalForward() {
        peer.globalForward();
    }

    @Benchmark
    public void backwardData() {
        peer.backwardData();
    }
}
