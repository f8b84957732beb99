package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.ref.WeakReference;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Native resources of the oneDNN backend: freed by {@code close()}, bounded by the plan cache, and
 * released by the Cleaner when a caller forgets to close. Each test holds the kernel's plan cache, not
 * the {@code LayerNorm}, so it can count the plans after the {@code LayerNorm} is unreachable.
 */
class LifecycleTest {
    private static final int C = 64;

    /** Runs forward on {@code rows} rows: a new row count builds a new plan. */
    private static void forward(LayerNorm norm, Arena arena, int rows) {
        Tensor src = Tensor.ofFloats(arena, TestData.gaussian(rows * C, 0, 1, rows), rows, C);
        norm.forward(
                src,
                Tensor.allocate(arena, DataType.F32, rows, C),
                Tensor.allocate(arena, DataType.F32, C),
                Tensor.allocate(arena, DataType.F32, C));
    }

    private static PlanCache plansOf(LayerNorm norm) {
        return ((OneDnnKernel) norm.kernel()).plans();
    }

    @Test
    void closeFreesEveryPlanAndLaterCallsFailCleanly() {
        LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), Backend.ONEDNN);
        PlanCache plans = plansOf(norm);
        try (Arena arena = Arena.ofConfined()) {
            for (int rows = 1; rows <= 5; rows++) {
                forward(norm, arena, rows);
            }
            assertEquals(5, plans.allocatedPlans());
            norm.close();
            assertEquals(0, plans.allocatedPlans());
            assertThrows(IllegalStateException.class, () -> forward(norm, arena, 1));
            norm.close(); // idempotent
        }
    }

    @Test
    void thePlanCacheIsBoundedAndEvictedPlansAreFreed() {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), Backend.ONEDNN)) {
            PlanCache plans = plansOf(norm);
            for (int rows = 1; rows <= 3 * PlanCache.MAX_PLANS; rows++) {
                forward(norm, arena, rows);
                assertTrue(
                        plans.cachedPlans() <= PlanCache.MAX_PLANS,
                        plans.cachedPlans() + " plans cached after " + rows + " row counts");
            }
            // Between calls nothing is in flight, so every evicted plan went to the reaper, which frees it.
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (plans.allocatedPlans() > PlanCache.MAX_PLANS) {
                assertTrue(System.nanoTime() < deadline, plans.allocatedPlans() + " plans still allocated after 10 s");
                Thread.onSpinWait();
            }
            assertEquals(PlanCache.MAX_PLANS, plans.allocatedPlans());
        }
    }

    @Test
    void plansPileUpNoFurtherThanTheCacheWhileTheReaperFallsBehind() {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), Backend.ONEDNN)) {
            PlanCache plans = plansOf(norm);
            Runnable release = PlanCache.holdReaper(); // as a reaper of the lowest priority behind a busy caller
            try {
                for (int rows = 1; rows <= 4 * PlanCache.MAX_PLANS; rows++) {
                    forward(norm, arena, rows);
                    assertTrue(
                            plans.allocatedPlans() <= 2 * PlanCache.MAX_PLANS + 1,
                            plans.allocatedPlans() + " plans allocated after " + rows + " row counts");
                }
            } finally {
                release.run(); // before close(), which waits for the reaper
            }
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (plans.allocatedPlans() > PlanCache.MAX_PLANS) {
                assertTrue(System.nanoTime() < deadline, plans.allocatedPlans() + " plans still allocated after 10 s");
                Thread.onSpinWait();
            }
        }
    }

    /**
     * The reaper is one thread for every {@code LayerNorm}: while it frees other caches' plans, {@code close()} frees
     * what it was handed and has not begun. It waited for the reaper instead, behind 4 busy {@code LayerNorm}s for 0.9 to
     * 2.8 s (QA).
     */
    @Test
    void closeFreesPlansTheBusyReaperHasNotBegun() {
        LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), Backend.ONEDNN);
        PlanCache plans = plansOf(norm);
        Runnable release = PlanCache.holdReaper(); // as a reaper busy with other LayerNorms' plans
        try (Arena arena = Arena.ofConfined()) {
            for (int rows = 1; rows <= PlanCache.MAX_PLANS + 10; rows++) {
                forward(norm, arena, rows);
            }
            assertTrue(plans.allocatedPlans() > PlanCache.MAX_PLANS, "no plan waits for the held reaper");
            CompletableFuture<Void> closing = CompletableFuture.runAsync(norm::close);
            assertDoesNotThrow(() -> closing.get(10, TimeUnit.SECONDS), "close() waited for the reaper");
            assertEquals(0, plans.allocatedPlans());
        } finally {
            release.run();
        }
    }

    /**
     * Callers that keep one {@code LayerNorm} busy, so that some call is always in flight: plans dropped meanwhile are
     * freed once the calls that entered before have ended. They waited for a moment with no call in flight, and grew
     * without bound (8 threads: RSS +170 MiB a second).
     */
    @Test
    void plansDroppedWhileCallsOverlapAreFreed() {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), Backend.ONEDNN)) {
            PlanCache plans = plansOf(norm);
            CallCounter calls = norm.calls();
            long other = calls.enter(); // another caller's call, which ends only after the next one began
            long next = -1;
            try {
                for (int rows = 1; rows <= 4 * PlanCache.MAX_PLANS; rows++) {
                    next = calls.enter();
                    forward(norm, arena, rows);
                    calls.exit(other);
                    other = next;
                    next = -1;
                    assertTrue( // the cache, the reaper's backlog (at most 63 plans and the last batch handed to it),
                            // and a few plans waiting for the calls to end; without epochs, 256 after 256 row counts
                            plans.allocatedPlans() <= 2 * PlanCache.MAX_PLANS + 8,
                            plans.allocatedPlans() + " plans allocated after " + rows + " row counts");
                }
            } finally { // else close() waits for them
                calls.exit(other);
                if (next >= 0) {
                    calls.exit(next);
                }
            }
        }
    }

    @Test
    void contextsOfThreadsThatEndedAreReusedNotMultiplied() throws Exception {
        try (Arena arena = Arena.ofShared();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), Backend.ONEDNN)) {
            PlanCache plans = plansOf(norm);
            for (int i = 0; i < 200; i++) { // a thread per request, as with virtual threads
                Thread request = Thread.ofVirtual().start(() -> forward(norm, arena, 3));
                request.join();
            }
            assertEquals(1, plans.allocatedPlans());
            assertTrue(
                    plans.allocatedContexts() <= 2,
                    plans.allocatedContexts() + " contexts for 200 threads, one at a time");
        }
    }

    @Test
    void theCleanerReleasesLayerNormsNobodyClosed() throws InterruptedException {
        List<PlanCache> caches = forgottenLayerNorms(20);
        for (PlanCache plans : caches) {
            assertEquals(1, plans.allocatedPlans());
        }
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (caches.stream().anyMatch(plans -> plans.allocatedPlans() != 0)) {
            assertTrue(
                    System.nanoTime() < deadline,
                    "the Cleaner did not free the plans of unreachable LayerNorms in 30 s");
            System.gc();
            Thread.sleep(20);
        }
    }

    @Test
    void aSecondCloseReturnsOnlyOnceTheFirstHasFreedEverything() throws Exception {
        LayerNorm norm = LayerNorm.create(LayerNormConfig.of(4096).withoutAffine(), Backend.ONEDNN);
        PlanCache plans = plansOf(norm);
        try (Arena arena = Arena.ofShared()) {
            Tensor x = Tensor.allocate(arena, DataType.F32, 4, 4096);
            norm.forward(x, x);
            assertEquals(1, plans.allocatedPlans());
            // Every other element of 2048 rows: oneDNN takes no such layout, so the scalar kernel runs the call, long
            // enough (hundreds of milliseconds) to close twice meanwhile.
            Tensor padded = Tensor.allocate(arena, DataType.F32, 2048, 8192);
            Tensor strided = Tensor.of(padded.segment(), DataType.F32, new long[] {2048, 4096}, new long[] {8192, 2});
            CompletableFuture<Void> call = CompletableFuture.runAsync(() -> norm.forward(strided, strided));
            while (norm.callsInFlight() == 0 && !call.isDone()) {
                Thread.onSpinWait();
            }
            Thread first = Thread.ofPlatform().start(norm::close);
            while (first.getState() != Thread.State.TIMED_WAITING && first.isAlive()) {
                Thread.onSpinWait(); // the first close waits for the call in State.run
            }
            norm.close();
            assertEquals(0, plans.allocatedPlans(), "the second close returned before the plans were freed");
            call.join();
            first.join();
        }
    }

    @Test
    void aPlanWaitingForTheBuilderKeepsNoneOfTheCallersMemory() throws Exception {
        int rows = 128;
        int c = 1024; // float32 forward calls of this size go to oneDNN, and AUTO's Java kernel runs them meanwhile
        LayerNormConfig config = LayerNormConfig.of(c).withoutAffine();
        try (Arena arena = Arena.ofConfined()) {
            assumeTrue(KernelWarmup.await(config, true, Tensor.allocate(arena, DataType.F32, rows, c)));
        }
        Runnable release = PlanCache.holdBuilder();
        try (LayerNorm norm = LayerNorm.create(config, Backend.AUTO)) {
            WeakReference<Tensor> tensor = callOnAnAutomaticArena(norm, rows, c);
            assertTrue(((AutoKernel) norm.kernel()).oneDnn().plans().buildingInBackground());
            for (int i = 0; i < 200 && tensor.get() != null; i++) {
                System.gc();
                Thread.sleep(10);
            }
            assertNull(tensor.get(), "the build waiting for the builder keeps the caller's tensor, and its memory");
        } finally {
            release.run();
        }
    }

    /** One call on a new signature, on a tensor nothing refers to afterwards but the returned reference. */
    private static WeakReference<Tensor> callOnAnAutomaticArena(LayerNorm norm, int rows, int c) {
        Tensor x = Tensor.allocate(Arena.ofAuto(), DataType.F32, rows, c);
        norm.forward(x, x);
        assertEquals(Backend.JAVA, norm.lastBackend(), "ran in Java while the plan waits");
        return new WeakReference<>(x);
    }

    /** Creates LayerNorms, uses each once, and drops them without closing; returns their plan caches. */
    private static List<PlanCache> forgottenLayerNorms(int count) {
        List<PlanCache> caches = new ArrayList<>();
        try (Arena arena = Arena.ofConfined()) {
            for (int i = 0; i < count; i++) {
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), Backend.ONEDNN);
                forward(norm, arena, 3);
                caches.add(plansOf(norm));
            }
        }
        return caches;
    }
}
