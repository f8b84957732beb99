package dev.panorm.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import dev.panorm.io.Npy;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Chunked runs give exactly what one call over the whole tensor gives, whatever the chunking. */
class PipelineTest {
    @TempDir
    Path temp;

    private static final int C = 96;

    private static float[] values(int n, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) (random.nextDouble() * 4 - 1 + (i / C) % 7);
        }
        return values;
    }

    /** The scalar backend computes each row alone, so chunked and whole results are bit-identical. */
    @ParameterizedTest(name = "rows {0}, chunk {1}, parallelism {2}")
    @CsvSource({
        "1000, 1, 1",
        "1000, 7, 1",
        "1000, 7, 3",
        "1000, 999, 2",
        "1000, 1000, 1",
        "1000, 5000, 2",
        "0, 3, 2",
        "37, 0, 1"
    })
    void chunkedRunsEqualOneCall(int rows, long chunkRows, int parallelism) {
        float[] x = values(rows * C, rows);
        try (Arena arena = Arena.ofShared();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), Backend.JAVA_SCALAR)) {
            Tensor gamma = Tensor.ofFloats(arena, values(C, 1), C);
            Tensor beta = Tensor.ofFloats(arena, values(C, 2), C);
            Tensor src = Tensor.ofFloats(arena, x, rows, C);
            Tensor whole = Tensor.allocate(arena, DataType.F32, rows, C);
            norm.forward(src, whole, gamma, beta);

            Tensor chunked = Tensor.allocate(arena, DataType.F32, rows, C);
            Pipeline pipeline = Pipeline.of(norm).parameters(gamma, beta).parallelism(parallelism);
            pipeline = chunkRows > 0 ? pipeline.chunkRows(chunkRows) : pipeline;
            AtomicLong reported = new AtomicLong(-1);
            Pipeline.Summary summary = pipeline.progress((done, total, nanos) -> {
                        assertEquals(rows, total);
                        assertTrue(done > reported.get() && done <= total, done + " after " + reported.get());
                        reported.set(done);
                    })
                    .run(src, chunked);

            assertArrayEquals(whole.toFloatArray(), chunked.toFloatArray());
            assertEquals(rows, summary.rows());
            assertEquals((long) rows * C * 8, summary.bytes());
            assertEquals(rows == 0 ? -1 : rows, reported.get());
        }
    }

    /** A file read a chunk at a time, by several workers each with its own buffer, gives what one call gives. */
    @ParameterizedTest(name = "chunk {0}, parallelism {1}, training {2}")
    @CsvSource({"7, 1, false", "7, 3, false", "64, 2, true", "5000, 2, false"})
    void aFileReadInChunksEqualsOneCall(long chunkRows, int parallelism, boolean training) throws IOException {
        int rows = 333;
        Path file = temp.resolve("x.npy");
        try (Arena arena = Arena.ofShared();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), Backend.JAVA_SCALAR)) {
            Tensor gamma = Tensor.ofFloats(arena, values(C, 1), C);
            Tensor beta = Tensor.ofFloats(arena, values(C, 2), C);
            Tensor src = Tensor.ofFloats(arena, values(rows * C, 5), 3, 111, C);
            Npy.write(file, src);
            Tensor whole = Tensor.allocate(arena, DataType.F32, 3, 111, C);
            Tensor wholeMean = Tensor.allocate(arena, DataType.F32, 3, 111);
            Tensor wholeVariance = Tensor.allocate(arena, DataType.F32, 3, 111);
            norm.forwardTraining(src, whole, gamma, beta, wholeMean, wholeVariance);

            Tensor chunked = Tensor.allocate(arena, DataType.F32, 3, 111, C);
            Tensor mean = Tensor.allocate(arena, DataType.F32, 3, 111);
            Tensor variance = Tensor.allocate(arena, DataType.F32, 3, 111);
            Pipeline pipeline = Pipeline.of(norm)
                    .parameters(gamma, beta)
                    .chunkRows(chunkRows)
                    .parallelism(parallelism);
            try (Npy.Reader reader = Npy.Reader.open(file)) {
                Pipeline.Summary summary = training
                        ? pipeline.runTraining(reader, chunked, mean, variance)
                        : pipeline.run(reader, chunked);
                assertEquals(rows, summary.rows());
            }
            assertArrayEquals(whole.toFloatArray(), chunked.toFloatArray());
            if (training) {
                assertArrayEquals(wholeMean.toFloatArray(), mean.toFloatArray());
                assertArrayEquals(wholeVariance.toFloatArray(), variance.toFloatArray());
            }
        }
    }

    @ParameterizedTest(name = "rms {0}, parallelism {1}")
    @CsvSource({"false, 1", "false, 3", "true, 1", "true, 2"})
    void chunkedTrainingRunsWriteTheStatisticsOfOneCall(boolean rms, int parallelism) {
        int rows = 100;
        LayerNormConfig config = (rms ? LayerNormConfig.rms(C) : LayerNormConfig.of(C)).withoutAffine();
        try (Arena arena = Arena.ofShared();
                LayerNorm norm = LayerNorm.create(config, Backend.JAVA_SCALAR)) {
            Tensor src = Tensor.ofFloats(arena, values(rows * C, 9), 4, 25, C);
            Tensor whole = Tensor.allocate(arena, DataType.F32, 4, 25, C);
            Tensor wholeMean = rms ? null : Tensor.allocate(arena, DataType.F32, 4, 25);
            Tensor wholeVariance = Tensor.allocate(arena, DataType.F32, 4, 25);
            norm.forwardTraining(src, whole, null, null, wholeMean, wholeVariance);

            Tensor chunked = Tensor.allocate(arena, DataType.F32, 4, 25, C);
            Tensor mean = rms ? null : Tensor.allocate(arena, DataType.F32, 4, 25);
            Tensor variance = Tensor.allocate(arena, DataType.F32, 4, 25);
            Pipeline.Summary summary =
                    Pipeline.of(norm).chunkRows(7).parallelism(parallelism).runTraining(src, chunked, mean, variance);
            assertEquals(rows, summary.rows());
            assertArrayEquals(whole.toFloatArray(), chunked.toFloatArray());
            assertArrayEquals(wholeVariance.toFloatArray(), variance.toFloatArray());
            if (!rms) {
                assertArrayEquals(wholeMean.toFloatArray(), mean.toFloatArray());
            }
            Tensor tooShort = Tensor.allocate(arena, DataType.F32, 99);
            assertTrue(assertThrows(
                            IllegalArgumentException.class,
                            () -> Pipeline.of(norm).runTraining(src, chunked, null, tooShort))
                    .getMessage()
                    .contains("one value for each of the 100 rows"));
        }
    }

    @Test
    void leadingAxesAreFlattenedIntoRowsAndPaddedRowsStayPadded() {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C).withoutAffine(), Backend.JAVA_SCALAR)) {
            float[] x = values(4 * 6 * C, 3);
            Tensor src = Tensor.ofFloats(arena, x, 4, 6, C);
            Tensor expected = Tensor.allocate(arena, DataType.F32, 4, 6, C);
            norm.forward(src, expected);
            // dst: rows padded to C + 5 floats
            Tensor dst = Tensor.of(
                    arena.allocate(4L * 6 * (C + 5) * Float.BYTES), DataType.F32, new long[] {4, 6, C}, new long[] {
                        6L * (C + 5), C + 5, 1
                    });
            Pipeline.of(norm).chunkRows(5).run(src, dst);
            for (int row = 0; row < 24; row++) {
                assertArrayEquals(copy(expected.rows(1, row, 1)), copy(dst.rows(1, row, 1)), "row " + row);
            }
        }
    }

    private static float[] copy(Tensor row) {
        float[] out = new float[(int) row.elementCount()];
        for (int i = 0; i < out.length; i++) {
            out[i] = row.segment().getAtIndex(ValueLayout.JAVA_FLOAT, i * row.stride(row.rank() - 1));
        }
        return out;
    }

    @Test
    void aSequenceOfChunksGoesToTheSinkInPlaceOrElsewhere() {
        try (Arena arena = Arena.ofShared();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C).withoutAffine(), Backend.JAVA_SCALAR)) {
            List<Tensor> batches = new ArrayList<>();
            List<float[]> expected = new ArrayList<>();
            for (int rows : new int[] {3, 1, 8, 5}) {
                Tensor batch = Tensor.ofFloats(arena, values(rows * C, rows), rows, C);
                Tensor result = Tensor.allocate(arena, DataType.F32, rows, C);
                norm.forward(batch, result);
                batches.add(batch);
                expected.add(result.toFloatArray());
            }
            List<Long> firstRows = new ArrayList<>();
            Pipeline.Summary summary = Pipeline.of(norm).run(batches, new Pipeline.Sink() {
                @Override
                public Tensor destination(long firstRow, Tensor chunk) {
                    return chunk;
                }

                @Override
                public void written(long firstRow, Tensor destination) {
                    firstRows.add(firstRow);
                }
            });
            assertEquals(List.of(0L, 3L, 4L, 12L), firstRows);
            assertEquals(17, summary.rows());
            for (int i = 0; i < batches.size(); i++) {
                assertArrayEquals(expected.get(i), batches.get(i).toFloatArray(), "batch " + i);
            }
            assertSame(batches.get(0), Pipeline.Sink.inPlace().destination(0, batches.get(0)));
        }
    }

    @Test
    void aFailingChunkStopsTheRunAndSurfaces() {
        try (Arena arena = Arena.ofShared();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C).withoutAffine(), Backend.JAVA_SCALAR)) {
            Tensor src = Tensor.ofFloats(arena, values(100 * C, 4), 100, C);
            Tensor readOnly = Tensor.of(arena.allocate(100L * C * 4).asReadOnly(), DataType.F32, 100, C);
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> Pipeline.of(norm).chunkRows(10).parallelism(3).run(src, readOnly));
            assertTrue(e.getMessage().contains("read-only"), e.getMessage());
        }
    }

    @Test
    void badArgumentsAreNamed() {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), Backend.JAVA_SCALAR)) {
            Pipeline pipeline = Pipeline.of(norm);
            assertEquals(
                    "chunkRows must be at least 1, got 0",
                    assertThrows(IllegalArgumentException.class, () -> pipeline.chunkRows(0))
                            .getMessage());
            assertEquals(
                    "parallelism must be at least 1, got 0",
                    assertThrows(IllegalArgumentException.class, () -> pipeline.parallelism(0))
                            .getMessage());
            Tensor src = Tensor.allocate(arena, DataType.F32, 4, C);
            assertTrue(assertThrows(
                            IllegalArgumentException.class,
                            () -> pipeline.run(src, Tensor.allocate(arena, DataType.F32, 5, C)))
                    .getMessage()
                    .contains("must have the shape of src"));
            // Rows of another length: fewer elements than one row made zero rows, and nothing ran.
            Tensor narrow = Tensor.allocate(arena, DataType.F32, 2, 3);
            assertEquals(
                    "src " + narrow + " must end with the normalized shape [" + C + "]",
                    assertThrows(IllegalArgumentException.class, () -> pipeline.run(narrow, narrow))
                            .getMessage());
            Tensor wide = Tensor.allocate(arena, DataType.F32, 2, 2 * C);
            assertThrows(IllegalArgumentException.class, () -> pipeline.run(wide, wide));
        }
    }

    /**
     * Overlaps between chunks, which no chunk's own call can see, are refused as one call on the whole tensors
     * refuses them, before any chunk is written: with one row per chunk, each chunk alone is disjoint.
     */
    @Test
    void overlapsBetweenChunksAreRefusedBeforeAnythingIsWritten() {
        int rows = 6;
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C).withoutAffine(), Backend.JAVA_SCALAR)) {
            Pipeline oneRowAtATime = Pipeline.of(norm).chunkRows(1);
            float[] x = values((rows + 1) * C, 9);
            Tensor buffer = Tensor.ofFloats(arena, x, rows + 1, C);
            Tensor src = buffer.rows(1, 0, rows);
            Tensor dstOneRowOn = buffer.rows(1, 1, rows);
            assertEquals(
                    "dst partially overlaps src; pass the same tensor for in-place operation, or disjoint memory",
                    assertThrows(IllegalArgumentException.class, () -> oneRowAtATime.run(src, dstOneRowOn))
                            .getMessage());
            assertArrayEquals(x, buffer.toFloatArray(), "nothing written");

            for (long rowStride : new long[] {0, C / 2}) { // rows on one another
                Tensor rowsOnOneAnother = Tensor.of(
                        arena.allocate(2L * rows * C * 4), DataType.F32, new long[] {rows, C}, new long[] {rowStride, 1
                        });
                String message = assertThrows(
                                IllegalArgumentException.class, () -> oneRowAtATime.run(src, rowsOnOneAnother))
                        .getMessage();
                assertTrue(message.contains("several indices address one element"), message);
            }

            LayerNorm training = LayerNorm.create(LayerNormConfig.of(C).withoutAffine(), Backend.JAVA_SCALAR);
            Tensor statistics = Tensor.allocate(arena, DataType.F32, rows + 1);
            Tensor mean = Tensor.of(statistics.segment(), DataType.F32, rows);
            Tensor varianceOneOn = Tensor.of(statistics.segment().asSlice(4), DataType.F32, rows);
            Tensor dst = Tensor.allocate(arena, DataType.F32, rows, C);
            assertEquals(
                    "mean overlaps variance; they must be disjoint",
                    assertThrows(
                                    IllegalArgumentException.class,
                                    () -> Pipeline.of(training).chunkRows(1).runTraining(src, dst, mean, varianceOneOn))
                            .getMessage());
            Tensor meanInDst = Tensor.of(dst.segment().asSlice(4L * (rows - 1) * C), DataType.F32, rows);
            assertEquals(
                    "mean overlaps dst; they must be disjoint",
                    assertThrows(
                                    IllegalArgumentException.class,
                                    () -> Pipeline.of(training)
                                            .chunkRows(1)
                                            .runTraining(
                                                    src, dst, meanInDst, Tensor.allocate(arena, DataType.F32, rows)))
                            .getMessage());
            assertArrayEquals(new float[rows * C], dst.toFloatArray(), "nothing written");
            training.close();
        }
    }

    /** A file's chunks are read into the reader's own memory, so only the outputs can overlap; they are checked whole. */
    @Test
    void aFileRunChecksItsOutputsWhole() throws IOException {
        int rows = 6;
        Path file = temp.resolve("x.npy");
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C).withoutAffine(), Backend.JAVA_SCALAR);
                Npy.Reader reader = openWritten(file, Tensor.ofFloats(arena, values(rows * C, 10), rows, C))) {
            Tensor rowsOnOneAnother = Tensor.of(
                    arena.allocate((long) rows * C * 4), DataType.F32, new long[] {rows, C}, new long[] {C / 2, 1});
            String message = assertThrows(
                            IllegalArgumentException.class,
                            () -> Pipeline.of(norm).chunkRows(1).run(reader, rowsOnOneAnother))
                    .getMessage();
            assertTrue(message.startsWith("dst ") && message.contains("several indices address one element"), message);

            Tensor statistics = Tensor.allocate(arena, DataType.F32, rows + 1);
            Tensor dst = Tensor.allocate(arena, DataType.F32, rows, C);
            assertEquals(
                    "mean overlaps variance; they must be disjoint",
                    assertThrows(
                                    IllegalArgumentException.class,
                                    () -> Pipeline.of(norm)
                                            .chunkRows(1)
                                            .runTraining(
                                                    reader,
                                                    dst,
                                                    Tensor.of(statistics.segment(), DataType.F32, rows),
                                                    Tensor.of(
                                                            statistics.segment().asSlice(4), DataType.F32, rows)))
                            .getMessage());
            assertArrayEquals(new float[rows * C], dst.toFloatArray(), "nothing written");
        }
    }

    private static Npy.Reader openWritten(Path file, Tensor values) throws IOException {
        Npy.write(file, values);
        return Npy.Reader.open(file);
    }

    /** A run starts no more workers than it has chunks, however large the parallelism. */
    @Test
    void aRunStartsNoMoreThreadsThanChunks() {
        ThreadMXBean threads = ManagementFactory.getThreadMXBean();
        try (Arena arena = Arena.ofShared();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C).withoutAffine(), Backend.JAVA_SCALAR)) {
            Tensor src = Tensor.ofFloats(arena, values(2 * C, 11), 2, C);
            threads.resetPeakThreadCount();
            int before = threads.getThreadCount();
            Pipeline.of(norm).chunkRows(1).parallelism(10_000).run(src, src);
            // Two workers; the slack is for threads the JVM may start meanwhile (compiler threads).
            int peak = threads.getPeakThreadCount();
            assertTrue(peak <= before + 2 + 8, "peak " + peak + " threads, " + before + " before the run");
        }
    }

    /** An interrupt of the calling thread stops a run before its next chunk, whatever the parallelism. */
    @ParameterizedTest
    @ValueSource(ints = {1, 3})
    void anInterruptStopsTheRun(int parallelism) {
        try (Arena arena = Arena.ofShared();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C).withoutAffine(), Backend.JAVA_SCALAR)) {
            Tensor src = Tensor.ofFloats(arena, values(1000 * C, 12), 1000, C);
            Tensor dst = Tensor.allocate(arena, DataType.F32, 1000, C);
            Pipeline pipeline = Pipeline.of(norm).chunkRows(1).parallelism(parallelism);
            Thread.currentThread().interrupt();
            try {
                assertEquals(
                        "interrupted while the pipeline ran",
                        assertThrows(IllegalStateException.class, () -> pipeline.run(src, dst))
                                .getMessage());
                assertTrue(Thread.currentThread().isInterrupted(), "the interrupt status stays set");
            } finally {
                Thread.interrupted();
            }
            if (parallelism == 1) {
                assertArrayEquals(new float[1000 * C], dst.toFloatArray(), "no chunk was normalized");
            }
        }
    }

    @Test
    void anyChunkRowsNormalizesEveryRow() {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C).withoutAffine(), Backend.JAVA_SCALAR)) {
            Tensor src = Tensor.ofFloats(arena, values(3 * C, 7), 3, C);
            Tensor whole = Tensor.allocate(arena, DataType.F32, 3, C);
            norm.forward(src, whole, null, null);
            for (long chunkRows : new long[] {1, 2, 3, 4, Long.MAX_VALUE / 2, Long.MAX_VALUE}) {
                Tensor chunked = Tensor.allocate(arena, DataType.F32, 3, C);
                Pipeline.Summary summary =
                        Pipeline.of(norm).chunkRows(chunkRows).run(src, chunked);
                assertEquals(3, summary.rows(), "chunkRows " + chunkRows);
                assertArrayEquals(whole.toFloatArray(), chunked.toFloatArray(), "chunkRows " + chunkRows);
            }
        }
    }
}
