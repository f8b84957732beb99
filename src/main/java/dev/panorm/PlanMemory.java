package dev.panorm;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.ArrayDeque;
import java.util.function.Consumer;

/**
 * A {@link OneDnnPlan}'s native memory and oneDNN handles, freed together by {@link #close}, last made first, as an
 * arena would. Not an arena: closing a shared arena is a handshake with every Java thread, which cost more than all else
 * a dropped plan's freeing does (0.2 ms a plan with one caller on 2 cores, 3 to 5 ms with 8 callers, where the calls
 * that freed plans took up to half a second), and it guards nothing here: the plan's segments have the global scope, as
 * its handles always had, and its cache frees it only once no call can be using it ({@link CallCounter}).
 *
 * <p>Thread-safe: a plan makes contexts for new threads while others use it.
 */
final class PlanMemory implements SegmentAllocator {
    private static final MethodHandle CALLOC;
    private static final MethodHandle FREE;

    static {
        Linker linker = Linker.nativeLinker();
        CALLOC = linker.downcallHandle(
                linker.defaultLookup().find("calloc").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG));
        FREE = linker.downcallHandle(
                linker.defaultLookup().find("free").orElseThrow(), FunctionDescriptor.ofVoid(ValueLayout.ADDRESS));
    }

    /** What {@link #close} runs, the last added first; guarded by this. */
    private final ArrayDeque<Runnable> releases = new ArrayDeque<>();

    private boolean closed; // guarded by this

    /** Zeroed native memory of {@code byteSize} bytes, aligned to {@code byteAlignment}, until {@link #close}. */
    @Override
    public synchronized MemorySegment allocate(long byteSize, long byteAlignment) {
        if (byteSize < 0 || byteAlignment <= 0 || Long.bitCount(byteAlignment) != 1) {
            throw new IllegalArgumentException("size " + byteSize + ", alignment " + byteAlignment);
        }
        checkOpen();
        MemorySegment block;
        try {
            block = (MemorySegment) CALLOC.invokeExact(1L, Math.addExact(Math.max(byteSize, 1), byteAlignment - 1));
        } catch (Throwable e) {
            throw new IllegalStateException("calloc failed", e);
        }
        if (block.equals(MemorySegment.NULL)) {
            throw new OutOfMemoryError("panorm: cannot allocate " + byteSize + " bytes of native memory for a plan");
        }
        releases.push(() -> free(block));
        long aligned = (block.address() + byteAlignment - 1) & -byteAlignment;
        return MemorySegment.ofAddress(aligned).reinterpret(byteSize);
    }

    /** Returns {@code handle}, having {@link #close} pass it to {@code destroy}. */
    synchronized MemorySegment own(MemorySegment handle, Consumer<MemorySegment> destroy) {
        checkOpen();
        releases.push(() -> destroy.accept(handle));
        return handle;
    }

    /** Destroys the handles and frees the memory, the last made first. Idempotent. */
    synchronized void close() {
        closed = true;
        while (!releases.isEmpty()) {
            releases.pop().run();
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("plan memory already freed");
        }
    }

    private static void free(MemorySegment block) {
        try {
            FREE.invokeExact(block);
        } catch (Throwable e) {
            throw new IllegalStateException("free failed", e);
        }
    }
}
