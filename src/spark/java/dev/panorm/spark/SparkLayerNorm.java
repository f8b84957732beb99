package dev.panorm.spark;

import dev.panorm.Backend;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoder;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.types.UserDefinedType;
import scala.Tuple5;

/**
 * Layer (or RMS) normalization of an embedding column of a Spark {@link Dataset}, computed on the executors
 * by panorm's kernels, in one call:
 *
 * {@snippet :
 * Dataset<Row> normalized = SparkLayerNorm.of(LayerNormConfig.of(768))
 *         .gamma(weight)   // PyTorch's weight, 768 floats
 *         .beta(bias)      // PyTorch's bias
 *         .apply(df, "embedding", "embedding");
 * }
 *
 * <p>Input column types: {@code array<float>}, {@code array<double>} (rounded to float32 first: panorm
 * computes in float32) and Spark ML's vectors ({@code VectorUDT}, which needs spark-mllib, converted with
 * {@code vector_to_array}). Each row holds the {@code C} values of the configuration's normalized shape in
 * C order, so a multi-axis shape such as {@code [16, 48]} takes rows of 768 values. The output column is
 * {@code array<float>}, or a dense vector for a vector input; it replaces a column of the same name (the
 * input itself when both names are equal) or is appended. Every other column is passed through untouched.
 *
 * <p>Nulls: a null row stays null. A row whose length is not {@code C}, or which holds a null value, fails
 * the job with an {@link IllegalArgumentException} that names the column, the expected and actual length
 * and the row's position (partition and index in it), unless {@link #invalidRowsToNull(boolean)} makes such
 * rows null. NaN and infinities propagate as in {@link LayerNorm}: a row that holds one comes out NaN.
 *
 * <p>Residual add: {@link #residual(String)} normalizes {@code x + r}, the input plus another column, as a
 * transformer block does, and {@link #residual(String, String)} also keeps the sum as a column.
 *
 * <p>How it runs: {@code mapPartitions} over typed {@code float[]} rows (Spark's own row conversion, with no
 * boxing), which each task copies into off-heap chunks of about 1 MiB and normalizes a chunk at a time, so
 * there is one native call per chunk, never per row. The {@link LayerNorm}s live once per executor JVM and
 * configuration, shared by its task threads and closed when the executor exits (see {@link ExecutorNorms}).
 * Executors need panorm's jar and its oneDNN jars ({@code docs/spark.md}).
 *
 * <p>Guide: {@code docs/spark.md}.
 *
 * <p>Immutable: each setter returns a modified copy. Thread-safe.
 */
public final class SparkLayerNorm {
    /** The most a chunk's values may take on an executor, as {@code panorm normalize --chunk-rows} allows. */
    private static final long MAX_CHUNK_BYTES = 64L << 20;
    /** The most rows a chunk may buffer: each is a row object on the executor's heap. */
    private static final long MAX_CHUNK_ROWS = 1 << 20;

    private final LayerNormConfig config;
    private final float[] gamma;
    private final float[] beta;
    private final Backend backend;
    private final int threadsPerTask;
    private final boolean invalidRowsToNull;
    private final int chunkRows;
    private final String residualColumn;
    private final String sumColumn;

    private SparkLayerNorm(
            LayerNormConfig config,
            float[] gamma,
            float[] beta,
            Backend backend,
            int threadsPerTask,
            boolean invalidRowsToNull,
            int chunkRows,
            String residualColumn,
            String sumColumn) {
        this.config = config;
        this.gamma = gamma;
        this.beta = beta;
        this.backend = backend;
        this.threadsPerTask = threadsPerTask;
        this.invalidRowsToNull = invalidRowsToNull;
        this.chunkRows = chunkRows;
        this.residualColumn = residualColumn;
        this.sumColumn = sumColumn;
    }

    /**
     * A normalization of {@code config}, with gamma all ones and beta all zeros (PyTorch's initial values)
     * until {@link #gamma(float[])} and {@link #beta(float[])} give others, on {@link Backend#AUTO}.
     *
     * @param config what to compute: normalized shape, eps, scale and shift, RMS, precise statistics
     * @return the normalization; {@link #apply} runs it
     */
    public static SparkLayerNorm of(LayerNormConfig config) {
        Objects.requireNonNull(config, "config");
        return new SparkLayerNorm(config, null, null, Backend.AUTO, 1, false, 0, null, null);
    }

