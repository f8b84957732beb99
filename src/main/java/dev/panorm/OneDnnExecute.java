package dev.panorm;

import dev.panorm.internal.dnnl.Dnnl;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Arrays;

/**
 * Runs one oneDNN primitive ({@code dnnl_primitive_execute}, then {@code dnnl_stream_wait}) so that the
 * memory of the caller's tensors cannot be freed while oneDNN uses it.
 *
 * <p>oneDNN reaches the caller's memory through memory objects holding raw addresses, so the FFM API
 * cannot see that a call uses it: another thread could close a shared arena in the middle of the call
 * (a crash, or a silent write into freed memory). But the FFM linker keeps the arena of every segment
 * passed as an argument open until the call returns ({@code close()} throws
 * {@link IllegalStateException} meanwhile), and refuses a segment whose arena is closed already with an
 * {@code IllegalStateException} before calling native code. So {@code dnnl_primitive_execute} is bound
 * with {@link #TENSORS} extra pointer parameters after its four real ones, carrying the tensors'
 * segments, which the C function never reads. Passing a non-variadic C function more arguments than it
 * declares is harmless on the platforms panorm supports (x86-64 System V, Windows x64, AArch64
 * AAPCS64): the extra ones go in argument registers the callee does not read or on the stack, which
 * the caller owns and cleans up. The linker acquires each distinct arena once per call: for a shared
 * arena an atomic increment and decrement, a small part of the shortest call (docs/benchmarks.md).
 *
 * <p>Holding the memory for {@code dnnl_primitive_execute} alone covers oneDNN's whole use of it: with
 * the CPU engine and the OpenMP (bundled), TBB or sequential runtime the work is done when it returns,
 * and {@code dnnl_stream_wait} returns at once ("CPU execution is synchronous", {@code cpu_stream.hpp}).
 * So the wait gets no extra arguments, which would double that cost for nothing. (A runtime that ran
 * primitives asynchronously would need one acquisition across both calls, which the FFM API does not
 * offer.)
 *
 * <p>Short calls ({@link #SHORT_BELOW} elements) use critical downcalls ({@link Linker.Option#critical}):
 * without the Java-to-native thread-state transitions. A critical call holds off garbage-collection
 * safepoints while it runs, so only calls known to be short use them. They keep their arguments'
 * arenas open in the same way ({@code OneDnnExecuteTest}). oneDNN never calls back into Java, as
 * critical calls require.
 */
final class OneDnnExecute {
    /**
     * Calls on fewer elements than this are short: at most tens of microseconds, far below a
     * garbage-collection pause.
     */
    static final long SHORT_BELOW = 1 << 16;
    /** The extra pointer parameters: every tensor a call can take, one per caller's {@link Role}. */
    static final int TENSORS = Role.CALLER;

    private static final MethodHandle EXECUTE =
            bind(Dnnl.dnnl_primitive_execute$address(), Dnnl.dnnl_primitive_execute$descriptor());
    private static final MethodHandle EXECUTE_CRITICAL = bind(
            Dnnl.dnnl_primitive_execute$address(),
            Dnnl.dnnl_primitive_execute$descriptor(),
            Linker.Option.critical(false));
    private static final MethodHandle WAIT_CRITICAL = Linker.nativeLinker()
            .downcallHandle(
                    Dnnl.dnnl_stream_wait$address(), Dnnl.dnnl_stream_wait$descriptor(), Linker.Option.critical(false));

    static {
        prime();
    }

    private OneDnnExecute() {}

    /**
     * Calls each handle once, with a null primitive and stream, which oneDNN refuses at once
     * ({@code dnnl_invalid_arguments}). A downcall handle's first call lifts a class-initialization barrier in its
     * lambda form, and code the JIT compiled with the barrier kept it: each call then allocated 16 bytes until the
     * caller was recompiled, 15,000 calls later ({@code AllocationTest}, on a 128 x 1024 forward after short calls).
     */
    private static void prime() {
        MemorySegment n = MemorySegment.NULL;
        try {
            int[] statuses = {
                (int) EXECUTE.invokeExact(n, n, 0, n, n, n, n, n, n, n, n, n, n, n),
                (int) EXECUTE_CRITICAL.invokeExact(n, n, 0, n, n, n, n, n, n, n, n, n, n, n),
                (int) WAIT_CRITICAL.invokeExact(n),
                Dnnl.dnnl_stream_wait(n)
            };
            assert Arrays.stream(statuses).allMatch(status -> status == Dnnl.dnnl_invalid_arguments())
                    : "oneDNN accepted a null primitive or stream";
        } catch (Throwable e) {
            throw new AssertionError("a downcall threw", e);
        }
    }

    /** A downcall to {@code function} with {@link #TENSORS} pointer parameters appended to {@code real}. */
    static MethodHandle bind(MemorySegment function, FunctionDescriptor real, Linker.Option... options) {
        MemoryLayout[] tensors = new MemoryLayout[TENSORS];
        Arrays.fill(tensors, ValueLayout.ADDRESS);
        return Linker.nativeLinker().downcallHandle(function, real.appendArgumentLayouts(tensors), options);
    }

    /**
     * Executes {@code primitive} on {@code stream} and, if that succeeded, waits for it; returns the
     * oneDNN status. The tensors' memory (null where absent) cannot be freed until the execution returns.
     *
     * @param critical whether the call is short enough for a critical downcall
     * @throws IllegalStateException if a tensor's memory has been freed (then oneDNN is not called)
     */
    static int executeAndWait(
            boolean critical,
            MemorySegment primitive,
            MemorySegment stream,
            int argCount,
            MemorySegment args,
            Tensor src,
            Tensor dst,
            Tensor scale,
            Tensor shift,
            Tensor mean,
            Tensor variance,
            Tensor diffDst,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift) {
        MemorySegment t0 = segment(src);
        MemorySegment t1 = segment(dst);
        MemorySegment t2 = segment(scale);
        MemorySegment t3 = segment(shift);
        MemorySegment t4 = segment(mean);
        MemorySegment t5 = segment(variance);
        MemorySegment t6 = segment(diffDst);
        MemorySegment t7 = segment(diffSrc);
        MemorySegment t8 = segment(diffScale);
        MemorySegment t9 = segment(diffShift);
        try {
            int status = critical
                    ? (int) EXECUTE_CRITICAL.invokeExact(
                            primitive, stream, argCount, args, t0, t1, t2, t3, t4, t5, t6, t7, t8, t9)
                    : (int) EXECUTE.invokeExact(
                            primitive, stream, argCount, args, t0, t1, t2, t3, t4, t5, t6, t7, t8, t9);
            if (status != Dnnl.dnnl_success()) {
                return status;
            }
            return critical ? (int) WAIT_CRITICAL.invokeExact(stream) : Dnnl.dnnl_stream_wait(stream);
        } catch (IllegalStateException e) { // the linker refused an arena closed since the checks
            throw CallChecks.closedDuringCall(e);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("a downcall threw a checked exception", e);
        }
    }

    private static MemorySegment segment(Tensor tensor) {
        return tensor == null ? MemorySegment.NULL : tensor.segment();
    }
}
