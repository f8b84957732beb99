package dev.panorm.spark;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import dev.panorm.pipeline.Pipeline;
import java.io.Serial;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Iterator;
import java.util.NoSuchElementException;
import org.apache.spark.SparkThrowable;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Row;
import org.apache.spark.util.TaskCompletionListener;
import scala.Tuple4;

/**
 * The executor side of {@link SparkLayerNorm}: normalizes a partition's rows a chunk at a time. A row is
 * {@code (other columns, values, has a null value, original input or false)}; the values array, which
 * Spark's decoder made for this row alone, is normalized in place and handed back in the same tuple.
 * Serialized to the executors, so it holds the configuration's parts, not a {@link LayerNorm}.
 */
final class PartitionNormalizer
        implements MapPartitionsFunction<Tuple4<Row, float[], Boolean, Object>, Tuple4<Row, float[], Boolean, Object>> {
    @Serial
    private static final long serialVersionUID = 1L;

    private final long[] shape;
    private final double eps;
    private final boolean scale;
    private final boolean shift;
    private final boolean rms;
    private final boolean preciseStatistics;
    private final float[] gamma;
    private final float[] beta;
    private final Backend backend;
    private final int threads;
    private final boolean invalidRowsToNull;
    private final int chunkRows;
    private final String column;

    PartitionNormalizer(
            LayerNormConfig config,
            float[] gamma,
            float[] beta,
            Backend backend,
            int threads,
            boolean invalidRowsToNull,
            int chunkRows,
            String column) {
        this.shape = config.normalizedShape();
        this.eps = config.eps();
        this.scale = config.scale();
        this.shift = config.shift();
        this.rms = config.rms();
        this.preciseStatistics = config.preciseStatistics();
        this.gamma = gamma;
        this.beta = beta;
        this.backend = backend;
        this.threads = threads;
        this.invalidRowsToNull = invalidRowsToNull;
        long size = config.normalizedSize();
        this.chunkRows = chunkRows > 0
                ? chunkRows
                : (int) Math.max(1, Math.min(1 << 20, Pipeline.DEFAULT_CHUNK_BYTES / (size * Float.BYTES)));
        this.column = column;
    }

    LayerNormConfig config() {
        return (rms ? LayerNormConfig.rms(shape) : LayerNormConfig.of(shape))
                .withEps(eps)
                .withScale(scale)
                .withShift(shift)
                .withPreciseStatistics(preciseStatistics);
    }

    @Override
    public Iterator<Tuple4<Row, float[], Boolean, Object>> call(Iterator<Tuple4<Row, float[], Boolean, Object>> rows) {
        return rows.hasNext() ? new Chunks(rows) : rows;
    }

    /** The partition's rows, normalized a chunk ahead of the consumer. */
    private final class Chunks implements Iterator<Tuple4<Row, float[], Boolean, Object>> {
        private final Iterator<Tuple4<Row, float[], Boolean, Object>> input;
        private final LayerNorm norm;
        private final int size;
        private final int partition;
        private final Arena arena = Arena.ofShared();
        private final Tensor chunk;
        private final Tensor gammaTensor;
        private final Tensor betaTensor;

        @SuppressWarnings({"unchecked", "rawtypes"})
        private final Tuple4<Row, float[], Boolean, Object>[] buffer = new Tuple4[chunkRows];

        private boolean closed;
        private int buffered;
        private int next;
        private long position;

        Chunks(Iterator<Tuple4<Row, float[], Boolean, Object>> input) {
            this.input = input;
            LayerNormConfig config = config();
            this.norm = ExecutorNorms.get(config, backend, threads);
            this.size = Math.toIntExact(config.normalizedSize());
            TaskContext task = TaskContext.get();
            this.partition = task == null ? -1 : task.partitionId();
            // The chunk lives as long as the task: freed when the partition is done, or when the task ends
            // early (a failure, a limit that stops reading), whichever comes first.
            if (task != null) {
                task.addTaskCompletionListener((TaskCompletionListener) context -> close());
            }
            long[] chunkShape = new long[shape.length + 1];
            chunkShape[0] = chunkRows;
            System.arraycopy(shape, 0, chunkShape, 1, shape.length);
            this.chunk = Tensor.allocate(arena, DataType.F32, chunkShape);
            this.gammaTensor = scale ? parameter(gamma, 1) : null;
            this.betaTensor = shift ? parameter(beta, 0) : null;
        }

        private Tensor parameter(float[] values, float fill) {
            if (values == null) {
                values = new float[size];
                Arrays.fill(values, fill);
            }
            return Tensor.allocate(arena, DataType.F32, shape).copyFrom(values);
        }

        @Override
        public boolean hasNext() {
            if (next == buffered) {
                fill();
            }
            return next < buffered;
        }

        @Override
        public Tuple4<Row, float[], Boolean, Object> next() {
            if (!hasNext()) {
                throw new NoSuchElementException();
            }
            Tuple4<Row, float[], Boolean, Object> row = buffer[next];
            buffer[next++] = null;
            return row;
        }

        /** Reads the next chunk of rows, copies their values off-heap, normalizes them at once and back. */
        private void fill() {
            buffered = 0;
            next = 0;
            if (closed) {
                return;
            }
            MemorySegment data = chunk.segment();
            int valid = 0;
            while (buffered < chunkRows && hasNextInput()) {
                Tuple4<Row, float[], Boolean, Object> row = nextInput();
                long at = position++;
                float[] values = row._2();
                if (row._3() || (values != null && values.length != size)) {
                    if (!invalidRowsToNull) {
                        throw new IllegalArgumentException(invalid(values, row._3(), at));
                    }
                    row = new Tuple4<>(row._1(), null, false, row._4());
                } else if (values != null) {
                    MemorySegment.copy(
                            values, 0, data, ValueLayout.JAVA_FLOAT, (long) valid++ * size * Float.BYTES, size);
                }
                buffer[buffered++] = row;
            }
            if (valid > 0) {
                Tensor rows = chunk.rows(shape.length, 0, valid);
                norm.forward(rows, rows, gammaTensor, betaTensor);
                int k = 0;
                for (int i = 0; i < buffered; i++) {
                    float[] values = buffer[i]._2();
                    if (values != null) {
                        MemorySegment.copy(
                                data, ValueLayout.JAVA_FLOAT, (long) k++ * size * Float.BYTES, values, 0, size);
                    }
                }
            }
            if (!hasNextInput()) {
                close();
            }
        }

        // Spark decodes a row when it is pulled: a null value inside the array fails there, before this code
        // sees the row, with Spark's own message; this one names the column and the row.
        private boolean hasNextInput() {
            try {
                return input.hasNext();
            } catch (RuntimeException e) {
                throw nullValue(e);
            }
        }

        private Tuple4<Row, float[], Boolean, Object> nextInput() {
            try {
                return input.next();
            } catch (RuntimeException e) {
                throw nullValue(e);
            }
        }

        private RuntimeException nullValue(RuntimeException e) {
            if (e instanceof SparkThrowable spark && "NOT_NULL_ASSERT_VIOLATION".equals(spark.getCondition())) {
                return new IllegalArgumentException(invalid(null, true, position), e);
            }
            return e;
        }

        private String invalid(float[] values, boolean hasNull, long at) {
            String where = "row " + at + " of partition " + (partition < 0 ? "?" : partition);
            String problem = hasNull
                    ? "holds a null value"
                    : "has " + values.length + " values, but the normalized shape " + Arrays.toString(shape) + " needs "
                            + size;
            return "column " + column + ": " + where + " " + problem
                    + "; SparkLayerNorm.invalidRowsToNull(true) makes such rows null instead";
        }

        private void close() {
            if (!closed) {
                closed = true;
                arena.close();
            }
        }
    }
}
