package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.panorm.internal.dnnl.Dnnl;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The FFM linker behaviour {@link OneDnnExecute} relies on, for ordinary and critical downcalls alike:
 * a segment passed as an extra argument keeps its arena open during the call, and a segment of a closed
 * arena stops the call before native code runs.
 */
class OneDnnExecuteTest {
    private static final MemorySegment NULL = MemorySegment.NULL;

    @BeforeAll
    static void loadOneDnn() {
        OneDnn.runtime(); // OneDnnExecute binds oneDNN's functions when it is initialized
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void anExtraArgumentKeepsItsArenaOpenWhileTheCallRuns(boolean critical) throws Exception {
        // usleep(useconds_t): a native call that takes a while, with the extra pointers appended.
        MemorySegment usleep = Linker.nativeLinker().defaultLookup().findOrThrow("usleep");
        MethodHandle sleep = OneDnnExecute.bind(
                usleep,
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT),
                critical ? new Linker.Option[] {Linker.Option.critical(false)} : new Linker.Option[0]);
        for (int attempt = 0; attempt < 10; attempt++) {
            Arena arena = Arena.ofShared();
            MemorySegment segment = arena.allocate(64);
            CountDownLatch linked = new CountDownLatch(1);
            AtomicReference<Throwable> failure = new AtomicReference<>();
            Thread sleeper = Thread.ofPlatform().start(() -> {
                try {
                    int warm = (int) sleep.invokeExact(0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
                    linked.countDown(); // the handle is linked: the next call starts at once
                    int status = (int)
                            sleep.invokeExact(200_000, NULL, segment, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
                    assertEquals(0, warm + status);
                } catch (Throwable e) {
                    failure.set(e);
                }
            });
            linked.await();
            Thread.sleep(20);
            try {
                arena.close();
            } catch (IllegalStateException e) {
                assertTrue(e.getMessage().contains("acquired"), e.toString());
                sleeper.join();
                assertNull(failure.get());
                arena.close(); // the call has returned
                return;
            }
            // The call had not started when the arena closed: then it must have been refused.
            sleeper.join();
            assertInstanceOf(IllegalStateException.class, failure.get());
        }
        fail("the sleeping call never started in time");
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void aTensorOfAClosedArenaStopsTheCallBeforeOneDnnRuns(boolean critical) {
        Arena arena = Arena.ofShared();
        Tensor closed = Tensor.allocate(arena, DataType.F32, 2, 3);
        arena.close();
        // With a null primitive oneDNN would return dnnl_invalid_arguments; the closed tensor stops it first.
        assertThrows(
                IllegalStateException.class,
                () -> OneDnnExecute.executeAndWait(
                        critical, NULL, NULL, 0, NULL, null, null, null, null, null, null, null, closed, null, null));
        try (Arena open = Arena.ofConfined()) {
            Tensor alive = Tensor.allocate(open, DataType.F32, 2, 3);
            assertEquals(
                    Dnnl.dnnl_invalid_arguments(),
                    OneDnnExecute.executeAndWait(
                            critical, NULL, NULL, 0, NULL, alive, alive, null, null, null, null, null, null, null,
                            null));
        }
        assertFalse(arena.scope().isAlive());
    }
}