    /**
     * This normalization with scale {@code gamma} (PyTorch's {@code weight}).
     *
     * @param gamma {@code C} values, copied
     * @return a modified copy
     * @throws IllegalArgumentException if the configuration has no scale or the length is not {@code C}
     */
    public SparkLayerNorm gamma(float[] gamma) {
        return new SparkLayerNorm(
                config,
                parameter("gamma", gamma, config.scale(), "withScale(true)"),
                beta,
                backend,
                threadsPerTask,
                invalidRowsToNull,
                chunkRows,
                residualColumn,
                sumColumn);
    }

    /**
     * This normalization with shift {@code beta} (PyTorch's {@code bias}).
     *
     * @param beta {@code C} values, copied
     * @return a modified copy
     * @throws IllegalArgumentException if the configuration has no shift or the length is not {@code C}
     */
    public SparkLayerNorm beta(float[] beta) {
        return new SparkLayerNorm(
                config,
                gamma,
                parameter("beta", beta, config.shift(), "withShift(true)"),
                backend,
                threadsPerTask,
                invalidRowsToNull,
                chunkRows,
                residualColumn,
                sumColumn);
    }

    /**
     * This normalization computed by {@code backend} on the executors ({@link Backend#AUTO} by default).
     * {@link Backend#ONEDNN} fails the job if oneDNN cannot be loaded there, rather than running Java kernels.
     *
     * @param backend who computes it
     * @return a modified copy
     */
    public SparkLayerNorm backend(Backend backend) {
        return new SparkLayerNorm(
                config,
                gamma,
                beta,
                Objects.requireNonNull(backend, "backend"),
                threadsPerTask,
                invalidRowsToNull,
                chunkRows,
                residualColumn,
                sumColumn);
    }

    /**
     * The most threads one task's call may use (1 by default: Spark already runs one task per core).
     *
     * @param threads at least 1, or 0 for {@link LayerNorm}'s choice per shape
     * @return a modified copy
     * @throws IllegalArgumentException if {@code threads} is negative
     */
    public SparkLayerNorm threadsPerTask(int threads) {
        if (threads < 0) {
            throw new IllegalArgumentException("threadsPerTask must be 0 (automatic) or positive, got " + threads);
        }
        return new SparkLayerNorm(
                config, gamma, beta, backend, threads, invalidRowsToNull, chunkRows, residualColumn, sumColumn);
    }

    /**
     * Whether a row of the wrong length, or with a null value, becomes null (true) instead of failing the
     * job (false, the default).
     *
     * @param toNull true to make such rows null
     * @return a modified copy
     */
    public SparkLayerNorm invalidRowsToNull(boolean toNull) {
        return new SparkLayerNorm(
                config, gamma, beta, backend, threadsPerTask, toNull, chunkRows, residualColumn, sumColumn);
    }

    /**
     * The rows normalized by one native call; by default as many as fill 1 MiB. Each task allocates a chunk whole,
     * so a chunk may hold at most 64 MiB of values and 2^20 rows.
     *
     * @param rows at least 1, or 0 for the default
     * @return a modified copy
     * @throws IllegalArgumentException if {@code rows} is negative, or makes a chunk larger than that
     */
    public SparkLayerNorm chunkRows(int rows) {
        if (rows < 0) {
            throw new IllegalArgumentException("chunkRows must be 0 (default) or positive, got " + rows);
        }
        // A chunk is allocated whole on the executor, whatever the partition holds: an error here, not an executor
        // killed by an OutOfMemoryError.
        long most = Math.max(1, Math.min(MAX_CHUNK_ROWS, MAX_CHUNK_BYTES / (config.normalizedSize() * Float.BYTES)));
        if (rows > most) {
            throw new IllegalArgumentException("chunkRows " + rows + " is more than the " + most + " rows of "
                    + config.normalizedSize() + " floats that fit the 64 MiB a chunk may hold");
        }
        return new SparkLayerNorm(
                config, gamma, beta, backend, threadsPerTask, invalidRowsToNull, rows, residualColumn, sumColumn);
    }

