package dev.panorm;

import dev.panorm.internal.dnnl.Dnnl;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * The two oneDNN functions of every call, bound as critical downcalls ({@link Linker.Option#critical}):
 * without the Java-to-native thread-state transitions. A critical call holds off garbage-collection
 * safepoints while it runs, so panorm uses these only for calls known to be short
 * ({@link #SHORT_BELOW} elements) and the ordinary jextract bindings for the rest. oneDNN never calls
 * back into Java, as critical calls require.
 */
final class ShortCalls {
    /**
     * Calls on fewer elements than this are short: at most tens of microseconds, far below a
     * garbage-collection pause.
     */
    static final long SHORT_BELOW = 1 << 16;

    private static final MethodHandle EXECUTE = critical(Dnnl.dnnl_primitive_execute$address(),
            Dnnl.dnnl_primitive_execute$descriptor());
    private static final MethodHandle WAIT = critical(Dnnl.dnnl_stream_wait$address(), Dnnl.dnnl_stream_wait$descriptor());

    private ShortCalls() {}

    private static MethodHandle critical(MemorySegment address, FunctionDescriptor descriptor) {
        return Linker.nativeLinker().downcallHandle(address, descriptor, Linker.Option.critical(false));
    }

    /** {@code dnnl_primitive_execute} then, if it succeeded, {@code dnnl_stream_wait}; returns the status. */
    static int executeAndWait(MemorySegment primitive, MemorySegment stream, int argCount, MemorySegment args) {
        try {
            int status = (int) EXECUTE.invokeExact(primitive, stream, argCount, args);
            return status == Dnnl.dnnl_success() ? (int) WAIT.invokeExact(stream) : status;
        } catch (Throwable e) {
            throw new IllegalStateException("oneDNN call failed", e);
        }
    }
}
