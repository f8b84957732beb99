package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Tensors on the heap, which the Java backends take: contiguous ones run through native copies ({@link
 * OwnedMemory.HeapCopies}), and every operation gives bit for bit what it gives on the same values in an arena, in
 * place too; inputs stay as they were, read-only ones included.
 */
class HeapMemoryTest {
    private static final int ROWS = 5;

    /** One set of tensors, on the heap or in an arena. */
    private static final class Operands {
        /** How many tensors {@link #all} holds. */
        static final int COUNT = 15;

        final List<Tensor> all = new ArrayList<>();
        final Tensor x;
        final Tensor r;
        final Tensor dy;
        final Tensor ds;
        final Tensor y;
        final Tensor dx;
        final Tensor gamma;
        final Tensor beta;
        final Tensor dGamma;
        final Tensor dBeta;
        final Tensor mean;
        final Tensor variance;
        final Tensor q;
        final Tensor scales;
        final Tensor readOnlyX;

        /** Every tensor in {@code arena}, or on the heap when it is null. */
        Operands(Arena arena, DataType type, int c) {
            this(arena, type, ROWS, c, -1);
        }

        /** Every tensor in {@code arena} (null: on the heap) but the one at {@code onHeap} in {@link #all}. */
        Operands(Arena arena, DataType type, int rows, int c, int onHeap) {
            int n = rows * c;
            x = Tensors.makeOrOnHeap(at(arena, 0, onHeap), type, TestData.gaussian(n, 3, 2, 1), rows, c);
            r = Tensors.makeOrOnHeap(at(arena, 1, onHeap), type, TestData.gaussian(n, 0, 1, 2), rows, c);
            dy = Tensors.makeOrOnHeap(at(arena, 2, onHeap), type, TestData.gaussian(n, 0, 1, 3), rows, c);
            ds = Tensors.makeOrOnHeap(at(arena, 3, onHeap), type, TestData.gaussian(n, 0, 1, 4), rows, c);
            y = Tensors.makeOrOnHeap(at(arena, 4, onHeap), type, new float[n], rows, c);
            dx = Tensors.makeOrOnHeap(at(arena, 5, onHeap), type, new float[n], rows, c);
            gamma = Tensors.makeOrOnHeap(at(arena, 6, onHeap), type, TestData.gaussian(c, 1, 0.5, 5), c);
            beta = Tensors.makeOrOnHeap(at(arena, 7, onHeap), type, TestData.gaussian(c, 0, 0.5, 6), c);
            dGamma = Tensors.makeOrOnHeap(at(arena, 8, onHeap), type, new float[c], c);
            dBeta = Tensors.makeOrOnHeap(at(arena, 9, onHeap), type, new float[c], c);
            mean = Tensors.makeOrOnHeap(at(arena, 10, onHeap), DataType.F32, new float[rows], rows);
            variance = Tensors.makeOrOnHeap(at(arena, 11, onHeap), DataType.F32, new float[rows], rows);
            Arena qArena = at(arena, 12, onHeap);
            q = qArena == null ? Tensors.onHeap(DataType.S8, rows, c) : Tensor.allocate(qArena, DataType.S8, rows, c);
            scales = Tensors.makeOrOnHeap(at(arena, 13, onHeap), DataType.F32, new float[rows], rows);
            Tensor source = Tensors.makeOrOnHeap(at(arena, 14, onHeap), type, TestData.gaussian(n, -1, 3, 7), rows, c);
            readOnlyX = Tensor.of(source.segment().asReadOnly(), type, rows, c);
            all.addAll(List.of(x, r, dy, ds, y, dx, gamma, beta, dGamma, dBeta, mean, variance, q, scales, readOnlyX));
        }

        /** Where the tensor at {@code index} in {@link #all} lies: null (the heap) at {@code onHeap}. */
        private static Arena at(Arena arena, int index, int onHeap) {
            return index == onHeap ? null : arena;
        }

        /** Every operation in turn, each on the results of the ones before. */
        void run(LayerNorm norm) {
            run(tensors -> norm);
        }

