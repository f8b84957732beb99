package dev.panorm;

import java.lang.foreign.Arena;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.atomic.AtomicIntegerArray;

/**
 * Warms the Vector API kernels up on a background thread, and says when they run at compiled speed, so
 * that {@link Backend#AUTO} does not send calls to them while the JVM still interprets them (about a
 * millisecond per call of a few thousand elements, for up to a second after start; C1's code is as
 * slow, since only C2 compiles vector operations to vector instructions).
 *
 * <p>Per process and data type of the data there are four warm-ups, for forward and backward of layer and of RMS
 * normalization (they run different loops; half-precision rows run widening and rounding loops besides), each
 * started once {@code AUTO} calls that would have run it in Java add up to {@link #START_AFTER_ELEMENTS} elements
 * (counting {@link #CALL_ELEMENTS} more for each call). Each times batches of calls on 4 rows of 1024 (the loops are
 * the same for every row length) on one thread, and ends when every pass's fastest call of a batch took at most
 * {@link #COMPILED_NS_PER_ELEMENT} per element (three times that for half precision): C2's code takes 0.1 to 0.6 ns
 * per element on float32 data and up to about three times that on half precision, C1's and the
 * interpreter's hundreds (docs/benchmarks.md, "AUTO's cost model"). A warm-up that fails or reaches
 * {@link #GIVE_UP_NANOS} leaves the kernels cold, and AUTO keeps those calls on oneDNN. The system property
 * {@code panorm.auto.adaptive=false} turns this off (see {@link AutoKernel}).
 */
final class KernelWarmup {
    /**
     * Elements of calls routed around the cold kernels (per direction and kind) before their warm-up starts,
     * {@link #CALL_ELEMENTS} more for each call, 2^26: about 0.05 to 0.1 s of oneDNN's work (9,400 calls of 8 x 768,
     * 32 of 512 x 4096, 63,000 of 1 x 32). A warm-up costs a
     * core for about a second and slows the process's other threads meanwhile (C2, the garbage the interpreted
     * vector code makes), while Java saves under a microsecond per small call: a short process (a CLI run, a
     * test) should not pay it, a long one should start it soon. Counting elements rather than calls starts it
     * sooner where each call saves more.
     */
    static final long START_AFTER_ELEMENTS = 1L << 26;

    /**
     * What a call adds to that count besides its elements: oneDNN's fixed cost of a call, about a microsecond, is
     * that of about 1024 elements. Counting elements alone, calls on 1 x 32 ran on oneDNN (1.1 us each, where the Java
     * kernel takes 0.14) for 2 million calls, 3 seconds, before the warm-up started; now about 63,000, 70 ms, about
     * the oneDNN time that 2^26 elements of 8 x 768 calls take.
     */
    static final long CALL_ELEMENTS = 1024;

    /** The slowest a compiled kernel's call may be, per element; 3 to 20 times C2's, 50 times under C1's. */
    static final double COMPILED_NS_PER_ELEMENT = 2;
    /** A warm-up that has not seen compiled speed after this long stops: the JIT is not going to compile. */
    static final long GIVE_UP_NANOS = 30_000_000_000L;

    /** Whether AUTO adapts to cold kernels and new signatures ({@link AutoKernel}): {@code panorm.auto.adaptive}. */
    static final boolean ENABLED = Settings.flag("panorm.auto.adaptive", true);

    private static final int CALLS_PER_BATCH = 64;
    private static final long ROWS = 4;
    /** The warm-up's row length: the loops are the same for every length. */
    private static final long C = 1024;

    private static final int COLD = 0;
    private static final int WARMING = 1;
    private static final int WARM = 2;
    /** Indexed by {@link #index}. */
    private static final AtomicIntegerArray STATE = new AtomicIntegerArray(4 * DataType.values().length);
    /** Elements of calls seen cold, by {@link #index}: plain, as a lost count only delays the start. */
    private static final long[] COLD_ELEMENTS = new long[4 * DataType.values().length];

    private static final System.Logger LOG = System.getLogger("dev.panorm");

    /** The daemon thread that runs the warm-ups; started on first use. */
    private static final class Background {
        static final ExecutorService THREAD = BackgroundThreads.normalPriority("panorm-kernel-warmup");
    }

    private KernelWarmup() {}

    private static int index(LayerNormConfig config, boolean forward, DataType type) {
        return 4 * type.ordinal() + (forward ? 0 : 2) + (config.rms() ? 1 : 0);
    }

    /**
     * Whether the vector kernels for {@code config}'s kind, this direction and {@code like}'s data type run
     * compiled; if not, starts their warm-up once the cold calls' elements add up to {@link #START_AFTER_ELEMENTS},
     * counting {@code like}'s. Cheap once warm: one volatile read.
     */
    static boolean warm(LayerNormConfig config, boolean forward, Tensor like) {
        if (!ENABLED) {
            return true;
        }
        int index = index(config, forward, like.dataType());
        int state = STATE.get(index);
        if (state == COLD
                && (COLD_ELEMENTS[index] += like.elementCount() + CALL_ELEMENTS) >= START_AFTER_ELEMENTS
                && STATE.compareAndSet(index, COLD, WARMING)) {
            DataType type = like.dataType();
            Background.THREAD.execute(() -> run(config, forward, type, index));
        }
        return state == WARM;
    }

    /** Whether the warm-up for {@code config}'s kind, this direction and {@code type} has started (for tests). */
    static boolean started(LayerNormConfig config, boolean forward, DataType type) {
        return STATE.get(index(config, forward, type)) != COLD;
    }

