package dev.panorm.pipeline;

import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.Tensor;
import dev.panorm.internal.LayerNormAccess;
import dev.panorm.internal.io.MappedPages;
import dev.panorm.io.Npy;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Normalizes data a chunk of rows at a time, from a source through a {@link LayerNorm} into a sink, so
 * that tensors far larger than memory (memory-mapped files) stream through with bounded memory. Chunks
 * are views: nothing is copied between source, kernel and sink.
 *
 * <!-- snippet: given Path inPath, outPath -->
 * {@snippet :
 * try (Arena arena = Arena.ofShared();                        // shared: parallelism 2 uses other threads
 *      LayerNorm norm = LayerNorm.create(LayerNormConfig.of(1024).withoutAffine());
 *      Npy.Reader input = Npy.Reader.open(inPath);            // 100 GB: read a chunk at a time
 *      Npy.Output output = Npy.Output.create(outPath, input.shape(), arena)) {
 *     Pipeline.Summary done = Pipeline.of(norm)
 *             .chunkRows(4096)
 *             .parallelism(2)
 *             .run(input, output.tensor());
 *     output.commit();                                        // flush, then rename over outPath
 * }
 * }
 *
 * <p>Sources: an {@link Npy.Reader} reads each chunk into memory it owns, so a file that another
 * program truncates or rewrites during the run is an exception; a memory-mapped tensor
 * ({@link Npy#map}) avoids that copy but faults if its file shrinks while it is read, which can end the
 * JVM: map only files nothing else writes.
 *
 * <p>Memory: after a chunk is written, the pages of memory-mapped sources and destinations that it
 * touched are released from the process ({@link MemorySegment#unload()}; the kernel keeps written
 * pages in its page cache and writes them back), so the resident set stays about
 * {@code parallelism x chunk bytes} above the JVM's own. A {@code Pipeline} is immutable and may be
 * shared; {@code run} may be called from several threads at once.
 *
 * <p>Errors: the runs that split tensors or files themselves check the whole tensors first, as one
 * {@link LayerNorm#forward} call would, so overlaps that lie between chunks are refused before anything
 * is written. Then the first exception of any chunk (from the {@code LayerNorm}, the source or the sink)
 * stops the run, the other workers stop before their next chunk, and {@code run} rethrows it. Chunks
 * finished before it stay written. Interrupting the thread that called {@code run} stops the run the same
 * way, before the next chunk, with an {@link IllegalStateException} (the interrupt status stays set).
 *
 * <p>Guide: {@code docs/pipelines.md}.
 */
public final class Pipeline {
    /**
     * Bytes of input per chunk unless {@link #chunkRows} says otherwise: enough to amortize a call, small
     * enough to stay in cache.
     */
    public static final long DEFAULT_CHUNK_BYTES = 1 << 20;

    private final LayerNorm norm;
    private final Tensor scale;
    private final Tensor shift;
    private final long chunkRows;
    private final int parallelism;
    private final Progress progress;

    /**
     * Told how far a run has got as chunks finish, from one thread at a time, with a count that only
     * grows (a chunk that finishes after a later one is already counted in that one's report).
     */
    @FunctionalInterface
    public interface Progress {
        /**
         * Called after a chunk finishes; it runs on the worker that finished the chunk, so keep it short.
         *
         * @param rowsDone rows normalized so far
         * @param totalRows rows in all, or -1 when the source does not know
         * @param elapsedNanos time since the run started
         */
        void update(long rowsDone, long totalRows, long elapsedNanos);
    }

    /** Where each chunk's result goes. */
    @FunctionalInterface
    public interface Sink {
        /**
         * The tensor to write the normalization of {@code chunk} into: the chunk's shape, any data type.
         *
         * @param firstRow the index of the chunk's first row in the whole stream
         * @param chunk the source rows
         * @return the destination view; may be {@code chunk} itself (in place). It must not overlap other
         *     chunks or their destinations: only the whole-tensor runs can check that
         */
        Tensor destination(long firstRow, Tensor chunk);

        /**
         * Called once the chunk's destination holds its result: the place to release it or hand it on.
         *
         * @param firstRow the index of the chunk's first row
         * @param destination what {@link #destination} returned
         */
        default void written(long firstRow, Tensor destination) {}

        /** {@return a sink that normalizes every chunk where it lies, overwriting the source} */
        static Sink inPlace() {
            return (firstRow, chunk) -> chunk;
        }
    }

    /**
     * What a run did.
     *
     * @param rows rows normalized
     * @param bytes bytes read plus bytes written
     * @param nanos wall-clock time of the run
     */
    public record Summary(long rows, long bytes, long nanos) {
        /** {@return bytes read and written per second, in GB (10^9); 0 for a run that took no time} */
        public double gigabytesPerSecond() {
            return nanos == 0 ? 0 : bytes / (double) nanos;
        }
    }

    private Pipeline(LayerNorm norm, Tensor scale, Tensor shift, long chunkRows, int parallelism, Progress progress) {
        this.norm = norm;
        this.scale = scale;
        this.shift = shift;
        this.chunkRows = chunkRows;
        this.parallelism = parallelism;
        this.progress = progress;
    }

    /**
     * A pipeline through {@code norm}, one chunk at a time, about 1 MiB of input per chunk.
     *
     * @param norm the normalization; it stays owned by the caller
     * @return a new pipeline
     */
    public static Pipeline of(LayerNorm norm) {
        return new Pipeline(Objects.requireNonNull(norm, "norm"), null, null, 0, 1, null);
    }

    /**
     * The scale and shift every chunk is normalized with, as {@link LayerNorm#forward(Tensor, Tensor, Tensor, Tensor)}
     * takes them.
     *
     * @param scale gamma, or null if the configuration has none
     * @param shift beta, or null if the configuration has none
     * @return a pipeline like this one with these parameters
     */
    public Pipeline parameters(Tensor scale, Tensor shift) {
        return new Pipeline(norm, scale, shift, chunkRows, parallelism, progress);
    }

    /**
     * Rows per chunk when the pipeline splits a tensor itself ({@link #run(Tensor, Tensor)}).
     *
     * @param rows at least 1
     * @return a pipeline like this one with this chunk size
     */
    public Pipeline chunkRows(long rows) {
        if (rows < 1) {
            throw new IllegalArgumentException("chunkRows must be at least 1, got " + rows);
        }
        return new Pipeline(norm, scale, shift, rows, parallelism, progress);
    }

    /**
     * How many chunks may be normalized at once, each by its own thread (a run starts no more threads than
     * it has chunks, when it knows their number). Each call may use threads of its own as well (see
     * {@link LayerNorm#create(dev.panorm.LayerNormConfig, dev.panorm.Backend, int)}). Above 1, the tensors'
     * memory must be accessible from other threads (a shared or automatic arena, not a confined one).
     *
     * @param chunksAtOnce at least 1
     * @return a pipeline like this one with this parallelism
     */
    public Pipeline parallelism(int chunksAtOnce) {
        if (chunksAtOnce < 1) {
            throw new IllegalArgumentException("parallelism must be at least 1, got " + chunksAtOnce);
        }
        return new Pipeline(norm, scale, shift, chunkRows, chunksAtOnce, progress);
    }

    /**
     * Where progress is reported.
     *
     * @param progress told after every chunk, or null for nobody
     * @return a pipeline like this one with this listener
     */
    public Pipeline progress(Progress progress) {
        return new Pipeline(norm, scale, shift, chunkRows, parallelism, progress);
    }

    /** Rows per chunk when the pipeline splits a source itself: as set by {@link #chunkRows}, or about 1 MiB. */
    private long chunkRowsFor(DataType type) {
        return chunkRows > 0
                ? chunkRows
                : Math.max(1, DEFAULT_CHUNK_BYTES / (norm.config().normalizedSize() * type.byteSize()));
    }

    /**
     * Normalizes {@code src} into {@code dst} chunk by chunk. Both are {@code [..., normalized shape]} with
     * the same shape and leading axes that flatten into rows (C order, padded rows included).
     *
     * @param src the input, e.g. a memory-mapped file
     * @param dst the output, the shape of {@code src}; may be {@code src} itself
     * @return what was done
     * @throws IllegalArgumentException if the tensors do not fit the normalization, naming the problem
     */
    public Summary run(Tensor src, Tensor dst) {
        return run(src, dst, null, null);
    }

    /**
     * As {@link #run(Tensor, Tensor)}, also writing each row's statistics as
     * {@link LayerNorm#forwardTraining} does.
     *
     * @param src the input, e.g. a memory-mapped file
     * @param dst the output, the shape of {@code src}
     * @param mean float32, C-contiguous, one value per row (for example the shape of {@code src} without
     *     its normalized axes); written. Null for RMS normalization, which has no mean
     * @param variance float32, C-contiguous, one value per row; written: the biased variance, or the mean
     *     square for RMS normalization
     * @return what was done; its bytes count the data, not the statistics
     * @throws IllegalArgumentException if the tensors do not fit the normalization, naming the problem
     */
    public Summary runTraining(Tensor src, Tensor dst, Tensor mean, Tensor variance) {
        return run(src, dst, mean, Objects.requireNonNull(variance, "variance"));
    }

    private Summary run(Tensor src, Tensor dst, Tensor mean, Tensor variance) {
        Objects.requireNonNull(src, "src");
        int axes = checkShapes(src.shape(), src.toString(), dst);
        long rows = src.elementCount() / norm.config().normalizedSize();
        Tensor means = perRow("mean", mean, rows);
        Tensor variances = perRow("variance", variance, rows);
        checkWholeRun(src.rows(axes, 0, rows), dst, axes, rows, means, variances);
        long perChunk = chunkRowsFor(src.dataType());
        long chunks = chunkCount(rows, perChunk);
        Iterator<Tensor> views = new Iterator<>() {
            private long next;

            @Override
            public boolean hasNext() {
                return next < chunks;
            }

            @Override
            public Tensor next() {
                long first = next++ * perChunk;
                return src.rows(axes, first, Math.min(perChunk, rows - first));
            }
        };
        return run(() -> views, rowsOf(dst, axes), rows, chunks, means, variances);
    }

    /**
     * Normalizes a {@code .npy} file into {@code dst} chunk by chunk, reading each chunk into memory the
     * reader owns: unlike a memory-mapped source, a file that another program truncates or rewrites
     * meanwhile is an error, never a fault (see {@link Npy.Reader}).
     *
     * @param src the input file; it stays open after the run
     * @param dst the output, the shape of the file's array, e.g. an {@link Npy.Output}'s tensor
     * @return what was done
     * @throws IllegalArgumentException if the shapes do not fit the normalization, naming the problem
     * @throws UncheckedIOException if reading fails or the file changed while it was read
     */
    public Summary run(Npy.Reader src, Tensor dst) {
        return run(src, dst, null, null);
    }

    /**
     * As {@link #run(Npy.Reader, Tensor)}, also writing each row's statistics as
     * {@link #runTraining(Tensor, Tensor, Tensor, Tensor)} does.
     *
     * @param src the input file; it stays open after the run
     * @param dst the output, the shape of the file's array
     * @param mean one float32 value per row, C-contiguous; written. Null for RMS normalization
     * @param variance one float32 value per row, C-contiguous; written
     * @return what was done; its bytes count the data, not the statistics
     * @throws IllegalArgumentException if the shapes do not fit the normalization, naming the problem
     * @throws UncheckedIOException if reading fails or the file changed while it was read
     */
    public Summary runTraining(Npy.Reader src, Tensor dst, Tensor mean, Tensor variance) {
        return run(src, dst, mean, Objects.requireNonNull(variance, "variance"));
    }

    private Summary run(Npy.Reader src, Tensor dst, Tensor mean, Tensor variance) {
        Objects.requireNonNull(src, "src");
        long[] shape = src.shape();
        int axes = checkShapes(shape, src.path() + " " + Arrays.toString(shape), dst);
        long rows = dst.elementCount() / norm.config().normalizedSize();
        Tensor means = perRow("mean", mean, rows);
        Tensor variances = perRow("variance", variance, rows);
        checkWholeRun(null, dst, axes, rows, means, variances); // the reader's chunks are its own memory
        long perChunk = chunkRowsFor(src.dataType());
        return run(src.chunks(axes, perChunk), rowsOf(dst, axes), rows, chunkCount(rows, perChunk), means, variances);
    }

    /**
     * Checks the run as one call on the whole tensors would be checked: each chunk's call sees its own rows
     * only, so overlaps between chunks (dst a row past src, variances a value past the means, a dst whose
     * rows lie on one another) would otherwise go through and give wrong results.
     */
    private void checkWholeRun(Tensor srcRows, Tensor dst, int axes, long rows, Tensor means, Tensor variances) {
        LayerNormAccess.operations()
                .checkChunkedForward(norm, srcRows, dst.rows(axes, 0, rows), scale, shift, means, variances);
    }

    private static long chunkCount(long rows, long perChunk) {
        return rows == 0 ? 0 : (rows - 1) / perChunk + 1; // never overflows, whatever chunkRows is
    }

    /** Checks that the destination has the source's shape, with the normalized axes; returns their number. */
    private int checkShapes(long[] srcShape, String src, Tensor dst) {
        Objects.requireNonNull(dst, "dst");
        if (!dst.hasShape(srcShape)) {
            throw new IllegalArgumentException("dst " + dst + " must have the shape of src " + src);
        }
        int axes = norm.config().normalizedAxes();
        if (srcShape.length < axes) {
            throw new IllegalArgumentException("src " + src + " has fewer axes than the " + axes + " normalized");
        }
        long[] normalized = norm.config().normalizedShape();
        if (!Arrays.equals(Arrays.copyOfRange(srcShape, srcShape.length - axes, srcShape.length), normalized)) {
            throw new IllegalArgumentException(
                    "src " + src + " must end with the normalized shape " + Arrays.toString(normalized));
        }
        return axes;
    }

    /** A sink that writes each chunk into the same rows of {@code dst}. */
    private static Sink rowsOf(Tensor dst, int axes) {
        return (firstRow, chunk) -> dst.rows(axes, firstRow, chunk.dim(0));
    }

    /** A statistics tensor as a vector of one value per row, so that chunks can slice it. */
    private static Tensor perRow(String name, Tensor statistic, long rows) {
        if (statistic == null) {
            return null;
        }
        if (statistic.dataType() != DataType.F32 || !statistic.isContiguous() || statistic.elementCount() != rows) {
            throw new IllegalArgumentException(name + " " + statistic + " must be float32, C-contiguous, with one value"
                    + " for each of the " + rows + " rows");
        }
        return Tensor.of(statistic.segment(), DataType.F32, rows);
    }

    /**
     * Normalizes a sequence of chunks (any shapes that fit the normalization, such as batches arriving from
     * another library) into what {@code sink} provides.
     *
     * @param chunks the source; iterated once, from one thread at a time
     * @param sink the destination of each chunk
     * @return what was done
     * @throws IllegalArgumentException if a chunk or the tensor the sink gives for it does not fit the
     *     normalization, naming the problem
     * @throws RuntimeException what the iterator or the sink throws, rethrown as it is
     */
    public Summary run(Iterable<Tensor> chunks, Sink sink) {
        long count = chunks instanceof Collection<?> collection ? collection.size() : -1;
        return run(chunks, sink, -1, count, null, null);
    }

    /** Runs on {@code min(parallelism, chunkCount)} threads, or {@code parallelism} when the count is -1. */
    private Summary run(
            Iterable<Tensor> chunks, Sink sink, long totalRows, long chunkCount, Tensor means, Tensor variances) {
        Objects.requireNonNull(chunks, "chunks");
        Objects.requireNonNull(sink, "sink");
        Iterator<Tensor> source = chunks.iterator();
        Stream stream = new Stream(source, sink, totalRows, means, variances, System.nanoTime());
        int threads = chunkCount < 0 ? parallelism : (int) Math.min(parallelism, chunkCount);
        if (threads <= 1) {
            stream.drain();
        } else {
            try (ExecutorService workers = Executors.newFixedThreadPool(threads, task -> {
                Thread thread = new Thread(task, "panorm-pipeline");
                thread.setDaemon(true);
                return thread;
            })) {
                List<Future<?>> running = new ArrayList<>();
                for (int i = 0; i < threads; i++) {
                    running.add(workers.submit(() -> {
                        stream.drain();
                        return null;
                    }));
                }
                for (Future<?> worker : running) {
                    await(worker, stream);
                }
            }
        }
        return new Summary(stream.rowsDone.get(), stream.bytes.get(), System.nanoTime() - stream.start);
    }

    private static void await(Future<?> worker, Stream stream) {
        try {
            worker.get();
        } catch (InterruptedException e) {
            stream.failed = true;
            Thread.currentThread().interrupt();
            throw interrupted(e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException runtime) {
                throw runtime;
            }
            if (e.getCause() instanceof Error error) {
                throw error;
            }
            throw new IllegalStateException(e.getCause());
        }
    }

    /** What a run that was interrupted throws; the interrupt status stays set. */
    private static IllegalStateException interrupted(InterruptedException cause) {
        return new IllegalStateException("interrupted while the pipeline ran", cause);
    }

    /** The state of one run, shared by its workers. */
    private final class Stream {
        final Iterator<Tensor> source;
        final Sink sink;
        final long totalRows;
        /** Per-row statistics vectors to write, or null (variance null: an inference run). */
        final Tensor means;

        final Tensor variances;
        final long start;
        final AtomicLong rowsDone = new AtomicLong();
        final AtomicLong bytes = new AtomicLong();
        long nextRow; // guarded by source
        long reportedRows; // guarded by this
        volatile boolean failed;

        Stream(Iterator<Tensor> source, Sink sink, long totalRows, Tensor means, Tensor variances, long start) {
            this.source = source;
            this.sink = sink;
            this.totalRows = totalRows;
            this.means = means;
            this.variances = variances;
            this.start = start;
        }

        void drain() {
            try {
                drainUntilEmpty();
            } catch (RuntimeException | Error e) {
                failed = true; // the other workers stop at their next chunk
                throw e;
            }
        }

        private void drainUntilEmpty() {
            while (!failed) {
                if (Thread.currentThread().isInterrupted()) { // the caller's, or the workers' when the caller was
                    throw interrupted(null);
                }
                Tensor chunk;
                long firstRow;
                synchronized (source) {
                    if (!source.hasNext()) {
                        return;
                    }
                    chunk = Objects.requireNonNull(source.next(), "the source handed out a null chunk");
                    firstRow = nextRow;
                    nextRow += rowsOf(chunk);
                }
                Tensor destination =
                        Objects.requireNonNull(sink.destination(firstRow, chunk), "the sink gave no destination");
                long rows = rowsOf(chunk);
                if (variances == null) {
                    norm.forward(chunk, destination, scale, shift);
                } else {
                    norm.forwardTraining(
                            chunk,
                            destination,
                            scale,
                            shift,
                            slice(means, firstRow, rows),
                            slice(variances, firstRow, rows));
                }
                sink.written(firstRow, destination);
                MappedPages.release(chunk);
                if (destination != chunk) {
                    MappedPages.release(destination);
                }
                rowsDone.addAndGet(rows);
                bytes.addAndGet(chunk.elementCount()
                        * (chunk.dataType().byteSize() + destination.dataType().byteSize()));
                if (progress != null) {
                    synchronized (this) {
                        // The count as it is now, not as this worker left it: another worker may have
                        // reported a larger one since, and progress must never go backwards.
                        long done = rowsDone.get();
                        if (done > reportedRows) {
                            reportedRows = done;
                            progress.update(done, totalRows, System.nanoTime() - start);
                        }
                    }
                }
            }
        }

        /** Values {@code first .. first + count - 1} of a per-row statistics vector: the chunk's statistics. */
        private static Tensor slice(Tensor vector, long first, long count) {
            return vector == null
                    ? null
                    : Tensor.of(
                            vector.segment().asSlice(first * Float.BYTES, count * Float.BYTES), DataType.F32, count);
        }

        private long rowsOf(Tensor chunk) {
            return chunk.elementCount() / norm.config().normalizedSize();
        }
    }
}
