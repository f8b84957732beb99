package dev.panorm.spark;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panorm.Backend;
import dev.panorm.LayerNormConfig;
import dev.panorm.TestAccess;
import java.util.ArrayList;
import java.util.List;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.ml.linalg.VectorUDT;
import org.apache.spark.ml.linalg.Vectors;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.Metadata;
import org.apache.spark.sql.types.MetadataBuilder;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@link SparkLayerNorm} in one local session ({@code local[2]}, the driver's JVM as executor), on small
 * DataFrames in several partitions, checked against the double-precision reference within the documented
 * tolerance. {@code SparkClusterTest} covers executors in JVMs of their own.
 */
class SparkLayerNormTest {
    private static final int C = 24;
    private static final int ROWS = 30;
    private static final int PARTITIONS = 3;
    private static final double EPS = LayerNormConfig.DEFAULT_EPS;

    private static SparkSession spark;

    @BeforeAll
    static void start() {
        spark = SparkSession.builder()
                .master("local[2]")
                .appName("SparkLayerNormTest")
                .config("spark.ui.enabled", "false")
                .config("spark.sql.shuffle.partitions", "2")
                .getOrCreate();
        spark.sparkContext().setLogLevel("WARN");
    }

    @AfterAll
    static void stop() {
        if (spark != null) {
            spark.stop();
        }
    }

    /** Row r's embedding: seeded Gaussian values, a different mean and scale per row. */
    private static float[] embedding(int r, int c) {
        return TestAccess.gaussian(c, r - 10, 1 + r % 7, 1000 + r);
    }

    private static Dataset<Row> frame(StructType schema, List<Row> rows) {
        return spark.createDataFrame(
                new org.apache.spark.api.java.JavaSparkContext(spark.sparkContext()).parallelize(rows, PARTITIONS),
                schema);
    }

    private static StructType schema(DataType embedding) {
        return new StructType()
                .add("id", DataTypes.IntegerType)
                .add("emb", embedding)
                .add("name", DataTypes.StringType);
    }

    private static Float[] boxed(float[] values) {
        Float[] boxed = new Float[values.length];
        for (int i = 0; i < values.length; i++) {
            boxed[i] = values[i];
        }
        return boxed;
    }

    private static Double[] boxedDoubles(float[] values) {
        Double[] boxed = new Double[values.length];
        for (int i = 0; i < values.length; i++) {
            boxed[i] = (double) values[i];
        }
        return boxed;
    }

    private static float[] floats(Row row, String column) {
        List<Float> list = row.getList(row.fieldIndex(column));
        float[] values = new float[list.size()];
        for (int i = 0; i < values.length; i++) {
            values[i] = list.get(i);
        }
        return values;
    }

    private static Vector vector(float[] values) {
        double[] doubles = new double[values.length];
        for (int i = 0; i < values.length; i++) {
            doubles[i] = values[i];
        }
        return Vectors.dense(doubles);
    }

    private static float[] floats(Vector vector) {
        double[] values = vector.toArray();
        float[] floats = new float[values.length];
        for (int i = 0; i < floats.length; i++) {
            floats[i] = (float) values[i];
        }
        return floats;
    }

    /** Every third row null: the rest normalized as the reference says, the other columns as they were. */
    private static void assertNormalized(
            List<Row> output, float[] gamma, float[] beta, boolean rms, String column, boolean vector) {
        assertEquals(ROWS, output.size());
        for (Row row : output) {
            int id = row.getInt(row.fieldIndex("id"));
            assertEquals("name " + id, row.getString(row.fieldIndex("name")), "a neighbouring column is untouched");
            if (id % 3 == 0) {
                assertTrue(row.isNullAt(row.fieldIndex(column)), "row " + id + " stays null");
                continue;
            }
            float[] actual;
            if (vector) {
                double[] values = ((Vector) row.getAs(column)).toArray();
                actual = new float[values.length];
                for (int i = 0; i < values.length; i++) {
                    actual[i] = (float) values[i];
                }
            } else {
                actual = floats(row, column);
            }
            TestAccess.assertForward(Backend.AUTO, embedding(id, C), 1, C, gamma, beta, EPS, rms, actual);
        }
    }

    @Test
    void floatArraysInPlaceWithNulls() {
        List<Row> rows = new ArrayList<>();
        for (int r = 0; r < ROWS; r++) {
            rows.add(RowFactory.create(r, r % 3 == 0 ? null : embedding(r, C), "name " + r));
        }
        Dataset<Row> df = frame(schema(DataTypes.createArrayType(DataTypes.FloatType, false)), rows);
        float[] gamma = TestAccess.gaussian(C, 1, 0.5, 1);
        float[] beta = TestAccess.gaussian(C, 0, 0.5, 2);

        // Chunks of 4 rows, so that partitions hold several chunks and a partial one.
        Dataset<Row> out = SparkLayerNorm.of(LayerNormConfig.of(C))
                .gamma(gamma)
                .beta(beta)
                .chunkRows(4)
                .apply(df, "emb", "emb");

        assertArrayEquals(df.schema().fieldNames(), out.schema().fieldNames(), "the column stays in its place");
        assertEquals(PARTITIONS, out.rdd().getNumPartitions());
        assertNormalized(out.collectAsList(), gamma, beta, false, "emb", false);
    }

    @Test
    void doubleArraysIntoANewColumnKeepTheInput() {
        List<Row> rows = new ArrayList<>();
        for (int r = 0; r < ROWS; r++) {
            rows.add(RowFactory.create(r, r % 3 == 0 ? null : boxedDoubles(embedding(r, C)), "name " + r));
        }
        Dataset<Row> df = frame(schema(DataTypes.createArrayType(DataTypes.DoubleType, true)), rows);

        Dataset<Row> out = SparkLayerNorm.of(LayerNormConfig.of(C)).apply(df, "emb", "normalized");

        assertArrayEquals(
                new String[] {"id", "emb", "name", "normalized"}, out.schema().fieldNames());
        assertEquals(
                DataTypes.createArrayType(DataTypes.FloatType, false),
                out.schema().apply("normalized").dataType());
        List<Row> output = out.collectAsList();
        assertNormalized(output, null, null, false, "normalized", false);
        for (Row row : output) {
            int id = row.getInt(0);
            if (id % 3 != 0) {
                List<Double> input = row.getList(1);
                assertEquals((double) embedding(id, C)[5], input.get(5), "the input column is untouched");
            }
        }
    }

    @Test
    void floatArraysIntoANewColumnKeepTheInput() {
        List<Row> rows = new ArrayList<>();
        for (int r = 0; r < ROWS; r++) {
            rows.add(RowFactory.create(r, r % 3 == 0 ? null : embedding(r, C), "name " + r));
        }
        // No null values possible: the input travels typed beside the values instead of in the other columns.
        Dataset<Row> df = frame(schema(DataTypes.createArrayType(DataTypes.FloatType, false)), rows);

        Dataset<Row> out = SparkLayerNorm.of(LayerNormConfig.of(C)).apply(df, "emb", "name");

        assertArrayEquals(new String[] {"id", "emb", "name"}, out.schema().fieldNames(), "name is replaced");
        for (Row row : out.collectAsList()) {
            int id = row.getInt(0);
            if (id % 3 == 0) {
                assertTrue(row.isNullAt(1) && row.isNullAt(2));
            } else {
                assertArrayEquals(embedding(id, C), floats(row, "emb"), "the input column is untouched");
                TestAccess.assertForward(Backend.AUTO, embedding(id, C), 1, C, null, null, EPS, floats(row, "name"));
            }
        }
    }

    @Test
    void vectorsStayVectors() {
        List<Row> rows = new ArrayList<>();
        for (int r = 0; r < ROWS; r++) {
            float[] x = embedding(r, C);
            double[] values = new double[C];
            for (int i = 0; i < C; i++) {
                values[i] = x[i];
            }
            // Row 1 sparse: vector_to_array densifies it.
            Vector vector = r == 1 ? Vectors.dense(values).toSparse() : Vectors.dense(values);
            rows.add(RowFactory.create(r, r % 3 == 0 ? null : vector, "name " + r));
        }
        Dataset<Row> df = frame(schema(new VectorUDT()), rows);
        float[] gamma = TestAccess.gaussian(C, 1, 0.5, 3);

        Dataset<Row> out = SparkLayerNorm.of(LayerNormConfig.of(C).withShift(false))
                .gamma(gamma)
                .apply(df, "emb", "emb");

        assertEquals(new VectorUDT(), out.schema().apply("emb").dataType());
        assertNormalized(out.collectAsList(), gamma, null, false, "emb", true);
    }

    @Test
    void rmsOverTwoAxesWithPreciseStatistics() {
        List<Row> rows = new ArrayList<>();
        for (int r = 0; r < ROWS; r++) {
            rows.add(RowFactory.create(r, r % 3 == 0 ? null : boxed(embedding(r, C)), "name " + r));
        }
        Dataset<Row> df = frame(schema(DataTypes.createArrayType(DataTypes.FloatType, true)), rows);
        float[] gamma = TestAccess.gaussian(C, 1, 0.5, 4);
        LayerNormConfig config =
                LayerNormConfig.rms(4, 6).withEps(EPS).withShift(false).withPreciseStatistics(true);

        Dataset<Row> out = SparkLayerNorm.of(config).gamma(gamma).apply(df, "emb", "emb");

        assertNormalized(out.collectAsList(), gamma, null, true, "emb", false);
    }

    @Test
    void theOnlyColumn() {
        List<Row> rows = List.of(RowFactory.create((Object) embedding(1, C)), RowFactory.create((Object) null));
        StructType schema = new StructType().add("emb", DataTypes.createArrayType(DataTypes.FloatType, false));
        Dataset<Row> out =
                SparkLayerNorm.of(LayerNormConfig.of(C)).apply(spark.createDataFrame(rows, schema), "emb", "emb");

        List<Row> output = out.collectAsList();
        TestAccess.assertForward(Backend.AUTO, embedding(1, C), 1, C, null, null, EPS, floats(output.get(0), "emb"));
        assertTrue(output.get(1).isNullAt(0));
    }

    /** Row r's residual: of another scale than the embedding, so that the sum is not a multiple of either. */
    private static float[] residual(int r) {
        return TestAccess.gaussian(C, 3 - r % 5, 0.25 + r % 3, 2000 + r);
    }

    /** The float32 sum the fused operation normalizes. */
    private static float[] sum(float[] x, float[] r) {
        float[] s = new float[x.length];
        for (int i = 0; i < s.length; i++) {
            s[i] = x[i] + r[i];
        }
        return s;
    }

    @Test
    void residualOfAnotherTypeWithNullsKeepsTheSum() {
        // Input null on every third row, residual null on every fifth (row 0, 15: both); array<double> residual.
        List<Row> rows = new ArrayList<>();
        for (int r = 0; r < ROWS; r++) {
            rows.add(RowFactory.create(
                    r,
                    r % 3 == 0 ? null : embedding(r, C),
                    r % 5 == 0 ? null : boxedDoubles(residual(r)),
                    "name " + r));
        }
        StructType schema = new StructType()
                .add("id", DataTypes.IntegerType)
                .add("emb", DataTypes.createArrayType(DataTypes.FloatType, false))
                .add("res", DataTypes.createArrayType(DataTypes.DoubleType, false))
                .add("name", DataTypes.StringType);
        float[] gamma = TestAccess.gaussian(C, 1, 0.5, 5);
        float[] beta = TestAccess.gaussian(C, 0, 0.5, 6);

        Dataset<Row> out = SparkLayerNorm.of(LayerNormConfig.of(C))
                .gamma(gamma)
                .beta(beta)
                .residual("res", "sum")
                .chunkRows(4)
                .apply(frame(schema, rows), "emb", "out");

        assertArrayEquals(
                new String[] {"id", "emb", "res", "name", "out", "sum"},
                out.schema().fieldNames());
        for (Row row : out.collectAsList()) {
            int id = row.getInt(0);
            assertEquals("name " + id, row.getString(3));
            if (id % 3 == 0 || id % 5 == 0) {
                assertTrue(row.isNullAt(4) && row.isNullAt(5), "row " + id + ": a null operand makes null outputs");
                assertEquals(id % 3 == 0, row.isNullAt(1), "the input stays as it was");
                assertEquals(id % 5 == 0, row.isNullAt(2), "the residual stays as it was");
                continue;
            }
            float[] s = sum(embedding(id, C), residual(id));
            assertArrayEquals(s, floats(row, "sum"), 0f, "the sum is x + r in float32");
            TestAccess.assertForward(Backend.AUTO, s, 1, C, gamma, beta, EPS, floats(row, "out"));
            assertArrayEquals(embedding(id, C), floats(row, "emb"), "the input column is untouched");
            assertEquals((double) residual(id)[7], row.<Double>getList(2).get(7), "the residual is untouched");
        }
    }

    @Test
    void aFloatResidualThatStaysIsUntouched() {
        // The residual's array travels typed and is handed back as the column: it must come back as it was on
        // rows whose input is null (every third) or whose residual has the wrong length (row 17, made null).
        List<Row> rows = new ArrayList<>();
        for (int r = 0; r < ROWS; r++) {
            float[] res = r == 17 ? new float[] {1, 2, 3} : r % 5 == 0 ? null : residual(r);
            rows.add(RowFactory.create(r, r % 3 == 0 ? null : embedding(r, C), "name " + r, res));
        }
        StructType schema = schema(DataTypes.createArrayType(DataTypes.FloatType, false))
                .add("res", DataTypes.createArrayType(DataTypes.FloatType, false));

        Dataset<Row> out = SparkLayerNorm.of(LayerNormConfig.of(C))
                .residual("res")
                .invalidRowsToNull(true)
                .apply(frame(schema, rows), "emb", "y");

        assertArrayEquals(
                new String[] {"id", "emb", "name", "res", "y"}, out.schema().fieldNames());
        for (Row row : out.collectAsList()) {
            int id = row.getInt(0);
            float[] res = id == 17 ? new float[] {1, 2, 3} : id % 5 == 0 ? null : residual(id);
            if (res == null) {
                assertTrue(row.isNullAt(3), "row " + id);
            } else {
                assertArrayEquals(res, floats(row, "res"), "row " + id + ": the residual is untouched");
            }
            if (id % 3 == 0 || id % 5 == 0 || id == 17) {
                assertTrue(row.isNullAt(4), "row " + id);
            } else {
                TestAccess.assertForward(
                        Backend.AUTO, sum(embedding(id, C), res), 1, C, null, null, EPS, floats(row, "y"));
            }
        }
    }

    @Test
    void vectorResidualInPlaceAsAPreLnBlock() {
        // RMSNorm of x + r into x's column, the sum replacing r, as a pre-LN block carries its residual stream.
        List<Row> rows = new ArrayList<>();
        for (int r = 0; r < ROWS; r++) {
            rows.add(RowFactory.create(r, r % 3 == 0 ? null : vector(embedding(r, C)), "name", vector(residual(r))));
        }
        StructType schema = schema(new VectorUDT()).add("res", new VectorUDT());

        Dataset<Row> out = SparkLayerNorm.of(LayerNormConfig.rms(C).withEps(EPS).withShift(false))
                .residual("res", "res")
                .apply(frame(schema, rows), "emb", "emb");

        assertArrayEquals(
                new String[] {"id", "emb", "name", "res"}, out.schema().fieldNames());
        assertEquals(new VectorUDT(), out.schema().apply("res").dataType());
        for (Row row : out.collectAsList()) {
            int id = row.getInt(0);
            if (id % 3 == 0) {
                assertTrue(row.isNullAt(1) && row.isNullAt(3), "row " + id);
                continue;
            }
            float[] s = sum(embedding(id, C), residual(id));
            assertArrayEquals(s, floats((Vector) row.getAs("res")), 0f);
            TestAccess.assertForward(Backend.AUTO, s, 1, C, null, null, EPS, true, floats((Vector) row.getAs("emb")));
        }
    }

    @Test
    void aBadResidualFailsTheJobNamingItOrBecomesNull() {
        Float[] holed = boxed(residual(17));
        holed[3] = null;
        for (Object bad : new Object[] {new Float[] {1f, 2f, 3f}, holed}) {
            List<Row> rows = new ArrayList<>();
            for (int r = 0; r < ROWS; r++) {
                rows.add(RowFactory.create(r, embedding(r, C), "name " + r, r == 17 ? bad : boxed(residual(r))));
            }
            StructType schema = schema(DataTypes.createArrayType(DataTypes.FloatType, false))
                    .add("res", DataTypes.createArrayType(DataTypes.FloatType, true));
            Dataset<Row> df = frame(schema, rows);
            SparkLayerNorm norm = SparkLayerNorm.of(LayerNormConfig.of(C)).residual("res");

            Exception e = assertThrows(
                    Exception.class, () -> norm.apply(df, "emb", "emb").collectAsList());
            String expected = bad == holed
                    ? "column res (array<float>): row 7 of partition 1 holds a null value"
                    : "column res (array<float>): row 7 of partition 1 has 3 values, but the normalized shape [24]"
                            + " needs 24";
            assertTrue(rootMessage(e).contains(expected), rootMessage(e));

            for (Row row : norm.invalidRowsToNull(true).apply(df, "emb", "emb").collectAsList()) {
                int id = row.getInt(0);
                if (id == 17) {
                    assertTrue(row.isNullAt(1));
                } else {
                    float[] s = sum(embedding(id, C), residual(id));
                    TestAccess.assertForward(Backend.AUTO, s, 1, C, null, null, EPS, floats(row, "emb"));
                }
            }
        }
    }

    /** Rows 0..29 in 3 partitions of 10: row 17 is row 7 of partition 1. */
    private static Dataset<Row> withBadRow(Object bad) {
        List<Row> rows = new ArrayList<>();
        for (int r = 0; r < ROWS; r++) {
            rows.add(RowFactory.create(r, r == 17 ? bad : boxed(embedding(r, C)), "name " + r));
        }
        return frame(schema(DataTypes.createArrayType(DataTypes.FloatType, true)), rows);
    }

    private static String rootMessage(Throwable e) {
        StringBuilder messages = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause()) {
            messages.append(t.getMessage()).append('\n');
        }
        return messages.toString();
    }

    @Test
    void aRowOfTheWrongLengthFailsTheJobNamingIt() {
        Dataset<Row> out = SparkLayerNorm.of(LayerNormConfig.of(C))
                .apply(withBadRow(new Float[] {1f, 2f, 3f, 4f, 5f}), "emb", "emb");

        Exception e = assertThrows(Exception.class, out::collectAsList);
        String message = rootMessage(e);
        assertTrue(
                message.contains("column emb (array<float>): row 7 of partition 1 has 5 values, but the normalized"
                        + " shape [24] needs 24"),
                message);
    }

    @Test
    void aNullValueFailsTheJobNamingIt() {
        Float[] holed = boxed(embedding(17, C));
        holed[3] = null;
        Dataset<Row> out = SparkLayerNorm.of(LayerNormConfig.of(C)).apply(withBadRow(holed), "emb", "emb");

        Exception e = assertThrows(Exception.class, out::collectAsList);
        assertTrue(rootMessage(e).contains("row 7 of partition 1 holds a null value"), rootMessage(e));
    }

    @Test
    void invalidRowsBecomeNullOnRequest() {
        Float[] holed = boxed(embedding(17, C));
        holed[3] = null;
        for (Object bad : new Object[] {new Float[] {1f, 2f}, holed}) {
            List<Row> output = SparkLayerNorm.of(LayerNormConfig.of(C))
                    .invalidRowsToNull(true)
                    .apply(withBadRow(bad), "emb", "emb")
                    .collectAsList();
            for (Row row : output) {
                int id = row.getInt(0);
                if (id == 17) {
                    assertNull(row.get(1));
                } else {
                    TestAccess.assertForward(Backend.AUTO, embedding(id, C), 1, C, null, null, EPS, floats(row, "emb"));
                }
            }
        }
    }

    @Test
    void nonFiniteValuesPropagateAsInTheCoreLibrary() {
        Float[] withNaN = boxed(embedding(17, C));
        withNaN[2] = Float.NaN;
        List<Row> output = SparkLayerNorm.of(LayerNormConfig.of(C))
                .apply(withBadRow(withNaN), "emb", "emb")
                .collectAsList();
        for (float value : floats(output.get(17), "emb")) {
            assertTrue(Float.isNaN(value), "a row with a NaN comes out NaN, as torch.nn.LayerNorm's");
        }
        assertNotNull(output.get(16).get(1));
    }

    @Test
    void otherColumnsKeepTheirMetadataAndNamesCompareAsSparkResolvesThem() {
        List<Row> rows = new ArrayList<>();
        for (int r = 0; r < 6; r++) {
            rows.add(RowFactory.create(r, boxed(embedding(r, C)), "name " + r));
        }
        Metadata comment =
                new MetadataBuilder().putString("comment", "primary key").build();
        StructType schema = new StructType()
                .add("id", DataTypes.IntegerType, false, comment)
                .add("emb", DataTypes.createArrayType(DataTypes.FloatType, false), true, comment)
                .add("Y", DataTypes.StringType);
        Dataset<Row> df = frame(schema, rows);

        // 'y' is the column 'Y' under Spark's default spark.sql.caseSensitive=false: replaced, as withColumn does.
        Dataset<Row> out =
                SparkLayerNorm.of(LayerNormConfig.of(C).withoutAffine()).apply(df, "EMB", "y");

        assertArrayEquals(new String[] {"id", "emb", "y"}, out.schema().fieldNames());
        assertEquals(comment, out.schema().apply("id").metadata(), "a pass-through column keeps its metadata");
        assertEquals(comment, out.schema().apply("emb").metadata(), "so does the input it carries apart");
        for (Row row : out.select("id", "emb", "y").collectAsList()) {
            int id = row.getInt(0);
            assertArrayEquals(embedding(id, C), floats(row, "emb"));
            TestAccess.assertForward(Backend.AUTO, embedding(id, C), 1, C, null, null, EPS, floats(row, "y"));
        }
    }

    @Test
    void argumentsAreCheckedOnTheDriver() {
        Dataset<Row> df = withBadRow(null);
        SparkLayerNorm norm = SparkLayerNorm.of(LayerNormConfig.of(C));
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class, () -> norm.apply(df, "x", "y"));
        assertTrue(missing.getMessage().contains("no column 'x' in [id, emb, name]"), missing.getMessage());
        IllegalArgumentException type =
                assertThrows(IllegalArgumentException.class, () -> norm.apply(df, "name", "name"));
        assertTrue(type.getMessage().contains("column 'name' is string"), type.getMessage());
        IllegalArgumentException gamma = assertThrows(IllegalArgumentException.class, () -> norm.gamma(new float[3]));
        assertTrue(gamma.getMessage().contains("gamma has 3 values"), gamma.getMessage());
        assertThrows(
                IllegalArgumentException.class,
                () -> SparkLayerNorm.of(LayerNormConfig.of(C).withoutAffine()).beta(new float[C]));
        IllegalArgumentException residual = assertThrows(
                IllegalArgumentException.class, () -> norm.residual("r").apply(df, "emb", "emb"));
        assertTrue(residual.getMessage().contains("no column 'r'"), residual.getMessage());
        IllegalArgumentException sum = assertThrows(
                IllegalArgumentException.class, () -> norm.residual("emb", "y").apply(df, "emb", "y"));
        assertTrue(sum.getMessage().contains("would both go to column 'y'"), sum.getMessage());
        // A chunk is allocated whole on each executor: a huge one was an OutOfMemoryError that ended the driver.
        IllegalArgumentException chunk =
                assertThrows(IllegalArgumentException.class, () -> norm.chunkRows(Integer.MAX_VALUE));
        assertEquals(
                "chunkRows 2147483647 is more than the " + (64 << 20) / (C * Float.BYTES) + " rows of " + C
                        + " floats that fit the 64 MiB a chunk may hold",
                chunk.getMessage());
        assertThrows(
                IllegalArgumentException.class,
                () -> SparkLayerNorm.of(LayerNormConfig.of(1)).chunkRows((1 << 20) + 1));
    }
}
