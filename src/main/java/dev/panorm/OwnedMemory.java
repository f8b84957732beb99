package dev.panorm;

import dev.panorm.internal.ffm.LinkerAbi;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.ref.Reference;
import java.lang.ref.WeakReference;
import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * Runs the Java kernels' calls on memory that the calling thread owns, whatever arenas the caller's tensors come from:
 * {@link JavaKernels} wraps every Java kernel ({@link #javaKernel}, {@link #javaFused}).
 *
 * <p>Why: the JDK checks every access's session with {@code owner != null && owner != Thread.currentThread()}, in one
 * method whose profile the whole process shares. Once confined memory (which has an owner thread) is what that profile
 * has mostly seen, C2 hoists the owner comparison out of vector loops as a profiled loop predicate, which fails for
 * memory without an owner thread (shared, automatic, global arenas); C2 then recompiles the loop again and again, each
 * time with the same predicate, and the loop runs about a hundred times slower for seconds or for good. Which memory the
 * profile has seen depends on the whole process, the caller's own code included, so the one kind of memory that never
 * fails that predicate is memory the running thread owns. panorm's kernels therefore see only such memory: the caller's
 * confined tensors as they are, every other tensor in native memory through a view that the calling thread owns
 * ({@link #onThisThread}; split calls' threads make their own, {@code VectorKernel.onThisThread}), a tensor
 * on the heap through a copy in native memory the thread owns ({@link HeapCopies}), and panorm's scratch rows through
 * owned views too (docs/benchmarks.md, "One kind of memory for every loop" and "Heap tensors through native copies").
 *
 * <p>A view does not keep memory alive, so the memory must stay allocated while the call runs. A confined arena can
 * only be closed by its owner, which is in the call; an automatic one only frees memory that is unreachable, and
 * {@link LayerNorm} keeps the caller's tensors reachable; the global arena never frees. A shared arena can be closed by
 * any thread at any time, so a call on a view of its memory runs inside a downcall that takes the caller's segments as
 * arguments: the FFM linker keeps their arenas open until the downcall returns ({@code close()} throws
 * {@link IllegalStateException} meanwhile, as it does for oneDNN's calls, {@link OneDnnExecute}), and refuses an arena
 * that is closed already. The downcall's target is an upcall stub into {@link #runHeld}: no native code of panorm's own.
 * Such calls cost about 0.15 us more than on confined memory (AMD EPYC Zen 3, float32 forward on 1 x 64: the downcall
 * and upcall about half of it, views the rest); the global arena's memory needs views but no downcall (about 0.07 us),
 * and calls on the caller's confined memory run as before ({@code bench.ArenaKinds}, docs/benchmarks.md, "Calls on
 * other arenas' memory, without the bookkeeping of copies"). Only calls with heap tensors take the bookkeeping of
 * copies and parts.
 */
final class OwnedMemory {
    /** Any thread but the caller: memory it may access has no owner thread. */
    private static final Thread OTHER_THREAD = Thread.ofPlatform().unstarted(() -> {});
    /** The most tensors a call takes ({@link LayerNorm#forwardQuantized}). */
    private static final int SLOTS = 11;
    /** Each thread's pending call, run by {@link #runHeld}. */
    private static final ThreadLocal<Pending> PENDING = ThreadLocal.withInitial(Pending::new);
    /** The global arena's lifetime: memory in it is never freed. */
    private static final MemorySegment.Scope GLOBAL = Arena.global().scope();
    /** Each thread's own arena for its views: never closed, it owns no memory. */
    private static final ThreadLocal<Arena> VIEWS = ThreadLocal.withInitial(Arena::ofConfined);
    /**
     * Whether this module may make such views ({@code reinterpret} is restricted): not where native access is denied
     * ({@code --illegal-native-access=deny}), and the Java kernels then read the caller's segments as they are.
     */
    private static final boolean VIEWS_ALLOWED = viewsAllowed();

    private OwnedMemory() {}

    /**
     * A downcall to the upcall stub into {@link #runHeld}, with {@link #SLOTS} pointer arguments to hold; made on the
     * first call that needs it, so that calls on confined memory never touch the linker.
     */
    private static final class Hold {
        static final MethodHandle HANDLE = holdHandle();
    }

    private static MethodHandle holdHandle() {
        if (!LinkerAbi.isTested()) {
            return null;
        }
        try {
            Linker linker = Linker.nativeLinker();
            MemorySegment stub = linker.upcallStub(
                    MethodHandles.lookup().findStatic(OwnedMemory.class, "runHeld", MethodType.methodType(void.class)),
                    FunctionDescriptor.ofVoid(),
                    Arena.global());
            MemoryLayout[] pointers = new MemoryLayout[SLOTS];
            Arrays.fill(pointers, ValueLayout.ADDRESS);
            return linker.downcallHandle(stub, FunctionDescriptor.ofVoid(pointers));
        } catch (ReflectiveOperationException | RuntimeException e) {
            // No linker here, or native access denied: calls run on the caller's segments as they are.
            System.getLogger("dev.panorm")
                    .log(System.Logger.Level.DEBUG, "panorm: calls on unowned memory run without views", e);
            return null;
        }
    }

    /** How the kernels see a tensor's memory. */
    enum Kind {
        /** Confined to a thread (the caller, once a call has checked it): as it is. */
        AS_IS(0),
        /** Native memory of the global arena: through a view, with nothing to hold. */
        VIEWED(1),
        /** Native memory of a shared or automatic arena: through a view, its arena held open. */
        HELD(2),
        /** A tensor on the heap: through a copy in native memory the thread owns ({@link HeapCopies}). */
        COPIED(4);

        /** This kind's bit, for the set of kinds of a call's tensors ({@link #owned}). */
        final int bit;

        Kind(int bit) {
            this.bit = bit;
        }
    }

    /**
     * The kind of a tensor's memory, {@code segment}, fixed for its life ({@link Tensor} computes it once). A heap
     * segment has no address to view; a tensor on it is copied instead ({@link HeapCopies}).
     */
    static Kind kind(MemorySegment segment) {
        if (!segment.isNative()) {
            return Kind.COPIED;
        }
        if (!segment.isAccessibleBy(OTHER_THREAD)) {
            return Kind.AS_IS;
        }
        return GLOBAL.equals(segment.scope()) ? Kind.VIEWED : Kind.HELD;
    }

    /** Bytes a copy of {@code tensor} (null: absent) takes: 0 unless it is {@link Kind#COPIED}. */
    private static long copySize(Tensor tensor) {
        return tensor != null && tensor.memoryKind() == Kind.COPIED ? HeapCopies.size(tensor) : 0;
    }

    /**
     * Whether {@code tensor}'s rows (null: absent), indexed by its axes before the {@code axes} trailing ones, can be
     * viewed a part at a time ({@link Tensor#rows}): a call on heap tensors too large to copy whole runs in such parts.
     */
    private static boolean viewableByRows(Tensor tensor, int axes) {
        if (tensor == null) {
            return true;
        }
        try {
            tensor.rows(axes, 0, 0);
            return true;
        } catch (IllegalArgumentException e) { // leading axes not evenly strided
            return false;
        }
    }

    /** {@code tensor}'s {@link Kind#bit} (null: absent, 0). */
    private static int kindBit(Tensor tensor) {
        return tensor == null ? 0 : tensor.memoryKind().bit;
    }

    /** Whether kernels on the caller's thread see {@code tensor} (null: absent) through a view. */
    private static boolean unowned(Tensor tensor) {
        return tensor != null && (tensor.memoryKind() == Kind.VIEWED || tensor.memoryKind() == Kind.HELD);
    }

    /**
     * {@code tensor} (null: absent) as kernels running on the calling thread see it: itself if it lies in memory the
     * thread owns or on the heap, else a view of its memory owned by the thread, made once per tensor and thread. The
     * tensor keeps the last thread's view, and each thread its own ({@link ViewTable}), so that threads taking turns on
     * shared weights allocate nothing either. Only for a caller's tensors that a call has checked, whose memory stays
     * allocated while the view is used (see the class comment).
     */
    static Tensor onThisThread(Tensor tensor) {
        return unowned(tensor) ? ownedView(tensor) : tensor;
    }

    /**
     * A view of {@code tensor}'s memory that the current thread owns, made once per tensor and thread, as {@link
     * #onThisThread} says; also for the parts of a split call on other threads ({@code VectorKernel.onThisThread}).
     */
    static Tensor ownedView(Tensor tensor) {
        Thread thread = Thread.currentThread();
        Tensor.OwnedView last = tensor.ownedView();
        if (last != null && last.owner() == thread) {
            return last.view();
        }
        ViewTable table = TABLES.get(); // a view per call cost split calls about 4 KB each, on each pool thread
        Tensor.OwnedView mine = table.find(tensor);
        if (mine == null) {
            Tensor view = Tensor.of(
                    ownedView(tensor.segment()), tensor.dataType(), tensor.shapeArray(), tensor.stridesArray());
            mine = new Tensor.OwnedView(thread, view);
            table.put(tensor, mine);
        }
        tensor.ownedView(mine);
        return mine.view();
    }

    /** Each thread's views of the tensors it ran calls on ({@link #onThisThread}). */
    private static final ThreadLocal<ViewTable> TABLES = ThreadLocal.withInitial(ViewTable::new);

    /**
     * One thread's views, by the caller's tensor: an open-addressed table on identity hashes, a few probes, the oldest
     * entry at a full spot overwritten. Weak keys: a tensor of an automatic arena must not outlive its last use here.
     */
    private static final class ViewTable {
        private static final int SIZE = 64;
        private static final int PROBES = 4;

        @SuppressWarnings({"unchecked", "rawtypes"})
        private final WeakReference<Tensor>[] keys = new WeakReference[SIZE];

        private final Tensor.OwnedView[] views = new Tensor.OwnedView[SIZE];

        Tensor.OwnedView find(Tensor tensor) {
            int hash = System.identityHashCode(tensor);
            for (int i = 0; i < PROBES; i++) {
                int at = (hash + i) & (SIZE - 1);
                WeakReference<Tensor> key = keys[at];
                if (key != null && key.get() == tensor) {
                    return views[at];
                }
            }
            return null;
        }

        void put(Tensor tensor, Tensor.OwnedView view) {
            int hash = System.identityHashCode(tensor);
            int slot = hash & (SIZE - 1);
            for (int i = 0; i < PROBES; i++) {
                int at = (hash + i) & (SIZE - 1);
                if (keys[at] == null || keys[at].get() == null) {
                    slot = at;
                    break;
                }
            }
            keys[slot] = new WeakReference<>(tensor);
            views[slot] = view;
        }
    }

    /** {@code segment}'s memory through a view that the current thread owns; it does not keep the memory alive. */
    static MemorySegment ownedView(MemorySegment segment) {
        return VIEWS_ALLOWED
                ? MemorySegment.ofAddress(segment.address()).reinterpret(segment.byteSize(), VIEWS.get(), null)
                : segment;
    }

    private static boolean viewsAllowed() {
        try {
            MemorySegment.NULL.reinterpret(0);
            return true;
        } catch (IllegalCallerException nativeAccessDenied) {
            return false;
        }
    }

    /**
     * Whether a call on tensors of these {@link #kinds} runs as it is: all in the caller's own memory, or nothing to
     * copy and no downcall to hold the others' arenas here.
     */
    private static boolean runsAsIs(int kinds) {
        return kinds == 0 || (kinds & Kind.COPIED.bit) == 0 && Hold.HANDLE == null;
    }

    /**
     * Whether any of these tensors (null: absent) lies on the Java heap, where only the Java kernels, through copies,
     * can read it: {@code Backend.AUTO} sends such calls there.
     */
    static boolean onHeap(
            Tensor t0,
            Tensor t1,
            Tensor t2,
            Tensor t3,
            Tensor t4,
            Tensor t5,
            Tensor t6,
            Tensor t7,
            Tensor t8,
            Tensor t9,
            Tensor t10) {
        return (kinds(t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10) & Kind.COPIED.bit) != 0;
    }

    /** The set of {@link Kind#bit}s of these tensors (null: absent). */
    private static int kinds(
            Tensor t0,
            Tensor t1,
            Tensor t2,
            Tensor t3,
            Tensor t4,
            Tensor t5,
            Tensor t6,
            Tensor t7,
            Tensor t8,
            Tensor t9,
            Tensor t10) {
        return kindBit(t0)
                | kindBit(t1)
                | kindBit(t2)
                | kindBit(t3)
                | kindBit(t4)
                | kindBit(t5)
                | kindBit(t6)
                | kindBit(t7)
                | kindBit(t8)
                | kindBit(t9)
                | kindBit(t10);
    }

    /** {@code kernel}, a Java one for {@code config}, with each call's tensors seen as this class says. */
    static Kernel javaKernel(Kernel kernel, LayerNormConfig config) {
        return new OwnedKernel(kernel, config.normalizedAxes(), !(kernel instanceof ScalarKernel));
    }

    /** {@code kernel}, a Java one for {@code config}, with each call's tensors seen as this class says. */
    static FusedKernel javaFused(FusedKernel kernel, LayerNormConfig config) {
        return new OwnedFusedKernel(kernel, config.normalizedAxes(), !(kernel instanceof FusedScalarKernel));
    }

    /**
     * {@code inner}, for a configuration of {@code axes} normalized axes; {@code inParts}: a call whose heap tensors are
     * too large to copy whole runs in parts (the vector kernels; the scalar ones run it on the heap, faster than
     * through copies).
     */
    private record OwnedKernel(Kernel inner, int axes, boolean inParts) implements Kernel {
        @Override
        public Backend forward(
                Pass pass,
                Tensor src,
                Tensor dst,
                Tensor scale,
                Tensor shift,
                Tensor mean,
                Tensor variance,
                long rows) {
            int kinds = kinds(src, dst, scale, shift, mean, variance, null, null, null, null, null);
            return runsAsIs(kinds)
                    ? inner.forward(pass, src, dst, scale, shift, mean, variance, rows)
                    : pending(Operation.FORWARD, inner, null, axes, inParts, kinds)
                            .run(pass, rows, 0, src, dst, scale, shift, mean, variance, null, null, null, null, null);
        }

        @Override
        public Backend backward(
                Pass pass,
                Tensor diffDst,
                Tensor src,
                Tensor mean,
                Tensor variance,
                Tensor scale,
                Tensor diffSrc,
                Tensor diffScale,
                Tensor diffShift,
                long rows) {
            int kinds = kinds(diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift, null, null, null);
            return runsAsIs(kinds)
                    ? inner.backward(pass, diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift, rows)
                    : pending(Operation.BACKWARD, inner, null, axes, inParts, kinds)
                            .run(
                                    pass, rows, 0, diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift,
                                    null, null, null);
        }

        @Override
        public String implementation(Tensor src, Tensor dst, Tensor scale, Tensor shift, long rows) {
            long copied = copySize(src) + copySize(dst) + copySize(scale) + copySize(shift);
            boolean large = copied > HeapCopies.KEPT_BYTES;
            if (large && !inParts) {
                return inner.implementation(src, dst, scale, shift, rows) + " (heap tensors of more than "
                        + (HeapCopies.KEPT_BYTES >> 20) + " MiB in one call run on the heap as they are)";
            }
            if (large && !(viewableByRows(src, axes) && viewableByRows(dst, axes))) {
                return "java:scalar (heap tensors of more than " + (HeapCopies.KEPT_BYTES >> 20)
                        + " MiB in one call, whose leading axes are not evenly strided, run on the heap as they are)";
            }
            String implementation = inner.implementation(src, dst, scale, shift, rows);
            return copied == 0
                    ? implementation
                    : implementation + ", heap tensors copied to and from native memory"
                            + (large ? " in parts of at most " + (HeapCopies.KEPT_BYTES >> 20) + " MiB" : "");
        }

        @Override
        public void quiescent() {
            inner.quiescent();
        }

        @Override
        public void close() {
            inner.close();
        }
    }

    /** {@code inner}, as for {@link OwnedKernel}. */
    private record OwnedFusedKernel(FusedKernel inner, int axes, boolean inParts) implements FusedKernel {
        @Override
        public Backend forward(
                Pass pass,
                Tensor src,
                Tensor residual,
                Tensor bias,
                Tensor sum,
                Tensor dst,
                Tensor scale,
                Tensor shift,
                Tensor mean,
                Tensor variance,
                Tensor dstScales,
                float dstScale,
                long rows) {
            int kinds = kinds(src, residual, bias, sum, dst, scale, shift, mean, variance, dstScales, null);
            return runsAsIs(kinds)
                    ? inner.forward(
                            pass, src, residual, bias, sum, dst, scale, shift, mean, variance, dstScales, dstScale,
                            rows)
                    : pending(Operation.FUSED_FORWARD, null, inner, axes, inParts, kinds)
                            .run(
                                    pass, rows, dstScale, src, residual, bias, sum, dst, scale, shift, mean, variance,
                                    dstScales, null);
        }

        @Override
        public Backend backward(
                Tensor diffDst,
                Tensor diffSum,
                Tensor sum,
                Tensor mean,
                Tensor variance,
                Tensor scale,
                Tensor diffSrc,
                Tensor diffScale,
                Tensor diffShift,
                long rows) {
            int kinds = kinds(diffDst, diffSum, sum, mean, variance, scale, diffSrc, diffScale, diffShift, null, null);
            return runsAsIs(kinds)
                    ? inner.backward(diffDst, diffSum, sum, mean, variance, scale, diffSrc, diffScale, diffShift, rows)
                    : pending(Operation.FUSED_BACKWARD, null, inner, axes, inParts, kinds)
                            .run(
                                    null, rows, 0, diffDst, diffSum, sum, mean, variance, scale, diffSrc, diffScale,
                                    diffShift, null, null);
        }

        @Override
        public void close() {
            inner.close();
        }
    }

    /**
     * The current thread's {@link Pending}, set to run {@code operation} on one of these kernels, with tensors of these
     * {@link #kinds}.
     */
    private static Pending pending(
            Operation operation, Kernel kernel, FusedKernel fused, int axes, boolean inParts, int kinds) {
        Pending call = PENDING.get();
        call.operation = operation;
        call.kinds = kinds;
        call.axes = axes;
        call.inParts = inParts;
        call.kernel = kernel;
        call.fused = fused;
        return call;
    }

    /** The upcall: runs the current thread's pending call. An exception must not leave an upcall (the JVM exits). */
    private static void runHeld() {
        Pending call = PENDING.get();
        try {
            call.result = call.runOnViews();
        } catch (Throwable e) {
            call.failure = e;
        }
    }

    private enum Operation {
        FORWARD,
        BACKWARD,
        FUSED_FORWARD,
        FUSED_BACKWARD
    }

    /** One thread's call in flight, reused: set, run through {@link Hold#HANDLE}, cleared. */
    private static final class Pending {
        private final Tensor[] tensors = new Tensor[SLOTS];
        /** The caller's tensors, while {@link #tensors} holds what the kernel sees. */
        private final Tensor[] callers = new Tensor[SLOTS];
        /** The caller's whole tensors, while {@link #callers} holds a part's rows of them ({@link #runInParts}). */
        private final Tensor[] wholes = new Tensor[SLOTS];

        private Operation operation;
        /** The set of {@link Kind#bit}s of the call's tensors. */
        private int kinds;
        /** The configuration's number of normalized axes: the trailing axes that make a row. */
        private int axes;
        /** Whether a call whose heap tensors are too large to copy whole may run in parts. */
        private boolean inParts;

        private Kernel kernel;
        private FusedKernel fused;
        private Pass pass;
        private long rows;
        private float dstScale;
        private Backend result;
        private Throwable failure;

        Backend run(
                Pass pass,
                long rows,
                float dstScale,
                Tensor t0,
                Tensor t1,
                Tensor t2,
                Tensor t3,
                Tensor t4,
                Tensor t5,
                Tensor t6,
                Tensor t7,
                Tensor t8,
                Tensor t9,
                Tensor t10) {
            this.pass = pass;
            this.rows = rows;
            this.dstScale = dstScale;
            Tensor[] t = tensors;
            t[0] = t0;
            t[1] = t1;
            t[2] = t2;
            t[3] = t3;
            t[4] = t4;
            t[5] = t5;
            t[6] = t6;
            t[7] = t7;
            t[8] = t8;
            t[9] = t9;
            t[10] = t10;
            try {
                if ((kinds & Kind.HELD.bit) != 0 && Hold.HANDLE != null) {
                    Hold.HANDLE.invokeExact(
                            segment(t0),
                            segment(t1),
                            segment(t2),
                            segment(t3),
                            segment(t4),
                            segment(t5),
                            segment(t6),
                            segment(t7),
                            segment(t8),
                            segment(t9),
                            segment(t10));
                } else { // global or heap memory besides the caller's: nothing can free it during the call
                    runHeld();
                }
            } catch (IllegalStateException e) { // the linker refused an arena closed since the checks
                throw CallChecks.closedDuringCall(e);
            } catch (RuntimeException | Error e) {
                throw e;
            } catch (Throwable e) {
                throw new IllegalStateException(e);
            } finally {
                Arrays.fill(t, null);
                if ((kinds & Kind.COPIED.bit) != 0) { // only calls with copies use these
                    Arrays.fill(callers, null);
                    Arrays.fill(wholes, null);
                }
                kernel = null;
                fused = null;
            }
            Throwable thrown = failure;
            Backend backend = result;
            failure = null;
            result = null;
            if (thrown instanceof RuntimeException e) {
                throw e;
            } else if (thrown instanceof Error e) {
                throw e;
            } else if (thrown != null) {
                throw new IllegalStateException(thrown);
            }
            return backend;
        }

        /** Whether the downcall must hold {@code tensor}'s arena open. */
        private static boolean held(Tensor tensor) {
            return tensor != null && tensor.memoryKind() == Kind.HELD;
        }

        /** The downcall's argument for {@code tensor}: its segment where {@link #held}, else NULL. */
        private static MemorySegment segment(Tensor tensor) {
            return held(tensor) ? tensor.segment() : MemorySegment.NULL;
        }

        Backend runOnViews() {
            if ((kinds & Kind.COPIED.bit) == 0) { // views alone (most calls): no copies, no parts, no bookkeeping
                Tensor[] t = tensors;
                for (int i = 0; i < SLOTS; i++) {
                    t[i] = onThisThread(t[i]);
                }
                return runKernel(rows);
            }
            System.arraycopy(tensors, 0, wholes, 0, SLOTS);
            long copyBytes = 0;
            for (Tensor tensor : wholes) {
                copyBytes += copySize(tensor);
            }
            long partRows = copyBytes > HeapCopies.KEPT_BYTES ? partRows() : 0;
            if (partRows == 0) {
                System.arraycopy(wholes, 0, callers, 0, SLOTS);
                return runRows(rows, copyBytes);
            }
            return runInParts(partRows);
        }

        /**
         * The call on rows {@code first} to {@code first + count - 1} of its tensors, for each part of {@code
         * partRows} rows in turn: a call whose heap tensors need more copies than a thread keeps, so that they run in
         * the vector kernels all the same. Each part's results are what the whole call gives: the kernels compute each
         * row alone, and such a call writes no parameter gradients (see {@link #partRows}).
         */
        private Backend runInParts(long partRows) {
            Backend backend = null;
            for (long first = 0; first < rows; first += partRows) {
                long count = Math.min(partRows, rows - first);
                long copyBytes = 0;
                for (int i = 0; i < SLOTS; i++) {
                    callers[i] = rowsOf(i, first, count);
                    copyBytes += copySize(callers[i]);
                }
                backend = runRows(count, copyBytes);
            }
            return backend;
        }

        /**
         * How many rows a part of the call takes when its heap tensors need more copies than a thread keeps: as many as
         * fit in {@link HeapCopies#KEPT_BYTES}; 0 where the call cannot run in parts (it writes parameter gradients,
         * which sum over every row, or a tensor's rows cannot be viewed apart), and then runs on the heap as it is.
         */
        private long partRows() {
            if (!inParts) {
                return 0;
            }
            long perRow = 0;
            long fixed = 0;
            for (int i = 0; i < SLOTS; i++) {
                Tensor tensor = wholes[i];
                if (tensor != null && (isParameterGradient(i) || rowKind(i) == DATA && !viewableByRows(tensor, axes))) {
                    return 0;
                }
                if (rowKind(i) == PER_CHANNEL) {
                    fixed += copySize(tensor);
                } else if (tensor != null && tensor.memoryKind() == Kind.COPIED) {
                    perRow += (tensor.byteExtent() + rows - 1) / rows;
                }
            }
            long count = Math.min(rows - 1, (HeapCopies.KEPT_BYTES - fixed) / Math.max(1, perRow));
            while (count > 0 && partBytes(count) > HeapCopies.KEPT_BYTES) {
                count -= Math.max(1, count / 16); // each copy's alignment: a little less than the estimate
            }
            return Math.max(0, count);
        }

        /** The bytes of the copies of a part of {@code count} rows. */
        private long partBytes(long count) {
            long bytes = 0;
            for (int i = 0; i < SLOTS; i++) {
                bytes += copySize(rowsOf(i, 0, count));
            }
            return bytes;
        }

        private static final int PER_CHANNEL = 0;
        private static final int DATA = 1;
        private static final int PER_ROW = 2;

        /**
         * What the tensor in {@code slot} holds: {@link #DATA} (rows of the normalized shape), {@link #PER_ROW} (a
         * value per row: statistics, int8 scales) or {@link #PER_CHANNEL} (scale, shift, bias and their gradients).
         */
        private int rowKind(int slot) {
            return switch (operation) {
                case FORWARD -> slot <= 1 ? DATA : slot == 4 || slot == 5 ? PER_ROW : PER_CHANNEL;
                case BACKWARD -> slot <= 1 || slot == 5 ? DATA : slot == 2 || slot == 3 ? PER_ROW : PER_CHANNEL;
                case FUSED_FORWARD ->
                    slot <= 1 || slot == 3 || slot == 4 ? DATA : slot >= 7 && slot <= 9 ? PER_ROW : PER_CHANNEL;
                case FUSED_BACKWARD -> slot <= 2 || slot == 6 ? DATA : slot == 3 || slot == 4 ? PER_ROW : PER_CHANNEL;
            };
        }

        /** Rows {@code first} to {@code first + count - 1} of the caller's tensor in {@code slot} (null: absent). */
        private Tensor rowsOf(int slot, long first, long count) {
            Tensor tensor = wholes[slot];
            if (tensor == null) {
                return null;
            }
            return switch (rowKind(slot)) {
                case DATA -> tensor.rows(axes, first, count);
                case PER_ROW -> // contiguous float32, checked: a value per row, in row order
                    Tensor.of(tensor.segment().asSlice(first * Float.BYTES, count * Float.BYTES), DataType.F32, count);
                default -> tensor;
            };
        }

        /**
         * The call on {@link #callers}' tensors, {@code count} rows of them, whose heap tensors' copies take {@code
         * copyBytes}.
         */
        private Backend runRows(long count, long copyBytes) {
            Tensor[] t = tensors;
            // no copies for more than a thread keeps: such heap tensors go to the scalar kernels as they are
            HeapCopies copies =
                    copyBytes == 0 || copyBytes > HeapCopies.KEPT_BYTES ? null : HeapCopies.forThisThread(copyBytes);
            try {
                for (int i = 0; i < SLOTS; i++) {
                    Tensor tensor = callers[i];
                    t[i] = tensor;
                    if (tensor != null && tensor.memoryKind() == Kind.COPIED) {
                        if (copies != null) { // none: nothing, or too much, to copy
                            t[i] = copyOf(tensor, i, copies);
                        }
                    } else if (Hold.HANDLE != null || !held(tensor)) { // no view where nothing holds the arena
                        t[i] = onThisThread(tensor);
                    }
                }
                Backend backend = runKernel(count);
                if (copies != null) { // the outputs back into the caller's heap tensors, only once the call succeeded
                    for (int i = 0; i < SLOTS; i++) {
                        if (callers[i] != null && callers[i].memoryKind() == Kind.COPIED && isOutput(i)) {
                            HeapCopies.copyOut(t[i], callers[i]);
                        }
                    }
                }
                return backend;
            } finally {
                if (copies != null) {
                    copies.release();
                }
            }
        }

        /** The kernel on {@link #tensors} as they are, {@code count} rows of them. */
        private Backend runKernel(long count) {
            Tensor[] t = tensors;
            return switch (operation) {
                case FORWARD -> kernel.forward(pass, t[0], t[1], t[2], t[3], t[4], t[5], count);
                case BACKWARD -> kernel.backward(pass, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], count);
                case FUSED_FORWARD ->
                    fused.forward(pass, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], dstScale, count);
                case FUSED_BACKWARD -> fused.backward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], count);
            };
        }

        /**
         * The copy of {@code tensor}, a heap one in {@code slot}: the copy made for an earlier slot if the same tensor
         * was there (a tensor passed as input and output is updated in place, as in native memory), else a new one.
         */
        private Tensor copyOf(Tensor tensor, int slot, HeapCopies copies) {
            for (int i = 0; i < slot; i++) {
                if (wholes[i] == wholes[slot]) {
                    return tensors[i];
                }
            }
            return copies.copyIn(tensor, !isWrittenWhole(slot));
        }

        /**
         * Whether the call writes every element of the tensor in {@code slot}, whatever its values were: such an
         * output's copy needs no old values (the outputs whose rows it writes, not the parameter gradients).
         */
        private boolean isWrittenWhole(int slot) {
            return switch (operation) {
                case FORWARD -> slot == 1 || (slot == 4 || slot == 5) && pass.writesStatistics; // dst, mean, variance
                case BACKWARD -> slot == 5; // diffSrc
                case FUSED_FORWARD -> // sum, dst, dstScales; mean, variance
                    slot == 3 || slot == 4 || slot == 9 || (slot == 7 || slot == 8) && pass.writesStatistics;
                case FUSED_BACKWARD -> slot == 6; // diffSrc
            };
        }

        /** Whether the tensor in {@code slot} is one the call writes: one written whole, or a parameter gradient. */
        private boolean isOutput(int slot) {
            return isWrittenWhole(slot) || isParameterGradient(slot);
        }

        /** Whether {@code slot} holds diffScale or diffShift: sums over every row of the call. */
        private boolean isParameterGradient(int slot) {
            return operation == Operation.BACKWARD && slot >= 6 || operation == Operation.FUSED_BACKWARD && slot >= 7;
        }
    }

    /**
     * One thread's native memory for copies of heap tensors: kernels running on the thread own it, so the Java kernels
     * see a heap tensor (any primitive array, through {@code MemorySegment.ofArray}) as owned memory like every other
     * tensor, and run their vector loops on it (where its rows have unit stride) instead of scalar loops on the heap.
     * Every input is copied in (its extent, one block) and every output copied back after the call (one block, or a
     * strided one's elements only: {@link #copyOut}); so is an output's old content, except where the call writes
     * every element (y, dx, s, the statistics it computes), so that an output a call leaves partly alone keeps the rest
     * as it was. The memory is kept for the thread's next calls, at most {@link #KEPT_BYTES}; it comes
     * from an automatic arena, so the collector frees it once the thread has ended. A call whose heap tensors need more
     * runs in parts of rows that fit ({@code Pending.runInParts}), or where it cannot (it writes parameter gradients,
     * or a tensor's leading axes are not evenly strided) on the heap as it is, in the scalar kernels: fresh memory of
     * that size for each call cost more than the scalar loops (128 MiB: about 0.4 s of page faults on a virtual
     * machine, against 31 ms for the scalar forward).
     */
    static final class HeapCopies {
        private static final long ALIGNMENT = 64;

        /**
         * The most memory a thread keeps for copies; calls needing more run in parts, or on the heap. The system property
         * {@code panorm.heapCopyBytes} sets another (tests run calls in many small parts with it).
         */
        static final long KEPT_BYTES = Math.max(
                ALIGNMENT, Objects.requireNonNullElse(Settings.wholeNumber("panorm.heapCopyBytes"), 64L << 20));

        private static final ThreadLocal<HeapCopies> KEPT = ThreadLocal.withInitial(HeapCopies::new);

        /**
         * Copies that virtual threads borrow for a call and give back after it, at most two per core kept idle. A
         * virtual thread often serves one request and ends: copies of its own would be fresh native memory on every
         * call, left to the collector (1,000 us a call where the copy took 7, in a probe of 32 x 768 calls each on a
         * new virtual thread).
         */
        private static final AtomicReferenceArray<HeapCopies> IDLE =
                new AtomicReferenceArray<>(2 * Runtime.getRuntime().availableProcessors());

        /** The memory, of an automatic arena: this object keeps it alive. */
        private MemorySegment memory;
        /** {@link #memory} through a view the thread owns, which the copies are slices of. */
        private MemorySegment view;
        /** Whether a virtual thread borrowed these copies from {@link #IDLE} for the call. */
        private boolean borrowed;

        private long used;

        /** Bytes {@code tensor}'s copy takes in the buffer. */
        static long size(Tensor tensor) {
            return (tensor.byteExtent() + ALIGNMENT - 1) & -ALIGNMENT;
        }

        /**
         * The current thread's copies, with room for {@code bytes}, at most {@link #KEPT_BYTES}; {@link #release} them
         * after the call.
         */
        static HeapCopies forThisThread(long bytes) {
            HeapCopies copies = Thread.currentThread().isVirtual() ? borrow() : KEPT.get();
            if (copies.memory == null || copies.memory.byteSize() < bytes) {
                long size =
                        Math.min(KEPT_BYTES, Math.max(bytes, copies.memory == null ? 0 : 2 * copies.memory.byteSize()));
                copies.memory = Arena.ofAuto().allocate(size, ALIGNMENT);
                copies.view = ownedView(copies.memory);
            } else if (copies.view == null) { // borrowed: the last borrower's view was its own
                copies.view = ownedView(copies.memory);
            }
            return copies;
        }

        /** Idle copies for a virtual thread's call, or new ones. */
        private static HeapCopies borrow() {
            for (int i = 0; i < IDLE.length(); i++) {
                HeapCopies idle = IDLE.getPlain(i) == null ? null : IDLE.getAndSet(i, null);
                if (idle != null) {
                    idle.borrowed = true;
                    return idle;
                }
            }
            HeapCopies fresh = new HeapCopies();
            fresh.borrowed = true;
            return fresh;
        }

        /**
         * A copy of {@code tensor}, one on the heap, in this thread's memory (its whole extent, gaps included, in its
         * layout), with its values if {@code withValues}. The tensor keeps its copy's tensor for the thread's next call
         * with it in the same place of the same memory, and the one before for a second place (a forward and a backward
         * call in turn put it at two): a steady-state call allocates nothing.
         */
        Tensor copyIn(Tensor tensor, boolean withValues) {
            long bytes = tensor.byteExtent();
            Thread thread = Thread.currentThread();
            long address = view.address() + used;
            Tensor.OwnedView last = tensor.ownedView();
            Tensor.OwnedView earlier = tensor.earlierCopy();
            Tensor copy;
            if (isAt(last, thread, address)) {
                copy = last.view();
            } else if (isAt(earlier, thread, address)) {
                copy = earlier.view();
            } else {
                copy = Tensor.of(
                        view.asSlice(used, bytes), tensor.dataType(), tensor.shapeArray(), tensor.stridesArray());
                tensor.earlierCopy(last);
                tensor.ownedView(new Tensor.OwnedView(thread, copy));
            }
            used += size(tensor);
            if (withValues) {
                MemorySegment.copy(tensor.segment(), 0, copy.segment(), 0, bytes);
            }
            return copy;
        }

        /**
         * {@code copy}'s elements into {@code tensor}, whose layout it has: one block for a contiguous tensor, else
         * each run of elements along the last axis, so that the gaps between a strided tensor's elements keep what
         * the caller has there (another thread may be writing them).
         */
        static void copyOut(Tensor copy, Tensor tensor) {
            if (tensor.isContiguous()) {
                MemorySegment.copy(copy.segment(), 0, tensor.segment(), 0, tensor.byteExtent());
            } else if (tensor.elementCount() > 0) {
                copyRuns(
                        copy.segment(),
                        tensor.segment(),
                        tensor.shapeArray(),
                        tensor.stridesArray(),
                        0,
                        0,
                        tensor.dataType().byteSize());
            }
        }

        /** The elements of axes {@code axis} on, from element {@code offset}, as {@link #copyOut} copies them. */
        private static void copyRuns(
                MemorySegment from, MemorySegment to, long[] shape, long[] strides, int axis, long offset, int bytes) {
            int last = shape.length - 1;
            if (axis < last) {
                for (long i = 0; i < shape[axis]; i++) {
                    copyRuns(from, to, shape, strides, axis + 1, offset + i * strides[axis], bytes);
                }
            } else if (strides[last] == 1) {
                MemorySegment.copy(from, offset * bytes, to, offset * bytes, shape[last] * bytes);
            } else {
                for (long i = 0; i < shape[last]; i++) {
                    long at = (offset + i * strides[last]) * bytes;
                    MemorySegment.copy(from, at, to, at, bytes);
                }
            }
        }

        /** Whether {@code copy} (null: none) is {@code thread}'s, at {@code address}: this memory, this place. */
        private static boolean isAt(Tensor.OwnedView copy, Thread thread, long address) {
            return copy != null
                    && copy.owner() == thread
                    && copy.view().segment().address() == address;
        }

        /** Ends a call's use of the copies; borrowed ones go back to {@link #IDLE}, or to the collector if it is full. */
        void release() {
            used = 0;
            Reference.reachabilityFence(memory); // what the copies' view does not keep alive
            if (borrowed) {
                borrowed = false;
                view = null;
                for (int i = 0; i < IDLE.length() && !IDLE.compareAndSet(i, null, this); i++) {
                    // the next slot
                }
            }
        }
    }
}