        /** {@link #run(LayerNorm)}, each call on the operation {@code normFor} gives for the call's tensors. */
        void run(Function<List<Tensor>, LayerNorm> normFor) {
            normFor.apply(List.of(x, y, gamma, beta, mean, variance))
                    .forwardTraining(x, y, gamma, beta, mean, variance);
            normFor.apply(List.of(dy, x, mean, variance, gamma, dx, dGamma, dBeta))
                    .backward(dy, x, mean, variance, gamma, dx, dGamma, dBeta);
            normFor.apply(List.of(readOnlyX, y, gamma, beta)).forward(readOnlyX, y, gamma, beta);
            normFor.apply(List.of(x, r, y, gamma, beta, mean, variance)) // the sum into x, in place
                    .forwardResidualTraining(x, r, null, x, y, gamma, beta, mean, variance);
            normFor.apply(List.of(dy, ds, x, mean, variance, gamma, dx, dGamma, dBeta))
                    .backwardResidual(dy, ds, x, mean, variance, gamma, dx, dGamma, dBeta);
            normFor.apply(List.of(x, r, beta, q, gamma, scales))
                    .forwardQuantized(x, r, beta, null, q, gamma, beta, scales);
            normFor.apply(List.of(y, gamma, beta)).forward(y, y, gamma, beta); // in place
        }
    }

