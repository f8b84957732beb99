package dev.panorm;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Very long rows: an operation costs nothing until it is called. */
class LongRowsTest {
    /** Native memory reserved through automatic arenas, which count as direct memory (MaxDirectMemorySize). */
    private static long directMemory() {
        return ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class).stream()
                .filter(pool -> pool.getName().equals("direct")).mapToLong(BufferPoolMXBean::getMemoryUsed).sum();
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void creatingAnOperationAllocatesNothingPerChannel(Backend backend) {
        long c = 1 << 22; // 16 MiB of float32
        LayerNorm.create(LayerNormConfig.of(8), backend).close(); // loads oneDNN and the kernels' classes
        long before = directMemory();
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withoutAffine(), backend)) {
            long grown = directMemory() - before;
            assertTrue(grown < c, backend + " reserved " + grown + " bytes up front");
        }
    }
}
