package dev.panorm.spark.example;

import dev.panorm.LayerNormConfig;
import dev.panorm.spark.SparkLayerNorm;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import org.apache.spark.SparkStageInfo;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoder;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.storage.StorageLevel;
import scala.Tuple2;

/**
 * The Spark example ({@code scripts/spark-example.sh}): writes a Parquet data set of seeded embeddings, then
 * normalizes it in local mode four ways, each pass read from Parquet and consumed by Spark's {@code noop}
 * writer, and prints rows/s and GB/s of embedding data side by side: panorm ({@link SparkLayerNorm}); the same
 * normalization in Spark SQL's higher-order functions ({@code aggregate}, {@code transform}), which is what a
 * Spark user writes without panorm; a plain Java UDF; and an identity pass over the same typed
 * {@code mapPartitions} route that panorm uses, Spark's own cost of handing the column to Java and back. A
 * sample of panorm's rows is checked against a float64 reference computed here from the seeds.
 *
 * <p>Arguments: {@code ROWS [DIM [DIR [SLOW_ROWS]]]}: rows (default 1,000,000), embedding size (768), where the
 * data set goes ({@code target/spark-example}), and how many rows the slow SQL formulation runs on (100,000 by
 * default; rates are per row, so they compare with the others'). Every pass runs twice: on the Parquet files,
 * and on the data set cached in memory, where Parquet's decoding no longer hides the passes' own costs.
 */
public final class SparkExample {
    private static final long SEED = 0x5EED_5BA4L;
    private static final double EPS = LayerNormConfig.DEFAULT_EPS;

    private SparkExample() {}

    /**
     * Runs the example.
     *
     * @param args {@code ROWS [DIM [DIR [SLOW_ROWS]]]}
     * @throws Exception if Spark fails or the sample check fails
     */
    public static void main(String[] args) throws Exception {
        if (args.length > 0 && (args[0].equals("--help") || args[0].equals("-h"))) {
            usage(null);
        }
        if (args.length > 4) {
            usage("takes at most 4 arguments, got " + args.length);
        }
        long rows = args.length > 0 ? positive("ROWS", args[0].replace("_", "").replace(",", "")) : 1_000_000;
        long dimension = args.length > 1 ? positive("DIM", args[1]) : 768;
        if (dimension > 1 << 20) {
            usage("DIM must be at most 2^20, got " + dimension);
        }
        int dim = (int) dimension;
        Path dir = Path.of(args.length > 2 ? args[2] : "target/spark-example");
        long slowRows = Math.min(rows, args.length > 3 ? positive("SLOW_ROWS", args[3]) : 100_000);
        try { // before Spark starts: it would fail later, with pages of stack traces
            Files.createDirectories(dir);
            Files.delete(Files.createTempFile(dir, ".probe", null));
        } catch (IOException e) {
            System.err.println("spark-example: cannot write to DIR " + dir + ": " + e);
            System.exit(1);
        }
        PrintStream out = System.out;
        SparkSession spark = SparkSession.builder()
                .master("local[*]")
                .appName("panorm spark example")
                .config("spark.ui.enabled", "false")
                .config("spark.sql.shuffle.partitions", "4")
                .getOrCreate();
        spark.sparkContext().setLogLevel("WARN");
        try {
            Path data = dir.resolve("embeddings-" + rows + "x" + dim + ".parquet");
            if (!Files.exists(data.resolve("_SUCCESS"))) {
                generate(spark, rows, dim, data);
            }
            Dataset<Row> input = spark.read().parquet(data.toString());
            float[] gamma = gaussian(new SplittableRandom(SEED), dim, 1, 0.1);
            float[] beta = gaussian(new SplittableRandom(SEED + 1), dim, 0, 0.1);
            SparkLayerNorm norm =
                    SparkLayerNorm.of(LayerNormConfig.of(dim)).gamma(gamma).beta(beta);
            out.printf(
                    Locale.ROOT,
                    "spark example: %,d rows x %d floats (%.2f GB) in %s, %d partitions, Spark %s, %d cores%n",
                    rows,
                    dim,
                    gigabytes(rows, dim),
                    data,
                    input.rdd().getNumPartitions(),
                    spark.version(),
                    Runtime.getRuntime().availableProcessors());

            measure(spark, "from Parquet", input, rows, dim, slowRows, norm, gamma, beta);
            // The same passes over the data set cached in memory (Spark's columnar cache): without Parquet's
            // decoding, which dominates on a small machine, each pass shows its own cost.
            Dataset<Row> cached = input.persist(StorageLevel.MEMORY_ONLY());
            time(spark, "caching", rows, dim, cached);
            measure(spark, "from Spark's in-memory cache", cached, rows, dim, slowRows, norm, gamma, beta);

            double worst = check(norm.apply(input, "emb", "emb"), rows, dim, gamma, beta);
            out.printf(
                    Locale.ROOT,
                    "sample check: the worst row's error is %.3f of the documented tolerance (docs/accuracy.md)%n",
                    worst);
        } finally {
            spark.stop();
        }
    }