    /**
     * This normalization of the sum of the input and {@code residualColumn}: the output is {@code norm(x + r)}
     * per row, the residual add of a transformer block fused with the norm ({@link LayerNorm#forwardResidual}:
     * each sum rounded to float32, one pass over memory on the executors). The residual column takes the types
     * the input column takes, independently of the input's type, and rows of the same length {@code C}. A null
     * input or a null residual makes the row's outputs null; a residual row of another length, or with a null
     * value, fails the job with an error that names the residual column, or becomes null as the input's would
     * ({@link #invalidRowsToNull(boolean)}).
     *
     * @param residualColumn the residual r, a column of the dataset given to {@link #apply}
     * @return a modified copy
     */
    public SparkLayerNorm residual(String residualColumn) {
        return withResidual(Objects.requireNonNull(residualColumn, "residualColumn"), null);
    }

    /**
     * As {@link #residual(String)}, and the sum {@code x + r} (float32, the norm's input) also goes into
     * {@code sumColumn}, as a pre-LN block keeps it for its next residual. Its type is the output's: a dense
     * vector for vector input, else {@code array<float>}. It is placed as the output column is: it replaces a
     * column of that name (the input or the residual included), or is appended after the output.
     *
     * @param residualColumn the residual r, a column of the dataset given to {@link #apply}
     * @param sumColumn where {@code x + r} goes; not the output column
     * @return a modified copy
     */
    public SparkLayerNorm residual(String residualColumn, String sumColumn) {
        return withResidual(
                Objects.requireNonNull(residualColumn, "residualColumn"),
                Objects.requireNonNull(sumColumn, "sumColumn"));
    }

    private SparkLayerNorm withResidual(String residualColumn, String sumColumn) {
        return new SparkLayerNorm(
                config, gamma, beta, backend, threadsPerTask, invalidRowsToNull, chunkRows, residualColumn, sumColumn);
    }

