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
import scala.Tuple5;

/**
 * The executor side of {@link SparkLayerNorm}: normalizes a partition's rows a chunk at a time. A row is
 * {@code (other columns, values, has a null value, original input or false, residual values or null)}; the
 * values array, which Spark's decoder made for this row alone, is normalized in place and handed back in the
 * same tuple, and so is the residual array, which receives the sum when it is kept.
 * Serialized to the executors, so it holds the configuration's parts, not a {@link LayerNorm}.
 */
final class PartitionNormalizer
        implements MapPartitionsFunction<
                Tuple5<Row, float[], Boolean, Object, float[]>, Tuple5<Row, float[], Boolean, Object, float[]>> {
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
    private final String residualColumn;
    private final boolean keepSum;

    PartitionNormalizer(
            LayerNormConfig config,
            float[] gamma,
            float[] beta,
            Backend backend,
            int threads,
            boolean invalidRowsToNull,
            int chunkRows,
            String column,
            String residualColumn,
            boolean keepSum) {
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
        this.residualColumn = residualColumn;
        this.keepSum = keepSum;
    }

    LayerNormConfig config() {
        return (rms ? LayerNormConfig.rms(shape) : LayerNormConfig.of(shape))
                .withEps(eps)
                .withScale(scale)
                .withShift(shift)
                .withPreciseStatistics(preciseStatistics);
    }

    @Override
    public Iterator<Tuple5<Row, float[], Boolean, Object, float[]>> call(
            Iterator<Tuple5<Row, float[], Boolean, Object, float[]>> rows) {
        return rows.hasNext() ? new Chunks(rows) : rows;
    }

    /** The partition's rows, normalized a chunk ahead of the consumer. */
    private final class Chunks implements Iterator<Tuple5<Row, float[], Boolean, Object, float[]>> {
        private final Iterator<Tuple5<Row, float[], Boolean, Object, float[]>> input;
        private final LayerNorm norm;
        private final int size;
        private final int partition;
        private final Arena arena = Arena.ofShared();
        private final Tensor chunk;
        private final Tensor residualChunk;
        private final Tensor gammaTensor;
        private final Tensor betaTensor;

        @SuppressWarnings({"unchecked", "rawtypes"})
        private final Tuple5<Row, float[], Boolean, Object, float[]>[] buffer = new Tuple5[chunkRows];

        private boolean closed;
        private int buffered;
        private int next;
        private long position;

        Chunks(Iterator<Tuple5<Row, float[], Boolean, Object, float[]>> input) {
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
            this.residualChunk = residualColumn == null ? null : Tensor.allocate(arena, DataType.F32, chunkShape);
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
        public Tuple5<Row, float[], Boolean, Object, float[]> next() {
            if (!hasNext()) {
                throw new NoSuchElementException();
            }
            Tuple5<Row, float[], Boolean, Object, float[]> row = buffer[next];
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
            int valid = 0;
            while (buffered < chunkRows && hasNextInput()) {
                Tuple5<Row, float[], Boolean, Object, float[]> row = nextInput();
                long at = position++;
                float[] values = row._2();
                float[] residual = row._5();
                String problem = problem(row, at);
                if (problem != null && !invalidRowsToNull) {
                    throw new IllegalArgumentException(problem);
                }
                // With a residual, a row is normalized only when both arrays are there; otherwise both outputs
                // are null: the norm, and the sum if it is kept in the residual's array (else that array is the
                // residual column itself, untouched).
                if (problem != null || (residualColumn != null && (values == null || residual == null))) {
                    row = new Tuple5<>(row._1(), null, false, row._4(), keepSum ? null : residual);
                } else if (values != null) {
                    long offset = (long) valid++ * size * Float.BYTES;
                    MemorySegment.copy(values, 0, chunk.segment(), ValueLayout.JAVA_FLOAT, offset, size);
                    if (residual != null) {
                        MemorySegment.copy(residual, 0, residualChunk.segment(), ValueLayout.JAVA_FLOAT, offset, size);
                    }
                }
                buffer[buffered++] = row;
            }
            if (valid > 0) {
                normalize(valid);
            }
            if (!hasNextInput()) {
                close();
            }
        }

        private void normalize(int rows) {
            Tensor x = chunk.rows(shape.length, 0, rows);
            Tensor r = residualChunk == null ? null : residualChunk.rows(shape.length, 0, rows);
            if (r == null) {
                norm.forward(x, x, gammaTensor, betaTensor);
            } else {
                norm.forwardResidual(x, r, null, keepSum ? r : null, x, gammaTensor, betaTensor);
            }
            int k = 0;
            for (int i = 0; i < buffered; i++) {
                Tuple5<Row, float[], Boolean, Object, float[]> row = buffer[i];
                if (row._2() != null) {
                    long offset = (long) k++ * size * Float.BYTES;
                    MemorySegment.copy(chunk.segment(), ValueLayout.JAVA_FLOAT, offset, row._2(), 0, size);
                    if (keepSum) {
                        MemorySegment.copy(residualChunk.segment(), ValueLayout.JAVA_FLOAT, offset, row._5(), 0, size);
                    }
                }
            }
        }

        /** What is wrong with the row at {@code at}, or null. */
        private String problem(Tuple5<Row, float[], Boolean, Object, float[]> row, long at) {
            if (row._2() != null && row._2().length != size) {
                return invalid(column, at, wrongLength(row._2().length));
            }
            if (row._5() != null && row._5().length != size) {
                return invalid(residualColumn, at, wrongLength(row._5().length));
            }
            // Only flagged with invalidRowsToNull, when the message is not shown.
            return row._3() ? invalid(column, at, "holds a null value") : null;
        }

        private String wrongLength(int length) {
            return "has " + length + " values, but the normalized shape " + Arrays.toString(shape) + " needs " + size;
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

        private Tuple5<Row, float[], Boolean, Object, float[]> nextInput() {
            try {
                return input.next();
            } catch (RuntimeException e) {
                throw nullValue(e);
            }
        }

        private RuntimeException nullValue(RuntimeException e) {
            if (e instanceof SparkThrowable spark && "NOT_NULL_ASSERT_VIOLATION".equals(spark.getCondition())) {
                // Spark's message names the tuple field whose decoding failed: _5 is the residual.
                boolean inResidual =
                        residualColumn != null && String.valueOf(e.getMessage()).contains("\"_5\"");
                return new IllegalArgumentException(
                        invalid(inResidual ? residualColumn : column, position, "holds a null value"), e);
            }
            return e;
        }

        private String invalid(String column, long at, String problem) {
            String where = "row " + at + " of partition " + (partition < 0 ? "?" : partition);
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