    /** The five passes over {@code input}, then their table and panorm's ratios. */
    private static void measure(
            SparkSession spark,
            String source,
            Dataset<Row> input,
            long rows,
            int dim,
            long slowRows,
            SparkLayerNorm norm,
            float[] gamma,
            float[] beta) {
        Pass scan = time(spark, "scan only (no transformation)", rows, dim, input);
        Pass identity = null;
        Pass panorm = null;
        // Identity and panorm alternate, twice each, so that both are measured warm and side by side.
        for (int round = 0; round < 2; round++) {
            identity = best(identity, time(spark, "identity (typed mapPartitions)", rows, dim, identity(input)));
            panorm = best(panorm, time(spark, "panorm (SparkLayerNorm)", rows, dim, norm.apply(input, "emb", "emb")));
        }
        Pass udf = time(spark, "Java UDF", rows, dim, udf(input, gamma, beta));
        Dataset<Row> slowInput = input.where(functions.col("id").lt(slowRows));
        Pass sql = time(spark, "Spark SQL (aggregate, transform)", slowRows, dim, sql(slowInput, gamma, beta));

        PrintStream out = System.out;
        out.printf(
                Locale.ROOT, "%n%s:%n%-38s %12s %9s %12s %8s%n", source, "pass", "rows", "seconds", "rows/s", "GB/s");
        for (Pass pass : List.of(scan, identity, panorm, udf, sql)) {
            out.printf(
                    Locale.ROOT,
                    "%-38s %,12d %9.2f %,12.0f %8.3f%n",
                    pass.name,
                    pass.rows,
                    pass.seconds,
                    pass.rowsPerSecond(),
                    pass.rowsPerSecond() * dim * Float.BYTES / 1e9);
        }
        out.printf(
                Locale.ROOT,
                "panorm's rows per second over Spark SQL's: %.2fx; over the Java UDF's: %.2fx; time vs identity: %.2fx;"
                        + " vs scan only: %.2fx%n%n",
                panorm.rowsPerSecond() / sql.rowsPerSecond(),
                panorm.rowsPerSecond() / udf.rowsPerSecond(),
                identity.rowsPerSecond() / panorm.rowsPerSecond(),
                scan.rowsPerSecond() / panorm.rowsPerSecond());
    }