    @ParameterizedTest
    @EnumSource(
            value = Backend.class,
            names = {"JAVA", "JAVA_SCALAR"})
    void everyOperationGivesOnTheHeapWhatItGivesInAnArena(Backend backend) {
        for (DataType type : new DataType[] {DataType.F32, DataType.BF16, DataType.F16}) {
            for (int c : new int[] {1, 37, 768}) {
                try (Arena arena = Arena.ofConfined();
                        LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend)) {
                    Operands heap = new Operands(null, type, c);
                    Operands inArena = new Operands(arena, type, c);
                    float[] readOnlyBefore = heap.readOnlyX.toFloatArray();
                    heap.run(norm);
                    inArena.run(norm);
                    for (int i = 0; i < heap.all.size(); i++) {
                        assertArrayEquals(
                                inArena.all.get(i).toFloatArray(),
                                heap.all.get(i).toFloatArray(),
                                backend + " " + type + " c=" + c + ", tensor " + i);
                    }
                    assertArrayEquals(readOnlyBefore, heap.readOnlyX.toFloatArray());
                }
            }
        }
    }

    /**
     * AUTO runs every call with a tensor on the heap in the Java kernels, whichever tensor it is (statistics and
     * gradients included) and however large the call, since oneDNN reads native memory only: bit for bit what {@link
     * Backend#JAVA} gives with every tensor in an arena.
     */
    @Test
    void autoRunsEveryCallWithATensorOnTheHeapInJava() {
        int rows = 256;
        int c = 1024;
        LayerNormConfig config = LayerNormConfig.of(c);
        try (Arena arena = Arena.ofConfined();
                LayerNorm auto = LayerNorm.create(config, Backend.AUTO);
                LayerNorm java = LayerNorm.create(config, Backend.JAVA)) {
            Operands allNative = new Operands(arena, DataType.F32, rows, c, -1);
            String path = auto.implementation(allNative.x, allNative.y, allNative.gamma, allNative.beta);
            assumeFalse(path.startsWith("auto: java"), "this machine's AUTO runs the call in Java: " + path);
            for (int onHeap = 0; onHeap < Operands.COUNT; onHeap++) {
                // the calls that take the heap tensor in Java, the others on AUTO's path for native memory
                Operands expected = new Operands(arena, DataType.F32, rows, c, -1);
                Tensor heapsPlace = expected.all.get(onHeap);
                expected.run(tensors -> tensors.stream().anyMatch(t -> t == heapsPlace) ? java : auto);
                Operands mixed = new Operands(arena, DataType.F32, rows, c, onHeap);
                mixed.run(auto);
                for (int i = 0; i < Operands.COUNT; i++) {
                    assertArrayEquals(
                            expected.all.get(i).toFloatArray(),
                            mixed.all.get(i).toFloatArray(),
                            "tensor " + onHeap + " on the heap: tensor " + i);
                }
            }
        }
    }

    /** Every element of a strided tensor's extent before the call, gaps included; the call fills the elements. */
    private static final float GAP = 7.25f;

    /**
     * A tensor of {@code shape} and {@code strides} over an array of {@code length} floats: on the heap (arena null)
     * or in {@code arena}, holding {@code values} or else {@link #GAP} everywhere.
     */
    private static Tensor strided(Arena arena, float[] values, int length, long[] shape, long[] strides) {
        float[] content = values != null ? values.clone() : new float[length];
        if (values == null) {
            java.util.Arrays.fill(content, GAP);
        }
        MemorySegment segment =
                arena == null ? MemorySegment.ofArray(content) : arena.allocateFrom(ValueLayout.JAVA_FLOAT, content);
        return Tensor.of(segment, DataType.F32, shape, strides);
    }

    /** Which floats of {@code tensor}'s extent are gaps, for a tensor of one or two axes. */
    private static boolean[] gaps(Tensor tensor) {
        boolean[] gaps = new boolean[(int) (tensor.byteExtent() / Float.BYTES)];
        java.util.Arrays.fill(gaps, true);
        long rows = tensor.rank() == 2 ? tensor.dim(0) : 1;
        long rowStride = tensor.rank() == 2 ? tensor.stride(0) : 0;
        int last = tensor.rank() - 1;
        for (long row = 0; row < rows; row++) {
            for (long i = 0; i < tensor.dim(last); i++) {
                gaps[(int) (row * rowStride + i * tensor.stride(last))] = false;
            }
        }
        return gaps;
    }

    private static float[] extent(Tensor tensor) {
        float[] values = new float[(int) (tensor.byteExtent() / Float.BYTES)];
        MemorySegment.copy(tensor.segment(), ValueLayout.JAVA_FLOAT, 0, values, 0, values.length);
        return values;
    }

    /**
     * Strided tensors on the heap go through copies in their layout: rows with gaps between them reach the vector
     * kernels, rows with gaps inside reach the scalar ones, and both give bit for bit what the same layouts give in an
     * arena, while the gaps of every output keep what the caller had there.
     */
    @ParameterizedTest
    @EnumSource(
            value = Backend.class,
            names = {"JAVA", "JAVA_SCALAR"})
    void stridedHeapTensorsGoThroughCopiesInTheirLayout(Backend backend) {
        int c = 40;
        float[] x = TestData.gaussian(2 * ROWS * c, 1, 2, 8);
        float[] dy = TestData.gaussian(2 * ROWS * c, 0, 1, 9);
        float[] gamma = TestData.gaussian(c, 1, 0.5, 10);
        float[] beta = TestData.gaussian(c, 0, 0.5, 11);
        long[] shape = {ROWS, c};
        for (long[] strides : new long[][] {{2L * c, 1}, {2L * c, 2}}) {
            List<float[]> onHeap = new ArrayList<>();
            List<float[]> inArena = new ArrayList<>();
            List<boolean[]> gaps = new ArrayList<>();
            try (Arena arena = Arena.ofConfined();
                    LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend)) {
                for (Arena memory : new Arena[] {null, arena}) {
                    Tensor xs = strided(memory, x, x.length, shape, strides);
                    Tensor dys = strided(memory, dy, dy.length, shape, strides);
                    Tensor gammas = strided(memory, gamma, c, new long[] {c}, new long[] {1});
                    Tensor betas = strided(memory, beta, c, new long[] {c}, new long[] {1});
                    Tensor y = strided(memory, null, x.length, shape, strides);
                    Tensor dx = strided(memory, null, x.length, shape, strides);
                    Tensor mean = strided(memory, null, ROWS, new long[] {ROWS}, new long[] {1});
                    Tensor variance = strided(memory, null, ROWS, new long[] {ROWS}, new long[] {1});
                    Tensor dGamma = strided(memory, null, c, new long[] {c}, new long[] {1});
                    Tensor dBeta = strided(memory, null, c, new long[] {c}, new long[] {1});
                    norm.forwardTraining(xs, y, gammas, betas, mean, variance);
                    norm.backward(dys, xs, mean, variance, gammas, dx, dGamma, dBeta);
                    List<float[]> results = memory == null ? onHeap : inArena;
                    for (Tensor output : List.of(y, dx, mean, variance, dGamma, dBeta)) {
                        results.add(extent(output));
                        if (memory == null) {
                            gaps.add(gaps(output));
                        }
                    }
                    if (memory == null && strides[1] == 1 && backend == Backend.JAVA) {
                        String implementation = norm.implementation(xs, y, gammas, betas);
                        assertTrue(implementation.startsWith("java:vector "), implementation);
                    }
                }
            }
            for (int i = 0; i < onHeap.size(); i++) {
                String what = backend + " strides " + java.util.Arrays.toString(strides) + ", output " + i;
                assertArrayEquals(inArena.get(i), onHeap.get(i), what);
                float[] written = onHeap.get(i);
                for (int e = 0; e < written.length; e++) {
                    if (gaps.get(i)[e]) {
                        assertEquals(GAP, written[e], what + ": the gaps keep what the caller had there, at " + e);
                    }
                }
            }
        }
    }

    @Test
    void overlapsOnOneArrayAreFoundAndSeparateArraysDoNotOverlap() {
        int c = 16;
        float[] array = TestData.gaussian(4 * c, 0, 1, 9);
        MemorySegment whole = MemorySegment.ofArray(array);
        Tensor src = Tensor.of(whole, DataType.F32, 3, c);
        Tensor shifted = Tensor.of(whole.asSlice(4L * c), DataType.F32, 3, c);
        Tensor readOnlySrc = Tensor.of(whole.asReadOnly(), DataType.F32, 3, c);
        Tensor elsewhere = Tensor.of(MemorySegment.ofArray(new float[4 * c]), DataType.F32, 3, c);
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withoutAffine(), Backend.JAVA)) {
            for (Tensor input : new Tensor[] {src, readOnlySrc}) {
                IllegalArgumentException thrown =
                        assertThrows(IllegalArgumentException.class, () -> norm.forward(input, shifted));
                assertTrue(thrown.getMessage().contains("dst partially overlaps src"), thrown.getMessage());
            }
            norm.forward(src, elsewhere); // the same offsets in another array
            norm.forward(readOnlySrc, elsewhere);
            float[] expected = elsewhere.toFloatArray();
            norm.forward(src, src); // in place
            assertArrayEquals(expected, src.toFloatArray());
        }
    }

    /**
     * Virtual threads borrow copies for a call and give them back (a thread per request would otherwise leave fresh
     * native memory to the collector on every call): many at once, each on heap tensors of its own size, get what the
     * same call gives in an arena, bit for bit, and a second call on the same thread too.
     */
    @Test
    void virtualThreadsBorrowCopiesAndGetWhatAnArenaGives() throws Exception {
        int c = 768;
        int threads = 64;
        LayerNormConfig config = LayerNormConfig.of(c).withoutAffine();
        try (Arena arena = Arena.ofShared();
                LayerNorm norm = LayerNorm.create(config, Backend.JAVA)) {
            List<float[]> inputs = new ArrayList<>();
            List<float[]> expected = new ArrayList<>();
            for (int i = 0; i < threads; i++) {
                int rows = 1 + i % 9;
                float[] values = TestData.gaussian(rows * c, i, 1 + i % 3, 100 + i);
                Tensor y = Tensor.allocate(arena, DataType.F32, rows, c);
                norm.forward(Tensor.ofFloats(arena, values, rows, c), y);
                inputs.add(values);
                expected.add(y.toFloatArray());
            }
            List<Thread> started = new ArrayList<>();
            List<float[][]> results = new ArrayList<>();
            for (int i = 0; i < threads; i++) {
                float[] values = inputs.get(i);
                float[][] result = new float[2][values.length];
                results.add(result);
                started.add(Thread.ofVirtual().start(() -> {
                    int rows = values.length / c;
                    Tensor x = Tensor.of(MemorySegment.ofArray(values.clone()), DataType.F32, rows, c);
                    for (float[] out : result) {
                        norm.forward(x, Tensor.of(MemorySegment.ofArray(out), DataType.F32, rows, c));
                        Thread.yield(); // let another virtual thread take the carrier between the two calls
                    }
                }));
            }
            for (Thread thread : started) {
                thread.join();
            }
            for (int i = 0; i < threads; i++) {
                assertArrayEquals(expected.get(i), results.get(i)[0], "thread " + i + ", first call");
                assertArrayEquals(expected.get(i), results.get(i)[1], "thread " + i + ", second call");
            }
        }
    }

    /**
     * A call whose heap tensors need more copies than a thread keeps (64 MiB) runs in parts of rows that fit, in the
     * vector kernels, and gives what the same call gives in an arena, bit for bit; one that writes parameter gradients
     * (sums over every row), or whose rows cannot be viewed a part at a time, runs on the heap in the scalar kernels.
     */
    @Test
    void aCallWithMoreHeapThanAThreadKeepsForCopiesRunsInParts() {
        int c = 4096;
        int rows = (int) (OwnedMemory.HeapCopies.KEPT_BYTES / 2 / (4L * c)) + 1; // x and y: just over the limit
        int n = rows * c;
        float[] values = TestData.gaussian(n, 1, 2, 10);
        float[] residual = TestData.gaussian(n, 0, 1, 11);
        LayerNormConfig config = LayerNormConfig.of(c).withoutAffine();
        try (Arena arena = Arena.ofConfined();
                LayerNorm java = LayerNorm.create(config, Backend.JAVA);
                LayerNorm auto = LayerNorm.create(config, Backend.AUTO);
                LayerNorm scalar = LayerNorm.create(config, Backend.JAVA_SCALAR)) {
            Tensor heapX = Tensor.of(MemorySegment.ofArray(values.clone()), DataType.F32, rows, c);
            Tensor heapY = Tensor.of(MemorySegment.ofArray(new float[n]), DataType.F32, rows, c);
            Tensor x = Tensor.ofFloats(arena, values, rows, c);
            Tensor y = Tensor.allocate(arena, DataType.F32, rows, c);
            // forward: two parts, x and y copied
            java.forward(x, y);
            for (LayerNorm norm : List.of(java, auto)) {
                heapY.segment().fill((byte) 0);
                norm.forward(heapX, heapY);
                assertArrayEquals(y.toFloatArray(), heapY.toFloatArray(), "the vector kernels' result, in parts");
            }
            String implementation = java.implementation(heapX, heapY, null, null);
            assertTrue(implementation.startsWith("java:vector "), implementation);
            assertTrue(implementation.endsWith(" in parts of at most 64 MiB"), implementation);
            Tensor scalarY = Tensor.allocate(arena, DataType.F32, rows, c);
            scalar.forward(x, scalarY);
            assertFalse(
                    Arrays.equals(y.toFloatArray(), scalarY.toFloatArray()),
                    "the scalar kernels give other bits, so the comparison above tells the two apart");

            // the fused training pass, s over r, statistics on the heap too: four tensors of rows, four parts or more
            Tensor heapR = Tensor.of(MemorySegment.ofArray(residual.clone()), DataType.F32, rows, c);
            Tensor heapMean = Tensor.of(MemorySegment.ofArray(new float[rows]), DataType.F32, rows);
            Tensor heapVariance = Tensor.of(MemorySegment.ofArray(new float[rows]), DataType.F32, rows);
            Tensor r = Tensor.ofFloats(arena, residual, rows, c);
            Tensor mean = Tensor.allocate(arena, DataType.F32, rows);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
            java.forwardResidualTraining(x, r, null, r, y, null, null, mean, variance);
            java.forwardResidualTraining(heapX, heapR, null, heapR, heapY, null, null, heapMean, heapVariance);
            assertArrayEquals(r.toFloatArray(), heapR.toFloatArray(), "s");
            assertArrayEquals(y.toFloatArray(), heapY.toFloatArray(), "y");
            assertArrayEquals(mean.toFloatArray(), heapMean.toFloatArray(), "mean");
            assertArrayEquals(variance.toFloatArray(), heapVariance.toFloatArray(), "variance");

            // backward with parameter gradients: on the heap, in the scalar kernels
            LayerNormConfig affine = LayerNormConfig.of(c);
            try (LayerNorm javaAffine = LayerNorm.create(affine, Backend.JAVA);
                    LayerNorm scalarAffine = LayerNorm.create(affine, Backend.JAVA_SCALAR)) {
                Tensor gamma = Tensor.ofFloats(arena, TestData.gaussian(c, 1, 0.5, 12), c);
                Tensor dGamma = Tensor.allocate(arena, DataType.F32, c);
                Tensor dBeta = Tensor.allocate(arena, DataType.F32, c);
                Tensor heapDGamma = Tensor.of(MemorySegment.ofArray(new float[c]), DataType.F32, c);
                Tensor heapDBeta = Tensor.of(MemorySegment.ofArray(new float[c]), DataType.F32, c);
                scalarAffine.backward(x, r, mean, variance, gamma, y, dGamma, dBeta); // dy: x, x: s
                javaAffine.backward(heapX, heapR, heapMean, heapVariance, gamma, heapY, heapDGamma, heapDBeta);
                assertArrayEquals(y.toFloatArray(), heapY.toFloatArray(), "dx, the scalar kernels' result");
                assertArrayEquals(dGamma.toFloatArray(), heapDGamma.toFloatArray(), "dgamma");
                assertArrayEquals(dBeta.toFloatArray(), heapDBeta.toFloatArray(), "dbeta");
            }

            // leading axes not evenly strided (transposed): on the heap, in the scalar kernels
            long[] shape = {3, rows / 3, c};
            long[] transposed = {c, 3L * c, 1};
            Tensor heapT = Tensor.of(MemorySegment.ofArray(values.clone()), DataType.F32, shape, transposed);
            Tensor heapTY = Tensor.of(MemorySegment.ofArray(new float[n]), DataType.F32, shape, transposed);
            assertEquals(
                    "java:scalar (heap tensors of more than 64 MiB in one call, whose leading axes are not evenly"
                            + " strided, run on the heap as they are)",
                    java.implementation(heapT, heapTY, null, null));
            Tensor t = Tensors.make(arena, DataType.F32, heapT.toFloatArray(), shape, transposed);
            Tensor ty = Tensors.make(arena, DataType.F32, new float[3 * (rows / 3) * c], shape, transposed);
            scalar.forward(t, ty);
            java.forward(heapT, heapTY);
            assertArrayEquals(ty.toFloatArray(), heapTY.toFloatArray(), "the scalar kernels' result");
        }
    }
}