    /**
     * Normalizes every row of {@code inputColumn} (plus the residual column's, if {@link #residual(String)}
     * gave one) into {@code outputColumn}. Lazy, like every Dataset transformation: the work runs on the
     * executors when an action runs, and the errors about rows (wrong length, null values) surface then, as
     * the cause of Spark's job failure.
     *
     * @param dataset the rows
     * @param inputColumn the embeddings: {@code array<float>}, {@code array<double>} or a Spark ML vector
     * @param outputColumn where the result goes: {@code inputColumn} to replace it, another existing column
     *     to replace that one, or a new name to append a column
     * @return {@code dataset} with the output column (and the sum column, if asked for); every other column
     *     untouched, values and metadata (Spark's typed {@code mapPartitions} makes every column nullable). Names
     *     compare as the session's {@code spark.sql.caseSensitive} says: by default an output {@code y} replaces a
     *     column {@code Y}, as {@code withColumn} does
     * @throws IllegalArgumentException if the input or residual column does not exist or has another type, or
     *     the sum column is the output column
     */
    public Dataset<Row> apply(Dataset<Row> dataset, String inputColumn, String outputColumn) {
        Objects.requireNonNull(dataset, "dataset");
        Objects.requireNonNull(inputColumn, "inputColumn");
        Objects.requireNonNull(outputColumn, "outputColumn");
        StructType schema = dataset.schema();
        // Names compare as Spark resolves them: an output 'y' replaces a column 'Y' unless case matters.
        boolean caseSensitive =
                Boolean.parseBoolean(dataset.sparkSession().conf().get("spark.sql.caseSensitive", "false"));
        StructField input = field(schema, inputColumn, caseSensitive);
        InputKind kind = InputKind.of(input);
        StructField residual = residualColumn == null ? null : field(schema, residualColumn, caseSensitive);
        InputKind residualKind = residual == null ? null : InputKind.of(residual);
        if (same(outputColumn, sumColumn, caseSensitive)) {
            throw new IllegalArgumentException(
                    "the output and the sum x + r would both go to column '" + outputColumn + "'; name two columns");
        }
        Column in = dataset.col(quote(input.name()));
        Column res = residual == null ? null : dataset.col(quote(residual.name()));
        boolean inputReplaced =
                same(inputColumn, outputColumn, caseSensitive) || same(inputColumn, sumColumn, caseSensitive);
        // The original input travels typed beside the values where an encoder can carry it: arrays without null
        // values. Otherwise it goes with the other columns, in Spark's Row format, which costs more. So does the
        // residual, unless its values array is the original itself: array<float>, not turned into the sum.
        boolean typedOriginal = !inputReplaced && kind != InputKind.VECTOR && !kind.containsNull(input);
        boolean typedResidual = residual != null
                && sumColumn == null
                && !same(residualColumn, inputColumn, caseSensitive)
                && !same(residualColumn, outputColumn, caseSensitive)
                && residualKind == InputKind.FLOAT_ARRAY
                && !residualKind.containsNull(residual);

        List<Column> rest = new ArrayList<>();
        List<StructField> restFields = new ArrayList<>();
        for (StructField field : schema.fields()) {
            String name = field.name();
            boolean carriedApart = same(name, outputColumn, caseSensitive)
                    || same(name, sumColumn, caseSensitive)
                    || (same(name, inputColumn, caseSensitive) && (inputReplaced || typedOriginal))
                    || (same(name, residualColumn, caseSensitive) && typedResidual);
            if (!carriedApart) {
                rest.add(dataset.col(quote(name)));
                restFields.add(field);
            }
        }
        // Spark's float[] decoder refuses a null value inside an array; the executors turn its error into one that
        // names the column and the row. Only to make such rows null are they found beforehand, with exists(),
        // which Spark interprets element by element (no code generation for lambdas), costing several times the
        // reading of the column; a row with a null value then travels as null arrays and the flag.
        boolean flagNullValues = invalidRowsToNull
                && (kind.containsNull(input) || (residual != null && residualKind.containsNull(residual)));
        Column hasNullValue = flagNullValues
                ? kind.hasNullValue(in, input)
                        .or(residual == null ? functions.lit(false) : residualKind.hasNullValue(res, residual))
                : functions.lit(false);
        Column values = kind.toFloatArray(in);
        Column residualValues = residual == null
                ? functions.lit(null).cast(DataTypes.createArrayType(DataTypes.FloatType))
                : residualKind.toFloatArray(res);
        if (flagNullValues && kind.containsNull(input)) {
            values = functions.when(hasNullValue, functions.lit(null)).otherwise(values);
        }
        if (flagNullValues && residual != null && residualKind.containsNull(residual)) {
            residualValues = functions.when(hasNullValue, functions.lit(null)).otherwise(residualValues);
        }
        Column original = typedOriginal ? in : functions.lit(false);
        Encoder<?> originalEncoder = typedOriginal
                ? (kind == InputKind.DOUBLE_ARRAY
                        ? dataset.sparkSession().implicits().newDoubleArrayEncoder()
                        : dataset.sparkSession().implicits().newFloatArrayEncoder())
                : Encoders.BOOLEAN();
        Encoder<float[]> floats = dataset.sparkSession().implicits().newFloatArrayEncoder();
        @SuppressWarnings("unchecked")
        Encoder<Tuple5<Row, float[], Boolean, Object, float[]>> encoder = Encoders.tuple(
                Encoders.row(new StructType(restFields.toArray(StructField[]::new))),
                floats,
                Encoders.BOOLEAN(),
                (Encoder<Object>) originalEncoder,
                floats);

        Dataset<Tuple5<Row, float[], Boolean, Object, float[]>> typed = dataset.select(
                        functions.struct(rest.toArray(Column[]::new)).as("_1"),
                        values.as("_2"),
                        hasNullValue.as("_3"),
                        original.as("_4"),
                        residualValues.as("_5"))
                .as(encoder);
        PartitionNormalizer normalizer = new PartitionNormalizer(
                config,
                gamma,
                beta,
                backend,
                threadsPerTask,
                invalidRowsToNull,
                chunkRows,
                inputColumn + " (" + input.dataType().simpleString() + ")",
                residual == null
                        ? null
                        : residualColumn + " (" + residual.dataType().simpleString() + ")",
                sumColumn != null);
        Dataset<Tuple5<Row, float[], Boolean, Object, float[]>> normalized = typed.mapPartitions(normalizer, encoder);

        Column result = kind.fromFloatArray(normalized.col("_2")).as(outputColumn);
        Column sum = sumColumn == null
                ? null
                : kind.fromFloatArray(normalized.col("_5")).as(sumColumn);
        List<Column> columns = new ArrayList<>();
        boolean resultPlaced = false;
        boolean sumPlaced = sum == null;
        for (StructField field : schema.fields()) {
            String name = field.name();
            // Pass-through columns keep their metadata (ML attributes, comments); Spark's typed mapPartitions
            // leaves them nullable, whatever they were.
            if (same(name, outputColumn, caseSensitive)) {
                columns.add(result);
                resultPlaced = true;
            } else if (same(name, sumColumn, caseSensitive)) {
                columns.add(sum);
                sumPlaced = true;
            } else if (same(name, inputColumn, caseSensitive) && typedOriginal) {
                columns.add(normalized.col("_4").as(name, field.metadata()));
            } else if (same(name, residualColumn, caseSensitive) && typedResidual) {
                columns.add(normalized.col("_5").as(name, field.metadata()));
            } else {
                columns.add(normalized.col("_1").getField(name).as(name, field.metadata()));
            }
        }
        if (!resultPlaced) {
            columns.add(result);
        }
        if (!sumPlaced) {
            columns.add(sum);
        }
        return normalized.select(columns.toArray(Column[]::new));
    }

