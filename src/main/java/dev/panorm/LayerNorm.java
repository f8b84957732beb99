package dev.panorm;

import java.lang.foreign.MemorySegment;
import java.lang.ref.Cleaner;
import java.lang.ref.Reference;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * Layer normalization over the last dimension of {@code [..., C]} tensors, with PyTorch's
 * semantics (see {@link LayerNormConfig}), computed by a chosen {@link Backend}.
 *
 * {@snippet :
 * try (Arena arena = Arena.ofConfined();
 *      LayerNorm norm = LayerNorm.create(LayerNormConfig.of(768))) {
 *     Tensor x = Tensor.allocate(arena, DataType.F32, 32, 768);     // fill it
 *     Tensor gamma = Tensor.allocate(arena, DataType.F32, 768);     // PyTorch's weight
 *     Tensor beta = Tensor.allocate(arena, DataType.F32, 768);      // PyTorch's bias
 *     norm.forward(x, x, gamma, beta);                              // in place
 * }
 * }
 *
 * <p>Create one per configuration and reuse it: the oneDNN backend builds a primitive the first
 * time it sees a row count and reuses it afterwards, so steady-state calls allocate nothing.
 *
 * <p>Every argument is checked before any native call: data type, shapes, memory that is too
 * small, freed, owned by another thread's confined arena or read-only (for outputs), and
 * destinations that partially overlap an input. Failures are {@link IllegalArgumentException}s or
 * {@link IllegalStateException}s whose messages name the argument and the problem.
 *
 * <p>Thread safety: a {@code LayerNorm} may be used by many threads at once. {@link #close()}
 * waits for calls in flight to return, and calls that start after it throw
 * {@link IllegalStateException}. A {@code LayerNorm} that is never closed releases its native
 * resources when it becomes unreachable.
 *
 * <p>Memory lifetime: a tensor's memory must stay alive for the duration of a call. Memory of a
 * shared arena closed by another thread while a oneDNN call is reading it cannot be detected by
 * the FFM API; close arenas only after the calls that use them have returned.
 */
public final class LayerNorm implements AutoCloseable {
    private static final Cleaner CLEANER = Cleaner.create();

    private final LayerNormConfig config;
    private final Backend backend;
    private final State state;
    private final Cleaner.Cleanable cleanable;

    private LayerNorm(LayerNormConfig config, Backend backend, LayerNormKernel kernel) {
        this.config = config;
        this.backend = backend;
        this.state = new State(kernel);
        this.cleanable = CLEANER.register(this, state);
    }

    /**
     * A layer normalization computed by oneDNN.
     *
     * @param config what to compute
     * @return a new operation; close it when done
     * @throws NativeLibraryException if oneDNN cannot be loaded
     */
    public static LayerNorm create(LayerNormConfig config) {
        return create(config, Backend.ONEDNN);
    }

    /**
     * A layer normalization computed by {@code backend}.
     *
     * @param config what to compute
     * @param backend who computes it
     * @return a new operation; close it when done
     * @throws NativeLibraryException if {@code backend} is {@link Backend#ONEDNN} and oneDNN cannot be loaded
     */
    public static LayerNorm create(LayerNormConfig config, Backend backend) {
        Objects.requireNonNull(config, "config");
        LayerNormKernel kernel = switch (Objects.requireNonNull(backend, "backend")) {
            case ONEDNN -> new OneDnnLayerNorm(config);
            case JAVA -> new JavaLayerNorm(config);
        };
        return new LayerNorm(config, backend, kernel);
    }

    /** What this operation computes. */
    public LayerNormConfig config() {
        return config;
    }

    /** Who computes it. */
    public Backend backend() {
        return backend;
    }

    /**
     * Forward pass without scale or shift; only for a configuration that has neither.
     *
     * @see #forward(Tensor, Tensor, Tensor, Tensor)
     */
    public void forward(Tensor src, Tensor dst) {
        forward(src, dst, null, null);
    }

    /**
     * Forward pass (inference): normalizes every row of {@code src} over its last dimension into
     * {@code dst}. {@code dst} may be {@code src} itself (in place) but must not partially overlap it.
     *
     * @param src float32, shape {@code [..., C]} with {@code C = config().normalizedSize()}, C order; any number of rows, including 0
     * @param dst float32, the same shape as {@code src}, writable
     * @param scale float32 {@code [C]} if the configuration has a scale, else {@code null}
     * @param shift float32 {@code [C]} if the configuration has a shift, else {@code null}
     * @throws IllegalArgumentException if an argument does not fit, naming which and why
     * @throws IllegalStateException if this operation or a tensor's memory has been closed, or the memory is
     *     confined to another thread
     * @throws OneDnnException if oneDNN fails
     */
    public void forward(Tensor src, Tensor dst, Tensor scale, Tensor shift) {
        state.enter();
        try {
            long rows = checkForward(src, dst, scale, shift);
            if (rows > 0) {
                state.kernel.forward(src, dst, scale, shift, rows);
            }
        } finally {
            state.exit();
            // Keep automatic arenas from freeing the memory while native code may still use it.
            Reference.reachabilityFence(src);
            Reference.reachabilityFence(dst);
            Reference.reachabilityFence(scale);
            Reference.reachabilityFence(shift);
        }
    }

    /**
     * The name of the implementation that computes {@code rows} rows, e.g. {@code jit:avx512_core} for
     * oneDNN's JIT kernel or {@code java:scalar}. For oneDNN this builds (and caches) the primitive.
     *
     * @param rows the number of rows, at least 1
     * @return the implementation's name
     */
    public String implementation(long rows) {
        if (rows < 1) {
            throw new IllegalArgumentException("rows must be at least 1, got " + rows);
        }
        state.enter();
        try {
            return state.kernel.implementation(rows);
        } finally {
            state.exit();
        }
    }

    /**
     * Releases the native resources. Waits for calls in flight on other threads to return; later
     * calls throw {@link IllegalStateException}. Closing twice does nothing.
     */
    @Override
    public void close() {
        cleanable.clean();
    }

    @Override
    public String toString() {
        return "LayerNorm[" + config + ", " + backend + "]";
    }

    /** Validates a forward call; returns the number of rows. */
    private long checkForward(Tensor src, Tensor dst, Tensor scale, Tensor shift) {
        long c = config.normalizedSize();
        checkData("src", src, false);
        checkData("dst", dst, true);
        if (src.rank() < 1 || src.dim(-1) != c) {
            throw new IllegalArgumentException("src " + src.describe() + " must have last dimension C = " + c
                    + " (this LayerNorm's normalizedSize)");
        }
        if (!dst.hasSameShape(src)) {
            throw new IllegalArgumentException("dst " + dst.describe() + " must have the shape of src " + src.describe());
        }
        checkParameter("scale", scale, config.scale(), c);
        checkParameter("shift", shift, config.shift(), c);
        checkNoPartialOverlap("dst", dst, "src", src);
        if (scale != null) {
            checkDisjoint("dst", dst, "scale", scale);
        }
        if (shift != null) {
            checkDisjoint("dst", dst, "shift", shift);
        }
        return src.elementCount() / c;
    }

    private void checkData(String name, Tensor tensor, boolean written) {
        Objects.requireNonNull(tensor, name);
        if (tensor.dataType() != DataType.F32) {
            throw new IllegalArgumentException(name + " " + tensor.describe() + " must be F32");
        }
        if (!tensor.isContiguous()) {
            throw new IllegalArgumentException(name + " " + tensor.describe() + " must be contiguous (C order)");
        }
        checkMemory(name, tensor, written);
    }

    private void checkParameter(String name, Tensor tensor, boolean configured, long c) {
        if (!configured) {
            if (tensor != null) {
                throw new IllegalArgumentException("this LayerNorm has no " + name + " (config " + name + "=false) but a "
                        + name + " tensor was passed");
            }
            return;
        }
        if (tensor == null) {
            throw new IllegalArgumentException("this LayerNorm applies a " + name + " (config " + name + "=true) but "
                    + name + " is null");
        }
        checkData(name, tensor, false);
        if (tensor.rank() != 1 || tensor.dim(0) != c) {
            throw new IllegalArgumentException(name + " " + tensor.describe() + " must have shape [" + c + "]");
        }
    }

    private void checkMemory(String name, Tensor tensor, boolean written) {
        MemorySegment segment = tensor.segment();
        if (!segment.scope().isAlive()) {
            throw new IllegalStateException(name + "'s memory has been freed: its arena is closed");
        }
        if (!segment.isAccessibleBy(Thread.currentThread())) {
            throw new IllegalStateException(name + "'s memory belongs to a confined arena of another thread");
        }
        if (written && segment.isReadOnly()) {
            throw new IllegalArgumentException(name + " is read-only");
        }
        if (backend == Backend.ONEDNN && !segment.isNative()) {
            throw new IllegalArgumentException(name + " is a heap segment; oneDNN needs native (off-heap) memory. "
                    + "Allocate it from an Arena, or use Backend.JAVA");
        }
    }

    /** dst may be exactly src (in place) or disjoint from it, nothing in between. */
    private static void checkNoPartialOverlap(String outName, Tensor out, String inName, Tensor in) {
        // Overlapping segments share their backing memory, so their addresses are comparable.
        boolean identical = out.segment().address() == in.segment().address() && out.byteExtent() == in.byteExtent();
        if (overlaps(out, in) && !identical) {
            throw new IllegalArgumentException(outName + " partially overlaps " + inName
                    + "; pass the same tensor for in-place operation, or disjoint memory");
        }
    }

    private static void checkDisjoint(String outName, Tensor out, String inName, Tensor in) {
        if (overlaps(out, in)) {
            throw new IllegalArgumentException(outName + " overlaps " + inName + "; they must be disjoint");
        }
    }

    private static boolean overlaps(Tensor a, Tensor b) {
        if (a.byteExtent() == 0 || b.byteExtent() == 0) {
            return false;
        }
        MemorySegment x = a.segment();
        MemorySegment y = b.segment();
        if (x.isNative() && y.isNative()) {
            long xStart = x.address();
            long yStart = y.address();
            return xStart < yStart + b.byteExtent() && yStart < xStart + a.byteExtent();
        }
        return x.asSlice(0, a.byteExtent()).asOverlappingSlice(y.asSlice(0, b.byteExtent())).isPresent();
    }

    /**
     * Counts calls in flight so that closing never frees native memory under a running call. Also the
     * cleaning action, so it must not refer to the {@code LayerNorm}.
     */
    private static final class State implements Runnable {
        final LayerNormKernel kernel;
        private final AtomicInteger inFlight = new AtomicInteger();
        private volatile boolean closed;

        State(LayerNormKernel kernel) {
            this.kernel = kernel;
        }

        void enter() {
            inFlight.incrementAndGet();
            if (closed) {
                inFlight.decrementAndGet();
                throw new IllegalStateException("this LayerNorm is closed");
            }
        }

        void exit() {
            inFlight.decrementAndGet();
        }

        /** Closes: refuses new calls, waits for those in flight, then frees the kernel. Runs once. */
        @Override
        public void run() {
            closed = true;
            while (inFlight.get() != 0) {
                LockSupport.parkNanos(50_000);
            }
            kernel.close();
        }
    }
}
