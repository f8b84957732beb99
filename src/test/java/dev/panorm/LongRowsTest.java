package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Very long rows: an operation costs nothing until it is called, and a size limit is named where one exists. */
class LongRowsTest {
    private static final long THREE_BILLION = 3_000_000_000L;

    /**
     * A tensor of {@code shape} over address space nobody allocated: enough for checks that never read it, and
     * a crash (not a silent pass) if something did.
     */
    private static Tensor unbacked(long address, long... shape) {
        long elements = 1;
        for (long dim : shape) {
            elements *= dim;
        }
        return Tensor.of(MemorySegment.ofAddress(address).reinterpret(elements * Float.BYTES), DataType.F32, shape);
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void anOperationOnRowsOfThreeBillionElementsCanBeCreated(Backend backend) {
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(THREE_BILLION).withoutAffine(), backend)) {
            assertEquals(backend, norm.backend());
        }
    }

    @Test
    void theVectorKernelsNameTheirRowLimit() {
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(THREE_BILLION).withoutAffine(), Backend.JAVA)) {
            Tensor x = unbacked(1L << 44, 1, THREE_BILLION);
            assertEquals(
                    "java:scalar (the vector kernels take rows of at most 2147483647 elements)",
                    norm.implementation(x, x, null, null));
        }
    }

    @ParameterizedTest
    @EnumSource(
            value = Backend.class,
            names = {"JAVA", "JAVA_SCALAR"})
    void theJavaBackwardPassNamesItsRowLimitBeforeReadingAnything(Backend backend) {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm =
                        LayerNorm.create(LayerNormConfig.of(THREE_BILLION).withoutAffine(), backend)) {
            Tensor x = unbacked(1L << 44, 1, THREE_BILLION);
            Tensor dy = unbacked(2L << 44, 1, THREE_BILLION);
            Tensor mean = Tensor.allocate(arena, DataType.F32, 1);
            Tensor variance = Tensor.allocate(arena, DataType.F32, 1);
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class, () -> norm.backwardData(dy, x, mean, variance, null, dy));
            assertEquals(
                    "the Java kernels' backward pass takes rows of at most 1073741760 elements (its per-channel "
                            + "sums are Java arrays), and these have 3000000000; oneDNN's backward refuses rows this"
                            + " long as well (from 2^29 elements)",
                    e.getMessage());
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void theFusedForwardNamesItsRowLimitBeforeReadingAnything(Backend backend) {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm =
                        LayerNorm.create(LayerNormConfig.of(THREE_BILLION).withoutAffine(), backend)) {
            Tensor x = unbacked(1L << 44, 1, THREE_BILLION);
            Tensor q = Tensor.of(
                    MemorySegment.ofAddress(2L << 44).reinterpret(THREE_BILLION), DataType.S8, 1, THREE_BILLION);
            Tensor scales = Tensor.allocate(arena, DataType.F32, 1);
            // int8 output runs in the Java kernels on every backend, so no backend is worth suggesting.
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> norm.forwardQuantized(x, null, null, null, q, null, null, scales));
            assertEquals(
                    "the Java kernels' residual add and int8 output take rows of at most 1073741760 elements (a row"
                            + " is kept in a Java array), and these have 3000000000; int8 output runs only there, and"
                            + " oneDNN refuses rows this long as well",
                    e.getMessage());
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void aRowOfTwoMillionElementsStaysWithinTheBound(Backend backend) {
        // oneDNN's own statistics, summed in float32, took 2.7 times the bound here; it now gets them from Java.
        int c = 1 << 21;
        float[] x = new float[c];
        SplittableRandom random = new SplittableRandom(21);
        for (int i = 0; i < c; i++) {
            x[i] = (float) (3 + random.nextGaussian());
        }
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withoutAffine(), backend)) {
            Tensor src = Tensor.ofFloats(arena, x, 1, c);
            Tensor dst = Tensor.allocate(arena, DataType.F32, 1, c);
            Tensor mean = Tensor.allocate(arena, DataType.F32, 1);
            Tensor variance = Tensor.allocate(arena, DataType.F32, 1);
            norm.forwardTraining(src, dst, null, null, mean, variance);
            Accuracy.assertForward(backend, x, 1, c, null, null, 1e-5, dst.toFloatArray());
            Accuracy.assertStatistics(backend, x, 1, c, mean.toFloatArray(), variance.toFloatArray());
            if (backend == Backend.ONEDNN) {
                assertTrue(
                        norm.implementation(src, dst, null, null).startsWith("java:statistics + "),
                        norm.implementation(src, dst, null, null));
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void theBackwardPassOnARowOfTwoMillionElementsStaysWithinTheBound(Backend backend) {
        int c = 1 << 21;
        SplittableRandom random = new SplittableRandom(22);
        float[] x = new float[c];
        float[] dy = new float[c];
        float[] gamma = new float[c];
        for (int i = 0; i < c; i++) {
            x[i] = (float) (3 + random.nextGaussian());
            dy[i] = (float) random.nextGaussian();
            gamma[i] = (float) (1 + random.nextGaussian() / 4);
        }
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withShift(false), backend)) {
            Tensor src = Tensor.ofFloats(arena, x, 1, c);
            Tensor dst = Tensor.allocate(arena, DataType.F32, 1, c);
            Tensor scale = Tensor.ofFloats(arena, gamma, c);
            Tensor mean = Tensor.allocate(arena, DataType.F32, 1);
            Tensor variance = Tensor.allocate(arena, DataType.F32, 1);
            norm.forwardTraining(src, dst, scale, null, mean, variance);
            Tensor diffDst = Tensor.ofFloats(arena, dy, 1, c);
            Tensor diffSrc = Tensor.allocate(arena, DataType.F32, 1, c);
            Tensor diffScale = Tensor.allocate(arena, DataType.F32, c);
            norm.backward(diffDst, src, mean, variance, scale, diffSrc, diffScale, null);
            Accuracy.assertBackward(
                    backend,
                    dy,
                    x,
                    1,
                    c,
                    mean.toFloatArray(),
                    variance.toFloatArray(),
                    gamma,
                    1e-5,
                    false,
                    diffSrc.toFloatArray(),
                    diffScale.toFloatArray(),
                    null);
        }
    }

    /** Native memory reserved through automatic arenas, which count as direct memory (MaxDirectMemorySize). */
    private static long directMemory() {
        return ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class).stream()
                .filter(pool -> pool.getName().equals("direct"))
                .mapToLong(BufferPoolMXBean::getMemoryUsed)
                .sum();
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