    /** Starts that warm-up now and waits until it is done (for tests); false if it gave up. */
    static boolean await(LayerNormConfig config, boolean forward, Tensor like) throws InterruptedException {
        long deadline = System.nanoTime() + GIVE_UP_NANOS;
        COLD_ELEMENTS[index(config, forward, like.dataType())] = START_AFTER_ELEMENTS;
        while (!warm(config, forward, like)) {
            if (System.nanoTime() > deadline) {
                return false;
            }
            Thread.sleep(10);
        }
        return true;
    }

    private static void run(LayerNormConfig config, boolean forward, DataType type, int index) {
        try {
            if (warmUp(config.rms() ? LayerNormConfig.rms(C) : LayerNormConfig.of(C), forward, type)) {
                STATE.set(index, WARM);
            }
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.DEBUG, "panorm: the kernel warm-up failed; AUTO keeps oneDNN for them", e);
        }
    }

    /** One call's tensors, filled with varied data (so no branch sees one outcome only) and consistent statistics. */
    private record Tensors(
            Tensor x,
            Tensor y,
            Tensor dy,
            Tensor scale,
            Tensor shift,
            Tensor dScale,
            Tensor dShift,
            Tensor mean,
            Tensor variance,
            long rows) {
        /** Data of {@code type} ({@code x}, {@code y}, {@code dy}), float32 parameters and statistics. */
        static Tensors allocate(Arena arena, LayerNormConfig config, long rows, DataType type) {
            long c = config.normalizedSize();
            float[] values = new float[Math.toIntExact(rows * c)];
            float[] gradients = new float[values.length];
            for (int i = 0; i < values.length; i++) {
                values[i] = (float) Math.sin(i);
                gradients[i] = values[i] * 0.5f;
            }
            return new Tensors(
                    Tensor.ofFloats(arena, type, values, rows, c),
                    Tensor.allocate(arena, type, rows, c),
                    Tensor.ofFloats(arena, type, gradients, rows, c),
                    config.scale() ? Tensor.allocate(arena, DataType.F32, c) : null,
                    config.shift() ? Tensor.allocate(arena, DataType.F32, c) : null,
                    config.scale() ? Tensor.allocate(arena, DataType.F32, c) : null,
                    config.shift() ? Tensor.allocate(arena, DataType.F32, c) : null,
                    config.rms() ? null : Tensor.allocate(arena, DataType.F32, rows),
                    Tensor.allocate(arena, DataType.F32, rows),
                    rows);
        }

        void run(Kernel kernel, Pass pass) {
            if (pass.forward) {
                kernel.forward(pass, x, y, scale, shift, mean, variance, rows);
            } else {
                boolean gradients = pass.parameterGradients;
                kernel.backward(
                        pass,
                        dy,
                        x,
                        mean,
                        variance,
                        scale,
                        y,
                        gradients ? dScale : null,
                        gradients ? dShift : null,
                        rows);
            }
        }
    }

    /**
     * Runs the kernels for {@code config} until they are compiled; false if that did not happen in time. On memory
     * the warm-up thread owns, the only kind the kernels meet ({@link OwnedMemory}): code compiled on another kind was
     * deoptimized on this one ("profile_predicate") and compiled again, in a loop, and the calls ran about 100 times
     * slower for seconds (docs/benchmarks.md, "AUTO's cost model").
     */
    private static boolean warmUp(LayerNormConfig config, boolean forward, DataType type) {
        Pass[] passes = forward
                ? new Pass[] {Pass.FORWARD_INFERENCE, Pass.FORWARD_TRAINING, Pass.FORWARD_GLOBAL}
                : new Pass[] {Pass.BACKWARD, Pass.BACKWARD_DATA, Pass.BACKWARD_GLOBAL, Pass.BACKWARD_DATA_GLOBAL};
        Kernel kernel = JavaKernels.create(config, 1);
        try (Arena arena = Arena.ofConfined()) {
            Tensors tensors = Tensors.allocate(arena, config, ROWS, type);
            tensors.run(kernel, Pass.FORWARD_TRAINING);
            double compiledNanos = COMPILED_NS_PER_ELEMENT * (type == DataType.F32 ? 1 : 3) * ROWS * C;
            long start = System.nanoTime();
            while (System.nanoTime() - start < GIVE_UP_NANOS) {
                long slowest = 0; // over the passes, of each one's fastest call in the batch
                for (Pass pass : passes) {
                    long fastest = Long.MAX_VALUE;
                    for (int i = 0; i < CALLS_PER_BATCH; i++) {
                        long before = System.nanoTime();
                        tensors.run(kernel, pass);
                        fastest = Math.min(fastest, System.nanoTime() - before);
                    }
                    slowest = Math.max(slowest, fastest);
                }
                if (slowest <= compiledNanos) {
                    splitOnce(config, passes, type);
                    return true;
                }
            }
            return false;
        } finally {
            kernel.close();
        }
    }

    /**
     * Runs each pass once on a tensor large enough to be split across two threads: the first split call of a
     * process starts the pool and links its lambda, tens of milliseconds a caller should not pay.
     */
    private static void splitOnce(LayerNormConfig config, Pass[] passes, DataType type) {
        long rows = 2 * RowSplitter.MIN_ELEMENTS_PER_THREAD / C;
        Kernel kernel = JavaKernels.create(config, 2);
        try (Arena arena = Arena.ofConfined()) {
            Tensors tensors = Tensors.allocate(arena, config, rows, type);
            tensors.run(kernel, Pass.FORWARD_TRAINING);
            for (Pass pass : passes) {
                tensors.run(kernel, pass);
            }
        } finally {
            kernel.close();
        }
    }
}
