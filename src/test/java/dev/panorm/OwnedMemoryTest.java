package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * What {@link OwnedMemory} hands a Java kernel: the caller's confined tensors as they are, every other tensor through a
 * view of the same memory that the calling thread owns, the same view call after call; a shared arena held open while
 * the kernel runs; the kernel's exceptions passed on to the caller.
 */
class OwnedMemoryTest {
    private static final Thread OTHER = Thread.ofPlatform().unstarted(() -> {});

    /** A kernel that records the tensors it is given and runs {@link #during} inside the call. */
    private static final class Recording implements Kernel {
        final List<Tensor> seen = new ArrayList<>();
        Runnable during = () -> {};

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
            seen.add(src);
            seen.add(dst);
            seen.add(scale);
            during.run();
            return Backend.JAVA;
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
            throw new UnsupportedOperationException();
        }

        @Override
        public String implementation(Tensor src, Tensor dst, Tensor scale, Tensor shift, long rows) {
            return "recording";
        }

        @Override
        public void close() {}
    }

    @Test
    void confinedTensorsPassAsTheyAreAndOthersAsViewsTheCallerOwns() {
        Recording recording = new Recording();
        Kernel kernel = OwnedMemory.javaKernel(recording, LayerNormConfig.of(8));
        try (Arena confined = Arena.ofConfined();
                Arena shared = Arena.ofShared()) {
            Tensor x = Tensor.allocate(confined, DataType.F32, 2, 8);
            Tensor y = Tensor.allocate(shared, DataType.F32, 2, 8);
            Tensor gamma = Tensor.allocate(Arena.ofAuto(), DataType.F32, 8);
            kernel.forward(Pass.FORWARD_INFERENCE, x, y, gamma, null, null, null, 2);
            kernel.forward(Pass.FORWARD_INFERENCE, x, y, gamma, null, null, null, 2);
            assertSame(x, recording.seen.get(0));
            for (int i : new int[] {1, 2}) {
                Tensor original = i == 1 ? y : gamma;
                Tensor view = recording.seen.get(i);
                assertEquals(original.segment().address(), view.segment().address());
                assertEquals(original.segment().byteSize(), view.segment().byteSize());
                assertTrue(view.hasSameLayout(original));
                assertTrue(view.segment().isAccessibleBy(Thread.currentThread()));
                assertFalse(view.segment().isAccessibleBy(OTHER), "owned by the calling thread");
                assertSame(view, recording.seen.get(i + 3), "made once, reused by the next call");
            }
        }
    }

    @Test
    void aSharedArenaStaysOpenWhileTheKernelRuns() {
        Recording recording = new Recording();
        Kernel kernel = OwnedMemory.javaKernel(recording, LayerNormConfig.of(8));
        Arena shared = Arena.ofShared();
        Tensor x = Tensor.allocate(shared, DataType.F32, 1, 8);
        recording.during = () -> assertThrows(IllegalStateException.class, shared::close);
        kernel.forward(Pass.FORWARD_INFERENCE, x, x, null, null, null, null, 1);
        shared.close(); // after the call it closes
        assertThrows(
                IllegalStateException.class,
                () -> kernel.forward(Pass.FORWARD_INFERENCE, x, x, null, null, null, null, 1),
                "the linker refuses a closed arena before the kernel runs");
        assertEquals(3, recording.seen.size(), "the kernel ran once");
    }

    /**
     * A call mixing heap tensors and a shared arena's takes both ways at once: copies for the heap, a view for the
     * shared tensor whose arena stays held open, and the next call on views alone (which skips the copies' bookkeeping)
     * sees its own tensors, nothing left from the mixed one.
     */
    @Test
    void heapAndSharedTensorsInOneCallGetCopiesAndAHeldView() {
        Recording recording = new Recording();
        Kernel kernel = OwnedMemory.javaKernel(recording, LayerNormConfig.of(4));
        Arena shared = Arena.ofShared();
        Tensor x = Tensor.of(MemorySegment.ofArray(new float[] {1, 2, 3, 4}), DataType.F32, 1, 4);
        Tensor y = Tensor.allocate(shared, DataType.F32, 1, 4);
        Tensor gamma = Tensor.of(MemorySegment.ofArray(new float[] {5, 6, 7, 8}), DataType.F32, 4);
        recording.during = () -> assertThrows(IllegalStateException.class, shared::close);
        kernel.forward(Pass.FORWARD_INFERENCE, x, y, gamma, null, null, null, 1);
        Tensor xSeen = recording.seen.get(0);
        Tensor ySeen = recording.seen.get(1);
        Tensor gammaSeen = recording.seen.get(2);
        assertTrue(xSeen.segment().isNative(), "a heap input runs on a native copy");
        assertArrayEquals(new float[] {1, 2, 3, 4}, xSeen.toFloatArray());
        assertArrayEquals(new float[] {5, 6, 7, 8}, gammaSeen.toFloatArray());
        assertEquals(y.segment().address(), ySeen.segment().address(), "the shared tensor through a view");
        assertFalse(ySeen.segment().isAccessibleBy(OTHER), "owned by the calling thread");

        Tensor y2 = Tensor.allocate(shared, DataType.F32, 1, 4);
        kernel.forward(Pass.FORWARD_INFERENCE, y2, y2, null, null, null, null, 1);
        assertEquals(y2.segment().address(), recording.seen.get(3).segment().address());
        assertSame(recording.seen.get(3), recording.seen.get(4), "one view for the tensor in both places");
        assertNull(recording.seen.get(5), "no scale: nothing left from the call before");
        shared.close(); // after the calls it closes
    }

    @Test
    void theKernelsExceptionsReachTheCallerAndLaterCallsRun() {
        Recording recording = new Recording();
        Kernel kernel = OwnedMemory.javaKernel(recording, LayerNormConfig.of(8));
        try (Arena shared = Arena.ofShared()) {
            Tensor x = Tensor.allocate(shared, DataType.F32, 1, 8);
            recording.during = () -> {
                throw new IllegalArgumentException("from the kernel");
            };
            IllegalArgumentException thrown = assertThrows(
                    IllegalArgumentException.class,
                    () -> kernel.forward(Pass.FORWARD_INFERENCE, x, x, null, null, null, null, 1));
            assertEquals("from the kernel", thrown.getMessage());
            recording.during = () -> {
                throw new AssertionError("an error too");
            };
            assertThrows(
                    AssertionError.class,
                    () -> kernel.forward(Pass.FORWARD_INFERENCE, x, x, null, null, null, null, 1));
            recording.during = () -> {};
            assertEquals(Backend.JAVA, kernel.forward(Pass.FORWARD_INFERENCE, x, x, null, null, null, null, 1));
        }
    }

    @Test
    void contiguousHeapTensorsRunOnCopiesAndOnlyTheOutputsComeBackAfterACallThatSucceeded() {
        Recording recording = new Recording();
        Kernel kernel = OwnedMemory.javaKernel(recording, LayerNormConfig.of(8));
        float[] xs = {1, 2, 3, 4};
        float[] ys = new float[4];
        Tensor x = Tensor.of(MemorySegment.ofArray(xs), DataType.F32, 1, 4);
        Tensor y = Tensor.of(MemorySegment.ofArray(ys), DataType.F32, 1, 4);
        recording.during = () -> {
            Tensor xCopy = recording.seen.get(recording.seen.size() - 3);
            Tensor yCopy = recording.seen.get(recording.seen.size() - 2);
            for (Tensor copy : new Tensor[] {xCopy, yCopy}) {
                assertTrue(copy.segment().isNative());
                assertFalse(copy.segment().isAccessibleBy(OTHER), "owned by the calling thread");
            }
            assertArrayEquals(new float[] {1, 2, 3, 4}, xCopy.toFloatArray());
            xCopy.copyFrom(new float[] {9, 9, 9, 9});
            yCopy.copyFrom(new float[] {5, 6, 7, 8});
        };
        kernel.forward(Pass.FORWARD_INFERENCE, x, y, null, null, null, null, 1);
        assertArrayEquals(new float[] {1, 2, 3, 4}, xs, "an input is not copied back");
        assertArrayEquals(new float[] {5, 6, 7, 8}, ys);
        recording.during = () -> {
            recording.seen.get(recording.seen.size() - 2).copyFrom(new float[] {0, 0, 0, 0});
            throw new IllegalStateException("from the kernel");
        };
        assertThrows(
                IllegalStateException.class,
                () -> kernel.forward(Pass.FORWARD_INFERENCE, x, y, null, null, null, null, 1));
        assertArrayEquals(new float[] {5, 6, 7, 8}, ys, "a call that failed writes nothing");
    }
}
