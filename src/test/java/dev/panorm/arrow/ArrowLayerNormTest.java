package dev.panorm.arrow;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panorm.Backend;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import dev.panorm.TestAccess;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.memory.util.AssertionUtil;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.ValueVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.complex.ListVector;
import org.apache.arrow.vector.complex.impl.UnionFixedSizeListWriter;
import org.apache.arrow.vector.ipc.ArrowStreamReader;
import org.apache.arrow.vector.ipc.ArrowStreamWriter;
import org.apache.arrow.vector.ipc.message.ArrowFieldNode;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Embeddings built with Arrow's own API, normalized through their buffers on every backend and checked
 * against the double-precision reference; then every kind of bad input. Each test closes what it
 * allocates, and closing the allocator afterwards fails the test if a buffer leaked.
 */
class ArrowLayerNormTest {
    private static final double EPS = LayerNormConfig.DEFAULT_EPS;
    private static final FieldType FLOAT32 =
            FieldType.nullable(new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE));

    private BufferAllocator allocator;
    private Arena arena;

    @BeforeEach
    void open() {
        allocator = new RootAllocator();
        arena = Arena.ofConfined();
    }

    @AfterEach
    void close() {
        arena.close();
        allocator.close(); // throws if any buffer is still allocated
    }

    static Stream<Arguments> backendsAndShapes() {
        return Stream.of(Backend.values())
                .flatMap(backend -> Stream.of(
                        Arguments.of(backend, 1, 768), Arguments.of(backend, 7, 13), Arguments.of(backend, 33, 100)));
    }

    @ParameterizedTest(name = "{0}: {1} x {2}")
    @MethodSource("backendsAndShapes")
    void normalizesInPlace(Backend backend, int rows, int c) {
        float[] x = TestAccess.gaussian(rows * c, 1, 2, 1);
        float[] gamma = TestAccess.gaussian(c, 1, 0.5, 2);
        float[] beta = TestAccess.gaussian(c, 0, 1, 3);
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend);
                FixedSizeListVector vector = embeddings("embedding", x, c)) {
            ArrowLayerNorm.normalizeInPlace(
                    norm, vector, Tensor.ofFloats(arena, gamma, c), Tensor.ofFloats(arena, beta, c));
            TestAccess.assertForward(backend, x, rows, c, gamma, beta, EPS, values(vector));
            assertEquals(0, vector.getNullCount());
        }
    }

    @ParameterizedTest(name = "{0}: {1} x {2}")
    @MethodSource("backendsAndShapes")
    void normalizesIntoAnotherVector(Backend backend, int rows, int c) {
        float[] x = TestAccess.gaussian(rows * c, -3, 0.1, 4);
        float[] gamma = TestAccess.gaussian(c, 1, 0.5, 5);
        float[] beta = TestAccess.gaussian(c, 0, 1, 6);
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), backend);
                FixedSizeListVector input = embeddings("embedding", x, c);
                FixedSizeListVector output = emptyLike(c, rows)) {
            ArrowLayerNorm.normalizeInto(
                    norm, input, output, Tensor.ofFloats(arena, gamma, c), Tensor.ofFloats(arena, beta, c));
            TestAccess.assertForward(backend, x, rows, c, gamma, beta, EPS, values(output));
            assertArrayEquals(x, values(input), "the input is only read");
            assertEquals(0, output.getNullCount());
            assertEquals(0, ((Float4Vector) output.getDataVector()).getNullCount());
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void normalizesIntoANewVector(Backend backend) {
        int rows = 9;
        int c = 64;
        float[] x = TestAccess.gaussian(rows * c, 100, 3, 7);
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withoutAffine(), backend);
                FixedSizeListVector input = embeddings("embedding", x, c);
                FixedSizeListVector output = ArrowLayerNorm.normalizeIntoNew(norm, input, allocator, null, null)) {
            assertEquals(input.getField(), output.getField());
            assertEquals(rows, output.getValueCount());
            TestAccess.assertForward(backend, x, rows, c, null, null, EPS, values(output));
            assertArrayEquals(x, values(input));
        }
    }

    /**
     * Embeddings as a pipeline receives them: a record batch read from an Arrow IPC stream, whose vectors
     * are slices of one message buffer, with an id column beside them and some null rows.
     */
    @ParameterizedTest
    @EnumSource(Backend.class)
    void normalizesEmbeddingsReadFromAnArrowStream(Backend backend) throws IOException {
        int rows = 10;
        int c = 48;
        float[] x = TestAccess.gaussian(rows * c, 0.5, 4, 16);
        int[] nullRows = {2, 7};
        ByteArrayOutputStream stream = new ByteArrayOutputStream();
        try (IntVector ids = new IntVector("id", allocator);
                FixedSizeListVector embeddings = embeddings("embedding", x, c, nullRows)) {
            ids.allocateNew(rows);
            for (int row = 0; row < rows; row++) {
                ids.set(row, 1000 + row);
            }
            ids.setValueCount(rows);
            try (VectorSchemaRoot batch = VectorSchemaRoot.of(ids, embeddings);
                    ArrowStreamWriter writer = new ArrowStreamWriter(batch, null, stream)) {
                writer.writeBatch();
            }
        }
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withoutAffine(), backend);
                ArrowStreamReader reader =
                        new ArrowStreamReader(new ByteArrayInputStream(stream.toByteArray()), allocator)) {
            assertTrue(reader.loadNextBatch());
            VectorSchemaRoot batch = reader.getVectorSchemaRoot();
            FieldVector embeddings = batch.getVector("embedding");
            ArrowLayerNorm.normalizeInPlace(norm, embeddings, null, null);
            int[] valid = {0, 1, 3, 4, 5, 6, 8, 9};
            TestAccess.assertForward(
                    backend,
                    rowsOf(x, c, valid),
                    valid.length,
                    c,
                    null,
                    null,
                    EPS,
                    rowsOf(values((FixedSizeListVector) embeddings), c, valid));
            for (int row : nullRows) {
                assertTrue(embeddings.isNull(row));
            }
            assertEquals(1009, ((IntVector) batch.getVector("id")).get(9), "the neighbouring column is untouched");
        }
    }

    @Test
    void normalizesOverSeveralAxes() {
        int rows = 5;
        float[] x = TestAccess.gaussian(rows * 24, 0, 1, 8);
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(4, 6).withoutAffine(), Backend.JAVA_SCALAR);
                FixedSizeListVector vector = embeddings("embedding", x, 24)) {
            ArrowLayerNorm.normalizeInPlace(norm, vector, null, null);
            TestAccess.assertForward(Backend.JAVA_SCALAR, x, rows, 24, null, null, EPS, values(vector));
        }
    }

    @Test
    void emptyVectorsAreNormalizedToNothing() {
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(8).withoutAffine());
                FixedSizeListVector input = embeddings("embedding", new float[0], 8);
                FixedSizeListVector output = ArrowLayerNorm.normalizeIntoNew(norm, input, allocator, null, null)) {
            ArrowLayerNorm.normalizeInPlace(norm, input, null, null);
            assertEquals(0, output.getValueCount());
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void nullRowsStayNullWithZeroValues(Backend backend) {
        int rows = 6;
        int c = 16;
        float[] x = TestAccess.gaussian(rows * c, 0, 1, 9);
        int[] nullRows = {0, 3, 4};
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withoutAffine(), backend);
                FixedSizeListVector input = embeddings("embedding", x, c, nullRows);
                FixedSizeListVector copy = ArrowLayerNorm.normalizeIntoNew(norm, input, allocator, null, null)) {
            ArrowLayerNorm.normalizeInPlace(norm, input, null, null);
            for (FixedSizeListVector output : List.of(copy, input)) {
                Float4Vector values = (Float4Vector) output.getDataVector();
                for (int row = 0; row < rows; row++) {
                    boolean isNull = Arrays.binarySearch(nullRows, row) >= 0;
                    assertEquals(isNull, output.isNull(row), "row " + row);
                    for (int i = row * c; i < (row + 1) * c; i++) {
                        assertEquals(isNull, values.isNull(i), "value " + i);
                        if (isNull) {
                            assertEquals(
                                    0f, values.getDataBuffer().getFloat(4L * i), "value " + i + " under a null row");
                        }
                    }
                }
                int[] valid = {1, 2, 5};
                TestAccess.assertForward(
                        backend,
                        rowsOf(x, c, valid),
                        valid.length,
                        c,
                        null,
                        null,
                        EPS,
                        rowsOf(values(output), c, valid));
            }
        }
    }

    @Test
    void nullValueInANonNullRowIsRefusedAndNothingChanges() {
        int c = 8;
        float[] x = TestAccess.gaussian(4 * c, 0, 1, 10);
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withoutAffine());
                FixedSizeListVector vector = embeddings("embedding", x, c, 1)) {
            Float4Vector values = (Float4Vector) vector.getDataVector();
            values.setNull(2 * c + 5);
            values.setNull(1 * c + 3); // under a null row: fine
            float[] before = values(vector);
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class, () -> ArrowLayerNorm.normalizeInPlace(norm, vector, null, null));
            assertMessage(e, "'embedding'", "row 2", "value 5");
            assertArrayEquals(before, values(vector));
            assertTrue(values.isNull(2 * c + 5));
        }
    }

    @Test
    void refusesVectorsThatAreNotFixedSizeListsOfFloat32() {
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(4).withoutAffine());
                Float4Vector flat = new Float4Vector("flat", allocator);
                ListVector list = ListVector.empty("variable", allocator);
                FixedSizeListVector doubles = FixedSizeListVector.empty("doubles", 4, allocator);
                FixedSizeListVector childless = FixedSizeListVector.empty("childless", 4, allocator)) {
            doubles.addOrGetVector(FieldType.nullable(new ArrowType.FloatingPoint(FloatingPointPrecision.DOUBLE)));
            doubles.setValueCount(2);
            assertRefused(norm, flat, "'flat'", "Float4Vector", "FixedSizeListVector");
            assertRefused(norm, list, "'variable'", "ListVector", "FixedSizeListVector");
            assertRefused(norm, doubles, "'doubles'", "DOUBLE", "Float8Vector", "float32");
            assertRefused(norm, childless, "'childless'", "no child vector", "float32");
        }
    }

    @Test
    void refusesAListSizeOtherThanTheNormalizedSize() {
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(768).withoutAffine());
                FixedSizeListVector vector = embeddings("embedding", new float[2 * 512], 512)) {
            assertRefused(norm, vector, "'embedding'", "lists of 512", "768");
        }
    }

    @Test
    void refusesAnOutputOfTheWrongTypeSizeOrValueCount() {
        int c = 8;
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withoutAffine());
                FixedSizeListVector input = embeddings("embedding", TestAccess.gaussian(3 * c, 0, 1, 11), c);
                FixedSizeListVector doubles = FixedSizeListVector.empty("doubles", c, allocator);
                FixedSizeListVector shorter = emptyLike(c - 1, 3);
                FixedSizeListVector fewer = emptyLike(c, 2);
                Float8Vector flat = new Float8Vector("flat", allocator)) {
            doubles.addOrGetVector(FieldType.nullable(new ArrowType.FloatingPoint(FloatingPointPrecision.DOUBLE)));
            doubles.setValueCount(3);
            assertMessage(
                    assertThrows(
                            IllegalArgumentException.class,
                            () -> ArrowLayerNorm.normalizeInto(norm, input, doubles, null, null)),
                    "output 'doubles'",
                    "DOUBLE");
            assertMessage(
                    assertThrows(
                            IllegalArgumentException.class,
                            () -> ArrowLayerNorm.normalizeInto(norm, input, shorter, null, null)),
                    "output",
                    "lists of 7",
                    "8");
            assertMessage(
                    assertThrows(
                            IllegalArgumentException.class,
                            () -> ArrowLayerNorm.normalizeInto(norm, input, fewer, null, null)),
                    "output 'embedding' has 2 rows, input 'embedding' has 3");
            assertMessage(
                    assertThrows(
                            IllegalArgumentException.class,
                            () -> ArrowLayerNorm.normalizeInto(norm, input, flat, null, null)),
                    "output 'flat'",
                    "FixedSizeListVector");
        }
    }

    @Test
    void aFailedCallLeavesTheOutputAsItWas() {
        int c = 8;
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c));
                FixedSizeListVector input = embeddings("embedding", TestAccess.gaussian(3 * c, 0, 1, 12), c);
                FixedSizeListVector output = emptyLike(c, 3)) {
            Tensor wrongScale = Tensor.ofFloats(arena, new float[c - 1], c - 1);
            assertThrows(
                    IllegalArgumentException.class,
                    () -> ArrowLayerNorm.normalizeInto(norm, input, output, wrongScale, wrongScale));
            assertEquals(3, output.getNullCount(), "no validity written");
            assertArrayEquals(new float[3 * c], values(output));
        }
    }

    @Test
    void refusesABufferSmallerThanItsValueCountNeeds() {
        int c = 16;
        int rows = 4;
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withoutAffine());
                FixedSizeListVector vector = emptyLike(c, rows);
                ArrowBuf validity = allocator.buffer(8);
                ArrowBuf data = allocator.buffer(64)) {
            validity.setOne(0, 8);
            // loadFieldBuffers trusts the node's length: the child now claims 64 values over 64 bytes.
            vector.getDataVector().loadFieldBuffers(new ArrowFieldNode(rows * c, 0), List.of(validity, data));
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class, () -> ArrowLayerNorm.normalizeInPlace(norm, vector, null, null));
            assertMessage(e, "the values buffer of input 'embedding' holds " + data.capacity() + " bytes", "needs 256");
        }
    }

    @Test
    void refusesReleasedBuffers() {
        int c = 8;
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withoutAffine())) {
            FixedSizeListVector vector = embeddings("embedding", TestAccess.gaussian(2 * c, 0, 1, 13), c);
            ArrowBuf data = ((Float4Vector) vector.getDataVector()).getDataBuffer();
            data.getReferenceManager().release(data.refCnt()); // freed, but the vector still points at it
            IllegalStateException e = assertThrows(
                    IllegalStateException.class, () -> ArrowLayerNorm.normalizeInPlace(norm, vector, null, null));
            assertMessage(e, "the values buffer of input 'embedding' has been released");
            // The vector cannot be closed now (its child's buffers would be released twice): free what is left.
            for (ArrowBuf buffer :
                    List.of(vector.getValidityBuffer(), ((Float4Vector) vector.getDataVector()).getValidityBuffer())) {
                if (buffer.refCnt() > 0) {
                    buffer.getReferenceManager().release(buffer.refCnt());
                }
            }
        }
    }

    @Test
    void refusesAClosedAllocator() {
        assumeTrue(AssertionUtil.ASSERT_ENABLED, "Arrow tells a closed allocator only with -ea");
        int c = 8;
        BufferAllocator closed = allocator.newChildAllocator("closed", 0, Long.MAX_VALUE);
        closed.close();
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withoutAffine());
                FixedSizeListVector input = embeddings("embedding", TestAccess.gaussian(2 * c, 0, 1, 14), c)) {
            IllegalStateException e = assertThrows(
                    IllegalStateException.class,
                    () -> ArrowLayerNorm.normalizeIntoNew(norm, input, closed, null, null));
            assertMessage(e, "allocator 'closed', which is closed");
        }
    }

    /**
     * An allocator closed while its vectors still hold buffers: Arrow marks it closed, reports the leak, and
     * (with assertions enabled, as in these tests) refuses every later operation on it, panorm's included.
     * Its buffers can then never be released, so this test leaks them from an allocator of its own.
     */
    @Test
    void refusesVectorsOfAnAllocatorClosedUnderThem() {
        assumeTrue(AssertionUtil.ASSERT_ENABLED, "Arrow tells a closed allocator only with -ea");
        int c = 8;
        BufferAllocator leaking = new RootAllocator();
        FixedSizeListVector vector = FixedSizeListVector.empty("orphan", c, leaking);
        vector.addOrGetVector(FLOAT32);
        vector.setValueCount(2);
        assertThrows(IllegalStateException.class, leaking::close);
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withoutAffine())) {
            IllegalStateException e = assertThrows(
                    IllegalStateException.class, () -> ArrowLayerNorm.normalizeInPlace(norm, vector, null, null));
            assertMessage(e, "input 'orphan' belongs to allocator 'ROOT', which is closed");
        }
    }

    @Test
    void aClosedVectorHasNoRowsLeftToNormalize() {
        int c = 8;
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c).withoutAffine());
                FixedSizeListVector input = embeddings("embedding", TestAccess.gaussian(2 * c, 0, 1, 15), c)) {
            FixedSizeListVector output = emptyLike(c, 2);
            output.close();
            assertMessage(
                    assertThrows(
                            IllegalArgumentException.class,
                            () -> ArrowLayerNorm.normalizeInto(norm, input, output, null, null)),
                    "output 'embedding' has 0 rows");
        }
    }

    @Test
    void refusesNullArguments() {
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(8).withoutAffine());
                FixedSizeListVector vector = embeddings("embedding", new float[8], 8)) {
            assertThrows(NullPointerException.class, () -> ArrowLayerNorm.normalizeInPlace(null, vector, null, null));
            assertThrows(NullPointerException.class, () -> ArrowLayerNorm.normalizeInPlace(norm, null, null, null));
            assertThrows(
                    NullPointerException.class, () -> ArrowLayerNorm.normalizeInto(norm, vector, null, null, null));
            assertThrows(
                    NullPointerException.class, () -> ArrowLayerNorm.normalizeIntoNew(norm, vector, null, null, null));
        }
    }

    /** The core library must load without Arrow: only dev.panorm.arrow may import it. */
    @Test
    void onlyTheArrowPackageImportsArrow() throws IOException {
        Path main = Path.of("src/main/java/dev/panorm");
        Path arrow = main.resolve("arrow");
        try (Stream<Path> files = Files.walk(main)) {
            List<Path> offenders = files.filter(f -> f.toString().endsWith(".java") && !f.startsWith(arrow))
                    .filter(f -> read(f).contains("org.apache.arrow"))
                    .toList();
            assertEquals(List.of(), offenders);
        }
    }

    /**
     * Rows of float32 embeddings written through Arrow's list writer; {@code nullRows} are left null with garbage under
     * them.
     */
    private FixedSizeListVector embeddings(String name, float[] x, int c, int... nullRows) {
        FixedSizeListVector vector = FixedSizeListVector.empty(name, c, allocator);
        vector.addOrGetVector(FLOAT32);
        int rows = x.length / c;
        UnionFixedSizeListWriter writer = vector.getWriter();
        writer.allocate();
        for (int row = 0; row < rows; row++) {
            writer.setPosition(row);
            writer.startList();
            for (int i = 0; i < c; i++) {
                writer.writeFloat4(x[row * c + i]);
            }
            writer.endList();
        }
        writer.setValueCount(rows);
        for (int row : nullRows) {
            vector.setNull(row);
            for (int i = row * c; i < (row + 1) * c; i++) {
                ((Float4Vector) vector.getDataVector()).set(i, i % 2 == 0 ? Float.NaN : 1e30f);
            }
        }
        return vector;
    }

    /** An allocated, all-null {@code FixedSizeList<Float32>[c]} of {@code rows} rows, named "embedding". */
    private FixedSizeListVector emptyLike(int c, int rows) {
        FixedSizeListVector vector = FixedSizeListVector.empty("embedding", c, allocator);
        vector.addOrGetVector(FLOAT32);
        vector.setValueCount(rows);
        return vector;
    }

    private static float[] values(FixedSizeListVector vector) {
        Float4Vector values = (Float4Vector) vector.getDataVector();
        float[] out = new float[vector.getValueCount() * vector.getListSize()];
        for (int i = 0; i < out.length; i++) {
            out[i] = values.getDataBuffer().getFloat(4L * i); // also under nulls, which get() refuses
        }
        return out;
    }

    private static float[] rowsOf(float[] x, int c, int[] rows) {
        float[] out = new float[rows.length * c];
        for (int i = 0; i < rows.length; i++) {
            System.arraycopy(x, rows[i] * c, out, i * c, c);
        }
        return out;
    }

    private static void assertRefused(LayerNorm norm, ValueVector vector, String... words) {
        for (Executable call : List.<Executable>of(
                () -> ArrowLayerNorm.normalizeInPlace(norm, vector, null, null),
                () -> ArrowLayerNorm.normalizeIntoNew(norm, vector, null, null, null)
                        .close())) {
            assertMessage(assertThrows(IllegalArgumentException.class, call), words);
        }
    }

    private static void assertMessage(Exception e, String... words) {
        for (String word : words) {
            assertTrue(e.getMessage().contains(word), () -> "'" + word + "' missing from: " + e.getMessage());
        }
        assertFalse(e.getMessage().isBlank());
    }

    private static String read(Path file) {
        try {
            return Files.readString(file);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }
}
