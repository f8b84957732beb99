package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Tensors whose rows interleave in one buffer (x in the first half of each row, y in the second, as when a layer's
 * output is written next to its input) share no element, and the calls take them; {@link CallChecks#overlaps} still
 * says "may share" for every pair that does share an element.
 */
class InterleavedRowsTest {
    private static final int ROWS = 5;
    private static final int C = 48;

    private static MemorySegment buffer(Arena arena, float[] values) {
        return arena == null ? MemorySegment.ofArray(values) : arena.allocateFrom(ValueLayout.JAVA_FLOAT, values);
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void anOutputInTheGapsBetweenTheInputsRowsIsTaken(Backend backend) {
        assumeTrue(backend == Backend.JAVA || backend == Backend.JAVA_SCALAR || OneDnn.isAvailable());
        float[] x = TestData.gaussian(ROWS * C, 1, 2, 1);
        float[] gamma = TestData.gaussian(C, 1, 0.5, 2);
        float[] beta = TestData.gaussian(C, 0, 0.5, 3);
        float[] values = new float[ROWS * 2 * C];
        for (int row = 0; row < ROWS; row++) {
            System.arraycopy(x, row * C, values, row * 2 * C, C);
        }
        boolean heapToo = backend == Backend.JAVA || backend == Backend.JAVA_SCALAR;
        for (boolean onHeap : heapToo ? new boolean[] {false, true} : new boolean[] {false}) {
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), backend)) {
                MemorySegment rows = buffer(onHeap ? null : arena, values.clone());
                long[] shape = {ROWS, C};
                long[] strides = {2L * C, 1};
                Tensor in = Tensor.of(rows, DataType.F32, shape, strides);
                Tensor out = Tensor.of(rows.asSlice(4L * C), DataType.F32, shape, strides);
                norm.forward(in, out, Tensor.ofFloats(arena, gamma, C), Tensor.ofFloats(arena, beta, C));
                Accuracy.assertForward(backend, x, ROWS, C, gamma, beta, 1e-5, out.toFloatArray());
                assertArrayEquals(x, in.toFloatArray(), "the input's halves stay as they were");
            }
        }
    }

    /** Every element offset of {@code tensor}, in bytes from its start plus {@code start}. */
    private static Set<Long> elements(long start, long[] shape, long[] strides) {
        Set<Long> offsets = new HashSet<>();
        for (long i = 0; i < shape[0]; i++) {
            for (long j = 0; j < shape[1]; j++) {
                offsets.add(start + 4 * (i * strides[0] + j * strides[1]));
            }
        }
        return offsets;
    }

    @Test
    void tensorsThatShareAnElementAlwaysOverlap() {
        Random random = new Random(7);
        int found = 0;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment memory = arena.allocate(4096 * 4);
            for (int trial = 0; trial < 20_000; trial++) {
                long[][] shapes = new long[2][];
                long[][] strides = new long[2][];
                long[] starts = new long[2];
                Tensor[] tensors = new Tensor[2];
                for (int t = 0; t < 2; t++) {
                    shapes[t] = new long[] {1 + random.nextInt(4), 1 + random.nextInt(5)};
                    long inner = random.nextInt(3); // 0 (broadcast), 1 or 2
                    strides[t] = new long[] {random.nextInt(24), inner};
                    starts[t] = 4L * random.nextInt(48);
                    tensors[t] = Tensor.of(memory.asSlice(starts[t]), DataType.F32, shapes[t], strides[t]);
                }
                Set<Long> shared = elements(starts[0], shapes[0], strides[0]);
                shared.retainAll(elements(starts[1], shapes[1], strides[1]));
                boolean overlaps = CallChecks.overlaps(tensors[0], tensors[1]);
                if (!shared.isEmpty()) {
                    assertTrue(
                            overlaps,
                            () -> "shared elements but no overlap found: " + tensors[0] + " at " + starts[0] + ", "
                                    + tensors[1] + " at " + starts[1]);
                } else if (!overlaps
                        && starts[0] < starts[1] + tensors[1].byteExtent()
                        && starts[1] < starts[0] + tensors[0].byteExtent()) {
                    found++; // extents overlap, rows interleave
                }
            }
        }
        assertTrue(found > 100, "only " + found + " pairs with overlapping extents were told apart");
    }
}