    /** A whole number of at least 1, or the usage and exit status 2. */
    private static long positive(String name, String text) {
        try {
            long value = Long.parseLong(text);
            if (value >= 1) {
                return value;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        usage(name + " must be a whole number >= 1, got '" + text + "'");
        return 0; // not reached
    }

    /** Prints the usage, after {@code problem} on stderr (null: asked for, on stdout), and exits: 2, or 0 if asked. */
    private static void usage(String problem) {
        PrintStream stream = problem == null ? System.out : System.err;
        if (problem != null) {
            stream.println("spark-example: " + problem);
        }
        stream.println("usage: scripts/spark-example.sh [ROWS [DIM [DIR [SLOW_ROWS]]]]"
                + " (defaults 1000000, 768, target/spark-example, 100000)");
        System.exit(problem == null ? 0 : 2);
    }

    /** Row id's embedding: Gaussian, with a mean and a scale of its own, from a seed derived from the id. */
    static float[] embedding(long id, int dim) {
        SplittableRandom random = new SplittableRandom(SEED ^ (id * 0x9E3779B97F4A7C15L));
        return gaussian(random, dim, random.nextDouble(-2, 2), random.nextDouble(0.5, 3));
    }

    private static float[] gaussian(SplittableRandom random, int n, double mean, double std) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) (mean + std * random.nextGaussian());
        }
        return values;
    }

    private static void generate(SparkSession spark, long rows, int dim, Path data) {
        int partitions = (int) Math.max(2, Math.min(64, rows * dim * Float.BYTES / (64L << 20)));
        System.err.printf(Locale.ROOT, "spark example: writing %,d seeded rows to %s...%n", rows, data);
        Encoder<Tuple2<Long, float[]>> encoder =
                Encoders.tuple(Encoders.LONG(), spark.implicits().newFloatArrayEncoder());
        Dataset<Row> df = spark.range(0, rows, 1, partitions)
                .map((MapFunction<Long, Tuple2<Long, float[]>>) id -> new Tuple2<>(id, embedding(id, dim)), encoder)
                .toDF("id", "emb");
        long start = System.nanoTime();
        Progress progress = Progress.start(spark, "generate");
        try {
            df.write().mode("overwrite").parquet(data.toString());
        } finally {
            progress.stop();
        }
        System.err.printf(Locale.ROOT, "spark example: written in %.1f s%n", (System.nanoTime() - start) / 1e9);
    }

    /** The typed route panorm takes, with nothing done to the rows. */
    private static Dataset<Row> identity(Dataset<Row> input) {
        Encoder<Tuple2<Row, float[]>> encoder = Encoders.tuple(
                Encoders.row(new StructType().add("id", DataTypes.LongType)),
                input.sparkSession().implicits().newFloatArrayEncoder());
        return input.select(
                        functions.struct(functions.col("id")).as("_1"),
                        functions.col("emb").as("_2"))
                .as(encoder)
                .mapPartitions((MapPartitionsFunction<Tuple2<Row, float[]>, Tuple2<Row, float[]>>) it -> it, encoder)
                .select(functions.col("_1.id").as("id"), functions.col("_2").as("emb"));
    }

    /**
     * Layer normalization in Spark SQL's higher-order functions, two passes for the statistics. The mean and the
     * variance are lambda variables of nested {@code aggregate} finishers: written as columns of their own, Spark's
     * optimizer inlines them into the {@code transform} lambda and recomputes them for every element, which is
     * quadratic in the row's length.
     */
    private static Dataset<Row> sql(Dataset<Row> input, float[] gamma, float[] beta) {
        String n = "size(emb)";
        return input.withColumn("gamma", functions.lit(gamma))
                .withColumn("beta", functions.lit(beta))
                .select(
                        functions.col("id"),
                        functions
                                .expr(
                                        "aggregate(emb, 0D, (s, x) -> s + x, s -> aggregate(emb, 0D, (q, x) -> q + (x - s / "
                                                + n + ") * (x - s / " + n
                                                + "), q -> transform(emb, (x, i) -> CAST((x - s / " + n
                                                + ") / sqrt(q / " + n + " + " + EPS
                                                + ") * gamma[i] + beta[i] AS FLOAT))))")
                                .as("emb"));
    }

    /** Layer normalization in a plain Java UDF, which Spark hands the array as a boxed Scala sequence. */
    private static Dataset<Row> udf(Dataset<Row> input, float[] gamma, float[] beta) {
        UDF1<scala.collection.Seq<Float>, float[]> layerNorm = values -> {
            int n = values.size();
            double mean = 0;
            for (int i = 0; i < n; i++) {
                mean += values.apply(i);
            }
            mean /= n;
            double var = 0;
            for (int i = 0; i < n; i++) {
                double d = values.apply(i) - mean;
                var += d * d;
            }
            double rstd = 1 / Math.sqrt(var / n + EPS);
            float[] y = new float[n];
            for (int i = 0; i < n; i++) {
                y[i] = (float) ((values.apply(i) - mean) * rstd * gamma[i] + beta[i]);
            }
            return y;
        };
        return input.select(
                functions.col("id"),
                functions
                        .udf(layerNorm, DataTypes.createArrayType(DataTypes.FloatType, false))
                        .apply(functions.col("emb"))
                        .as("emb"));
    }

    /**
     * About 1,000 rows of panorm's output against a float64 reference from the seeds; returns the largest
     * error as a fraction of the documented bound (docs/accuracy.md: {@code 8 u (kappa max(1,|gamma|) + |beta|)}),
     * and fails above 1.
     */
    private static double check(Dataset<Row> normalized, long rows, int dim, float[] gamma, float[] beta) {
        long step = Math.max(1, rows / 1000);
        List<Row> sample =
                normalized.where(functions.col("id").mod(step).equalTo(0)).collectAsList();
        double worst = 0;
        for (Row row : sample) {
            long id = row.getLong(row.fieldIndex("id"));
            float[] x = embedding(id, dim);
            List<Float> y = row.getList(row.fieldIndex("emb"));
            double mean = 0;
            for (float v : x) {
                mean += v;
            }
            mean /= dim;
            double var = 0;
            double maxDeviation = 0;
            for (float v : x) {
                var += (v - mean) * (v - mean);
                maxDeviation = Math.max(maxDeviation, Math.abs(v - mean));
            }
            double rstd = 1 / Math.sqrt(var / dim + EPS);
            double kappa = Math.max(1, maxDeviation * rstd);
            for (int i = 0; i < dim; i++) {
                double expected = (x[i] - mean) * rstd * gamma[i] + beta[i];
                double bound = 8 * 0x1p-24 * (kappa * Math.max(1, Math.abs(gamma[i])) + Math.abs(beta[i]));
                double ratio = Math.abs(y.get(i) - expected) / bound;
                if (!(ratio <= 1)) {
                    throw new IllegalStateException("row " + id + " value " + i + ": panorm " + y.get(i)
                            + ", float64 reference " + expected + ", beyond the tolerance " + bound);
                }
                worst = Math.max(worst, ratio);
            }
        }
        if (sample.isEmpty()) {
            throw new IllegalStateException("the sample is empty");
        }
        System.err.printf(Locale.ROOT, "spark example: %d sampled rows match the float64 reference%n", sample.size());
        return worst;
    }

    private static Pass time(SparkSession spark, String name, long rows, int dim, Dataset<Row> pass) {
        Progress progress = Progress.start(spark, name);
        long start = System.nanoTime();
        try {
            pass.write().format("noop").mode("overwrite").save();
        } finally {
            progress.stop();
        }
        Pass result = new Pass(name, rows, (System.nanoTime() - start) / 1e9);
        System.err.printf(
                Locale.ROOT,
                "spark example: %s: %.2f s, %,.0f rows/s, %.3f GB/s%n",
                name,
                result.seconds,
                result.rowsPerSecond(),
                result.rowsPerSecond() * dim * Float.BYTES / 1e9);
        return result;
    }

    private static Pass best(Pass a, Pass b) {
        return a == null || b.seconds < a.seconds ? b : a;
    }

    private static double gigabytes(long rows, int dim) {
        return rows * dim * (double) Float.BYTES / 1e9;
    }

    private record Pass(String name, long rows, double seconds) {
        double rowsPerSecond() {
            return rows / seconds;
        }
    }

    /** A progress line on stderr: the running stage's finished tasks of all, and the time so far. */
    private static final class Progress {
        private final Thread thread;

        private Progress(Thread thread) {
            this.thread = thread;
        }

        static Progress start(SparkSession spark, String name) {
            boolean terminal = System.console() != null;
            long start = System.nanoTime();
            Thread thread = Thread.ofPlatform().daemon().name("progress").start(() -> {
                String last = "";
                long lastPrinted = 0;
                while (!Thread.currentThread().isInterrupted()) {
                    int done = 0;
                    int total = 0;
                    for (int id : spark.sparkContext().statusTracker().getActiveStageIds()) {
                        SparkStageInfo stage = spark.sparkContext()
                                .statusTracker()
                                .getStageInfo(id)
                                .getOrElse(() -> null);
                        if (stage != null) {
                            done += stage.numCompletedTasks();
                            total += stage.numTasks();
                        }
                    }
                    double seconds = (System.nanoTime() - start) / 1e9;
                    String line =
                            String.format(Locale.ROOT, "%s: %d/%d partitions, %.0f s", name, done, total, seconds);
                    // On a terminal the line is redrawn; in a log, one line every 10 s.
                    if (terminal && !line.equals(last)) {
                        System.err.print("\r" + line + "   ");
                        last = line;
                    } else if (!terminal && seconds - lastPrinted >= 10) {
                        System.err.println(line);
                        lastPrinted = (long) seconds;
                    }
                    try {
                        Thread.sleep(250);
                    } catch (InterruptedException e) {
                        break;
                    }
                }
                if (terminal) {
                    System.err.print("\r" + " ".repeat(last.length() + 3) + "\r");
                }
            });
            return new Progress(thread);
        }

        void stop() {
            thread.interrupt();
            try {
                thread.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
