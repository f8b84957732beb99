package dev.panorm.bench;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
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
 * A tensor much larger than the caches (16384 x 4096 float32: 256 MiB in, 256 MiB out) normalized
 * forward, against the roof for the same traffic: copying src to dst, on 1 and on 2 threads. Layer
 * normalization must read src at least once and write dst once, so the copy is the fastest it can be.
 * {@code scale-*} is the fastest it can be without non-temporal stores, which neither oneDNN 3.8.1's
 * kernel nor the Vector API emits: {@code dst = 2 * src + 1} in Vector API code, whose ordinary stores
 * first read each destination line (three streams of traffic against the copy's two).
 *
 * <p>Time per call, in milliseconds; bytes moved per call are {@code 2 * 256 MiB}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 6, time = 1)
@Fork(
        value = 1,
        jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--add-modules=jdk.incubator.vector", "-Xss4m"})
public class BandwidthBenchmark {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    static final String SHAPE = "16384x4096";

    @Param({"copy-1t", "copy-2t", "scale-1t", "scale-2t", "onednn-1t", "onednn-2t", "java-1t", "java-2t", "auto"})
    public String impl;

    private Fixture fixture;
    private Peer peer;
    private ParallelCopy copy;

    @Setup(Level.Trial)
    public void setUp() {
        fixture = new Fixture(SHAPE, "f32");
        if (impl.startsWith("copy-") || impl.startsWith("scale-")) {
            copy = new ParallelCopy(
                    fixture.src.segment(),
                    fixture.dst.segment(),
                    impl.endsWith("-2t") ? 2 : 1,
                    impl.startsWith("scale-"));
        } else {
            peer = Peer.create(impl, fixture);
            peer.prepare(Pass.FORWARD);
            ResultCheck.against(fixture, peer, Pass.FORWARD);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (peer != null) {
            peer.close();
        }
        if (copy != null) {
            copy.close();
        }
        fixture.close();
    }

    @Benchmark
    public void forward() {
        if (copy != null) {
            copy.run();
        } else {
            peer.forward();
        }
    }

    /**
     * {@code MemorySegment.copy} of src to dst, or with {@code scale} {@code dst = 2 * src + 1} with
     * ordinary vector stores, split in equal halves between threads.
     */
    static final class ParallelCopy implements AutoCloseable {
        private final MemorySegment from;
        private final MemorySegment to;
        private final ExecutorService helpers;
        private final int threads;
        private final boolean scale;

        ParallelCopy(MemorySegment from, MemorySegment to, int threads, boolean scale) {
            this.from = from;
            this.to = to;
            this.threads = threads;
            this.scale = scale;
            this.helpers = Executors.newFixedThreadPool(Math.max(1, threads - 1), r -> {
                Thread thread = new Thread(r, "copy-helper");
                thread.setDaemon(true);
                return thread;
            });
        }

        void run() {
            long bytes = from.byteSize();
            long part = (bytes / threads + 63) & ~63L;
            List<Future<?>> others = new ArrayList<>();
            for (int t = 1; t < threads; t++) {
                long start = Math.min(bytes, part * t);
                long length = Math.min(part, bytes - start);
                others.add(helpers.submit(() -> move(start, length)));
            }
            move(0, Math.min(part, bytes));
            for (Future<?> other : others) {
                try {
                    other.get();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }
        }

        private void move(long start, long length) {
            if (!scale) {
                MemorySegment.copy(from, start, to, start, length);
                return;
            }
            long step = (long) SPECIES.vectorByteSize();
            for (long at = start; at < start + length; at += step) { // lengths are multiples of 64 bytes
                FloatVector.fromMemorySegment(SPECIES, from, at, ORDER)
                        .fma(2f, 1f)
                        .reinterpretAsLongs() // as panorm stores: see VectorKernel's rules for loops
                        .intoMemorySegment(to, at, ORDER);
            }
        }

        @Override
        public void close() {
            helpers.shutdownNow();
        }
    }
}
