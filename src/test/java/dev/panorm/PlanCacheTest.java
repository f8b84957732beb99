package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

/** What the oneDNN kernel's plan cache keeps, per thread and in all. */
class PlanCacheTest {
    private static final int C = 64;

    private static PlanCache plansOf(LayerNorm norm) {
        return ((OneDnnKernel) norm.kernel()).plans();
    }

    /** A forward call's tensors on {@code rows} rows, as {@link #forward} passes them. */
    private static Call call(Arena arena, int rows) {
        return Call.forward(
                Pass.FORWARD_INFERENCE,
                Tensor.allocate(arena, DataType.F32, rows, C),
                Tensor.allocate(arena, DataType.F32, rows, C),
                Tensor.allocate(arena, DataType.F32, C),
                Tensor.allocate(arena, DataType.F32, C),
                null,
                null,
                rows);
    }

    private static void forward(LayerNorm norm, Arena arena, int rows) {
        Call call = call(arena, rows);
        norm.forward(call.src(), call.dst(), call.scale(), call.shift());
    }

    @Test
    void aThreadRemembersWhatOneDnnRejects() {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), Backend.ONEDNN)) {
            Tensor padded =
                    Tensors.padded(arena, DataType.F32, TestData.gaussian(3 * C, 0, 1, 1), new long[] {3, C}, 8);
            Tensor dst = Tensor.allocate(arena, DataType.F32, 3, C);
            Tensor scale = Tensor.allocate(arena, DataType.F32, C);
            Tensor shift = Tensor.allocate(arena, DataType.F32, C);
            norm.forward(padded, dst, scale, shift);
            assertNotEquals(Backend.ONEDNN, norm.lastBackend(), "oneDNN takes no padded rows");
            // The next call on this thread finds the rejection among its own entries, without the lock.
            long key = CallSignature.key(Pass.FORWARD_INFERENCE, 1, padded, dst, scale, shift, null, null, null, null);
            PlanCache.Recent recent = plansOf(norm)
                    .recent(key, Pass.FORWARD_INFERENCE, 1, padded, dst, scale, shift, null, null, null, null);
            assertNotNull(recent);
            assertNull(recent.context(), "a rejection has no context");
            assertEquals(0, plansOf(norm).allocatedPlans());
        }
    }

    @Test
    void evictionSparesAPlanInUseAndTakesOneUsedOnce() {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), Backend.ONEDNN)) {
            PlanCache plans = plansOf(norm);
            for (int rows = 1; rows <= PlanCache.MAX_PLANS; rows++) {
                forward(norm, arena, rows);
            }
            OneDnnPlan inUse = plans.plan(call(arena, 1), 1);
            OneDnnPlan usedOnce = plans.plan(call(arena, 2), 1);
            forward(norm, arena, 1);
            forward(norm, arena, PlanCache.MAX_PLANS + 1); // full: one plan must go
            assertFalse(inUse.retired, "the plan called again was evicted");
            assertTrue(usedOnce.retired, "the first plan used only once is the one to go");
            assertEquals(PlanCache.MAX_PLANS, plans.cachedPlans());
        }
    }
}