    @Override
    public String toString() {
        return "SparkLayerNorm[" + config + ", " + backend + (gamma != null ? ", gamma" : "")
                + (beta != null ? ", beta" : "") + (residualColumn != null ? ", residual " + residualColumn : "")
                + (sumColumn != null ? ", sum to " + sumColumn : "")
                + (invalidRowsToNull ? ", invalid rows to null" : "")
                + "]";
    }

    private float[] parameter(String name, float[] values, boolean configured, String fix) {
        Objects.requireNonNull(values, name);
        if (!configured) {
            throw new IllegalArgumentException(config + " has no " + (name.equals("gamma") ? "scale" : "shift")
                    + ", so it takes no " + name + "; configure it with " + fix);
        }
        if (values.length != config.normalizedSize()) {
            throw new IllegalArgumentException(name + " has " + values.length + " values, but the normalized shape "
                    + Arrays.toString(config.normalizedShape()) + " has " + config.normalizedSize());
        }
        return values.clone();
    }

    /** Whether two column names name one column, as the session's {@code spark.sql.caseSensitive} says; null: none. */
    private static boolean same(String a, String b, boolean caseSensitive) {
        return a != null && b != null && (caseSensitive ? a.equals(b) : a.equalsIgnoreCase(b));
    }

    private static StructField field(StructType schema, String name, boolean caseSensitive) {
        for (StructField field : schema.fields()) {
            if (same(field.name(), name, caseSensitive)) {
                return field;
            }
        }
        throw new IllegalArgumentException("no column '" + name + "' in " + Arrays.toString(schema.fieldNames())
                + (caseSensitive ? " (names are case-sensitive: spark.sql.caseSensitive)" : ""));
    }

    /** A column name as Spark's parser reads it literally, dots and backticks included. */
    private static String quote(String name) {
        return "`" + name.replace("`", "``") + "`";
    }

    /** The column types taken, and how each becomes {@code array<float>} and back. */
    private enum InputKind {
        FLOAT_ARRAY,
        DOUBLE_ARRAY,
        VECTOR;

        static InputKind of(StructField field) {
            DataType type = field.dataType();
            if (type instanceof ArrayType array && array.elementType().equals(DataTypes.FloatType)) {
                return FLOAT_ARRAY;
            }
            if (type instanceof ArrayType array && array.elementType().equals(DataTypes.DoubleType)) {
                return DOUBLE_ARRAY;
            }
            if (type instanceof UserDefinedType<?> udt
                    && udt.userClass().getName().equals("org.apache.spark.ml.linalg.Vector")) {
                return VECTOR;
            }
            throw new IllegalArgumentException("column '" + field.name() + "' is " + type.simpleString()
                    + "; panorm normalizes array<float>, array<double> or a Spark ML vector column");
        }

        boolean containsNull(StructField field) {
            return field.dataType() instanceof ArrayType array && array.containsNull();
        }

        /** Whether a row holds a null value: never for a type that cannot, and never for a null row. */
        Column hasNullValue(Column column, StructField field) {
            return containsNull(field)
                    ? functions.coalesce(
                            functions.exists(column, (scala.Function1<Column, Column>) Column::isNull),
                            functions.lit(false))
                    : functions.lit(false);
        }

        Column toFloatArray(Column column) {
            return switch (this) {
                case FLOAT_ARRAY -> column;
                case DOUBLE_ARRAY -> column.cast(DataTypes.createArrayType(DataTypes.FloatType));
                case VECTOR -> functions.when(column.isNotNull(), VectorColumns.toFloatArray(column));
            };
        }

        Column fromFloatArray(Column column) {
            return this == VECTOR ? functions.when(column.isNotNull(), VectorColumns.fromFloatArray(column)) : column;
        }
    }
}
