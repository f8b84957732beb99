package dev.panorm.io;

import dev.panorm.DataType;
import dev.panorm.Tensor;
import dev.panorm.internal.io.ReplacedFile;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.LockSupport;

/**
 * NumPy's {@code .npy} format (versions 1.0, 2.0 and 3.0): read through positional reads into off-heap
 * memory ({@link Reader}, safe against files that change meanwhile) or memory mapping ({@link #map}),
 * written through memory mapping, so that no element is copied on the Java heap. Reads little-endian float32
 * ({@code <f4}) and float16 ({@code <f2}) arrays in C order; writes those, bfloat16 as its raw bit patterns
 * ({@code <u2}: NumPy has no bfloat16; widen with {@code (a.astype(np.uint32) << 16).view(np.float32)}), and
 * int8 ({@code |i1}, the output of {@code LayerNorm.forwardQuantized}). The last two are written for NumPy and
 * not read back: a {@code <u2} file cannot say whether it holds bfloat16 or integers, and no operation takes
 * int8 input.
 *
 * <p>Files are treated as untrusted: the header is parsed strictly, its size is bounded
 * ({@value #MAX_HEADER_BYTES} bytes, NumPy's own default limit), and the shape is checked against
 * the file's real size before anything is mapped, so a header that claims a gigantic array costs
 * nothing. Every problem is an {@link NpyFormatException} naming the file and what is wrong.
 *
 * <p>Output is written to a temporary file beside the target and renamed over it only once
 * complete, so a failure never leaves a partial file under the target's name.
 *
 * <p>Guide: {@code docs/pipelines.md} (.npy files).
 */
public final class Npy {
    /** The largest header accepted, as in NumPy's {@code max_header_size}. */
    public static final int MAX_HEADER_BYTES = 10_000;

    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    private static final String FLOAT32 = "<f4";
    private static final String FLOAT16 = "<f2";
    private static final String BFLOAT16_BITS = "<u2";
    private static final String INT8 = "|i1";

    private Npy() {}

    /**
     * A parsed header, as found in the file: nothing in it has been checked against the file's size.
     *
     * @param descr NumPy's type code as {@code dtype.str} spells it, e.g. {@code <f4} for little-endian
     *     float32: a header's other spellings of float32 and float16 ({@code =f4}, {@code |f4}, {@code f4},
     *     {@code float32}, ...), which NumPy reads too, arrive here as {@code <f4} and {@code <f2}
     * @param fortranOrder whether the data is in Fortran (column-major) order rather than C order
     * @param shape the dimensions, each {@code >= 0}; the header keeps a copy
     * @param dataOffset the byte offset in the file where the data starts
     */
    public record Header(String descr, boolean fortranOrder, long[] shape, long dataOffset) {
        /**
         * Copies the shape, so that the caller's array and the header's cannot change each other.
         *
         * @throws IllegalArgumentException if a dimension is negative
         * @throws NullPointerException if {@code descr} or {@code shape} is null
         */
        public Header {
            Objects.requireNonNull(descr, "descr");
            shape = shape.clone();
            for (long dim : shape) {
                if (dim < 0) {
                    throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " has a negative dimension");
                }
            }
        }

        /** {@return whether {@code other} is a header with the same type code, order, shape and data offset} */
        @Override
        public boolean equals(Object other) {
            return other instanceof Header that
                    && descr.equals(that.descr)
                    && fortranOrder == that.fortranOrder
                    && Arrays.equals(shape, that.shape)
                    && dataOffset == that.dataOffset;
        }

        @Override
        public int hashCode() {
            return Objects.hash(descr, fortranOrder, Arrays.hashCode(shape), dataOffset);
        }

        /** {@return e.g. {@code Header[descr=<f4, fortranOrder=false, shape=[2, 3], dataOffset=128]}} */
        @Override
        public String toString() {
            return "Header[descr=" + descr + ", fortranOrder=" + fortranOrder + ", shape=" + Arrays.toString(shape)
                    + ", dataOffset=" + dataOffset + "]";
        }

        /** {@return the dimensions, a copy that the caller may change} */
        @Override
        public long[] shape() {
            return shape.clone();
        }

        /**
         * {@return the number of elements: the product of the shape} It wraps around for a shape of
         * more than 2^63 elements, which only {@link Npy#map} rejects.
         */
        public long elementCount() {
            long count = 1;
            for (long dim : shape) {
                count *= dim;
            }
            return count;
        }
    }

    /**
     * Reads and validates the header of a {@code .npy} file.
     *
     * @param path the file
     * @return the header
     * @throws NpyFormatException if the file is not a well-formed {@code .npy} file
     * @throws IOException if it cannot be read
     */
    public static Header readHeader(Path path) throws IOException {
        try (FileChannel channel = openFile(path)) {
            return readHeader(path, channel);
        }
    }

    /**
     * Maps a float32 or float16, C-order {@code .npy} file read-only into {@code arena} and views it as a
     * tensor. Nothing is copied: the tensor reads the file's pages.
     *
     * <p>Map only files that nothing else writes while the tensor is in use. If the file is truncated
     * (as re-running {@code np.save} on the same path does), touching a page past its new end raises
     * SIGBUS: in Java code an {@link InternalError}, but inside oneDNN or compiled vector kernels the end
     * of the JVM. An in-place rewrite changes the data under the tensor. {@link Reader} is the safe way
     * for such files: it copies what it reads and reports a file that changed.
     *
     * @param path the file
     * @param arena owns the mapping; the tensor is valid until the arena is closed
     * @return a read-only tensor of the file's shape, {@link DataType#F32} or {@link DataType#F16}
     * @throws NpyFormatException if the file is malformed, of another type, big-endian, or in Fortran order
     * @throws IOException if it cannot be read
     */
    public static Tensor map(Path path, Arena arena) throws IOException {
        try (FileChannel channel = openFile(path)) {
            Header header = readHeader(path, channel);
            DataType type = dataType(path, header);
            long dataBytes = checkDataSize(path, channel.size(), header, type);
            MemorySegment data = channel.map(FileChannel.MapMode.READ_ONLY, header.dataOffset(), dataBytes, arena);
            return Tensor.of(data, type, header.shape());
        }
    }

    /**
     * A {@code .npy} file opened for reading through positional reads into off-heap memory: the safe way
     * to read a file that another program may rewrite. Unlike a {@linkplain #map mapped} tensor, whose
     * pages are read when touched (a file truncated meanwhile then faults inside the kernel, which can
     * end the JVM), a reader copies the rows it needs into memory it owns, and reports a file that
     * shrank, grew or was modified while it was being read as an {@link IOException} saying so.
     *
     * {@snippet :
     * try (Npy.Reader in = Npy.Reader.open(Path.of("x.npy"));
     *      Arena arena = Arena.ofConfined()) {
     *     Tensor x = in.read(arena);                      // the whole array, or:
     *     for (Tensor chunk : in.chunks(1, 4096)) { }     // 4096 rows at a time, for files larger than memory
     * }
     * }
     *
     * <p>A reader may be used by several threads at once. {@link #close()} frees the chunk buffers.
     */
    public static final class Reader implements AutoCloseable {
        private final Path path;
        private final FileChannel channel;
        private final Header header;
        private final DataType dataType;
        private final long dataBytes;
        private final long fileSize;
        private final Object fileKey;
        private final FileTime modified;
        /**
         * Per thread, its chunk buffer, shared by every {@link #chunks} of this reader; grown when too small, and freed
         * once its thread has ended (a pipeline's workers are new threads on every run).
         */
        private final Map<Thread, Buffer> buffer = new ConcurrentHashMap<>();

        private boolean closed;

        /** A chunk buffer in an arena of its own, so that it can be freed alone. */
        private record Buffer(Arena arena, MemorySegment memory) {}

        private Reader(Path path, FileChannel channel) throws IOException {
            this.path = path;
            this.channel = channel;
            BasicFileAttributes attributes = Files.readAttributes(path, BasicFileAttributes.class);
            this.fileKey = attributes.fileKey();
            this.modified = attributes.lastModifiedTime();
            this.fileSize = channel.size();
            this.header = readHeader(path, channel);
            this.dataType = Npy.dataType(path, header);
            this.dataBytes = checkDataSize(path, fileSize, header, dataType);
        }

        /**
         * Opens a float32 or float16, C-order {@code .npy} file and validates its header against its size.
         *
         * @param path the file
         * @return the reader; close it
         * @throws NpyFormatException if the file is malformed, of another type, big-endian, or in Fortran order
         * @throws IOException if it cannot be read
         */
        public static Reader open(Path path) throws IOException {
            FileChannel channel = openFile(path);
            try {
                return new Reader(path, channel);
            } catch (IOException | RuntimeException e) {
                channel.close();
                throw e;
            }
        }

        /** {@return the file, as given to {@link #open}} */
        public Path path() {
            return path;
        }

        /** {@return the element type: {@link DataType#F32} or {@link DataType#F16}} */
        public DataType dataType() {
            return dataType;
        }

        /** {@return the array's shape (a copy)} */
        public long[] shape() {
            return header.shape().clone();
        }

        /**
         * Reads the whole array into memory from {@code arena}.
         *
         * @param arena owns the memory of the tensor returned
         * @return a C-ordered tensor holding the array
         * @throws IOException if reading fails, the file changed while it was read, or this reader is closed
         *     ({@link java.nio.channels.ClosedChannelException})
         */
        public Tensor read(Arena arena) throws IOException {
            MemorySegment data = arena.allocate(dataBytes, 64);
            readData(0, data);
            checkUnchanged();
            return Tensor.of(data, dataType, header.shape());
        }

        /**
         * The array a chunk of rows at a time, each read when the iteration reaches it: the source for
         * {@code Pipeline}. The last {@code trailingAxes} axes form a row; a chunk has shape
         * {@code [rows, d(n-k), ..., d(n-1)]}, {@code rowsPerChunk} rows except the last one. Reading the
         * last chunk also checks that the file did not change since it was opened.
         *
         * <p>A chunk lives in a buffer of the thread that took it, reused for the next chunk that thread
         * takes from any iteration of this reader: use a chunk before taking the next one, as
         * {@code Pipeline} does (each of its workers takes a chunk only after writing the last one). Iterate
         * from one thread at a time, or under a lock, as {@code Pipeline} does. The buffers (one per thread,
         * as large as its largest chunk) are freed when the reader closes, and a thread's once it has ended.
         * Reading failures and changes to the file surface as an {@link UncheckedIOException} from the
         * iterator.
         *
         * @param trailingAxes how many of the last axes form a row, {@code 1 <= k <= rank}
         * @param rowsPerChunk at least 1
         * @return the chunks, in order; each iteration reads the file again
         * @throws IllegalArgumentException if {@code trailingAxes} or {@code rowsPerChunk} is out of range
         */
        public Iterable<Tensor> chunks(int trailingAxes, long rowsPerChunk) {
            long[] shape = header.shape();
            if (trailingAxes < 1 || trailingAxes > shape.length) {
                throw new IllegalArgumentException("trailingAxes must be between 1 and the rank " + shape.length
                        + " of " + path + ", got " + trailingAxes);
            }
            if (rowsPerChunk < 1) {
                throw new IllegalArgumentException("rowsPerChunk must be at least 1, got " + rowsPerChunk);
            }
            long[] rowShape = new long[trailingAxes + 1]; // [rows of the chunk, the row's own axes...]
            System.arraycopy(shape, shape.length - trailingAxes, rowShape, 1, trailingAxes);
            long rowElements = 1;
            for (int axis = 1; axis < rowShape.length; axis++) {
                rowElements *= rowShape[axis];
            }
            long rowBytes = rowElements * dataType.byteSize();
            long rows = rowBytes == 0 ? 0 : dataBytes / rowBytes;
            long perChunk = Math.min(rowsPerChunk, Math.max(rows, 1));
            return () -> new Iterator<>() {
                private long next;

                @Override
                public boolean hasNext() {
                    return next < rows;
                }

                @Override
                public Tensor next() {
                    if (!hasNext()) {
                        throw new NoSuchElementException();
                    }
                    long count = Math.min(perChunk, rows - next);
                    MemorySegment data = buffer(perChunk * rowBytes).asSlice(0, count * rowBytes);
                    try {
                        readData(next * rowBytes, data);
                        next += count;
                        if (next == rows) {
                            checkUnchanged();
                        }
                    } catch (ClosedChannelException e) { // closed by another thread, during the read or before
                        throw closed(e);
                    } catch (IOException e) {
                        throw new UncheckedIOException(e);
                    }
                    long[] chunkShape = rowShape.clone();
                    chunkShape[0] = count;
                    return Tensor.of(data, dataType, chunkShape);
                }
            };
        }

        /** The calling thread's chunk buffer, of at least {@code bytes}; frees those of threads that have ended. */
        private MemorySegment buffer(long bytes) {
            Thread thread = Thread.currentThread();
            Buffer mine = buffer.get(thread);
            if (mine != null && mine.memory().byteSize() >= bytes) {
                return mine.memory();
            }
            buffer.forEach((holder, ended) -> {
                if (!holder.isAlive() && buffer.remove(holder, ended)) {
                    ended.arena().close();
                }
            });
            Arena arena = Arena.ofShared();
            Buffer grown = new Buffer(arena, arena.allocate(bytes, 64));
            synchronized (this) { // against close(): a buffer made after it would never be freed
                if (closed) {
                    arena.close();
                    throw closed(null);
                }
                buffer.put(thread, grown);
            }
            if (mine != null) {
                mine.arena().close(); // this thread's chunks from it are done: each is used before the next is taken
            }
            return grown.memory();
        }

        private IllegalStateException closed(Exception cause) {
            return new IllegalStateException("the reader of " + path + " is closed", cause);
        }

        /** Fills {@code into} with data bytes from {@code offset} on; the file ending early means it shrank. */
        private void readData(long offset, MemorySegment into) throws IOException {
            long position = header.dataOffset() + offset;
            for (long done = 0; done < into.byteSize(); ) {
                // A ByteBuffer holds at most 2^31 - 1 bytes: read larger regions in slices.
                ByteBuffer buffer = into.asSlice(done, Math.min(into.byteSize() - done, 1 << 30))
                        .asByteBuffer();
                while (buffer.hasRemaining()) {
                    if (channel.read(buffer, position + done + buffer.position()) < 0) {
                        throw changed("it has " + channel.size() + " bytes now, " + fileSize + " when opened");
                    }
                }
                done += buffer.capacity();
            }
        }

        /**
         * Checks that the file is as it was when opened: the same size and, unless the path now names
         * another file (a rename leaves the opened one intact), the same modification time.
         *
         * @throws IOException if it changed
         */
        public void checkUnchanged() throws IOException {
            long size = channel.size();
            if (size != fileSize) {
                throw changed("it has " + size + " bytes now, " + fileSize + " when opened");
            }
            BasicFileAttributes now;
            try {
                now = Files.readAttributes(path, BasicFileAttributes.class);
            } catch (NoSuchFileException removed) {
                return; // removed: what was opened is still intact
            }
            if (Objects.equals(now.fileKey(), fileKey)
                    && !now.lastModifiedTime().equals(modified)) {
                throw changed("it was modified at " + now.lastModifiedTime());
            }
        }

        private IOException changed(String how) {
            return new IOException(
                    path + " changed while it was being read (" + how + "); run again once it is" + " complete");
        }

        /** How many chunk buffers the reader holds (for tests). */
        int buffersHeld() {
            return buffer.size();
        }

        /**
         * Closes the file and frees the chunk buffers; chunks read from it are invalid afterwards. A call in flight on
         * another thread that uses a chunk (a pipeline's worker normalizing it) is waited for: its buffer is freed
         * once the call returns. Closing again does nothing.
         *
         * @throws IOException if closing the file fails (the buffers are freed all the same)
         */
        @Override
        public void close() throws IOException {
            synchronized (this) {
                if (closed) {
                    return;
                }
                closed = true;
            }
            try {
                channel.close();
            } finally {
                buffer.values().forEach(held -> free(held.arena()));
                buffer.clear();
            }
        }

        /**
         * Closes a buffer's arena, waiting while a call on another thread holds it: a downcall or kernel that got a
         * chunk from it keeps its arena acquired, and {@link Arena#close()} then throws rather than wait.
         */
        private static void free(Arena arena) {
            while (true) {
                try {
                    arena.close();
                    return;
                } catch (IllegalStateException held) {
                    if (!arena.scope().isAlive()) {
                        return;
                    }
                    LockSupport.parkNanos(100_000);
                }
            }
        }
    }

    /** The element type of a C-order float32 or float16 file; anything else is refused. */
    private static DataType dataType(Path path, Header header) throws NpyFormatException {
        DataType type = switch (header.descr()) {
            case FLOAT32 -> DataType.F32;
            case FLOAT16 -> DataType.F16;
            default -> throw new NpyFormatException(path, describeUnsupported(header.descr()));
        };
        if (header.fortranOrder()) {
            throw new NpyFormatException(
                    path, "is in Fortran order; save it in C order " + "(np.save(path, np.ascontiguousarray(a)))");
        }
        return type;
    }

    /**
     * Maps a float32 {@code .npy} file, like {@link #map}, refusing any other type.
     *
     * @param path the file
     * @param arena owns the mapping
     * @return a read-only float32 tensor
     * @throws NpyFormatException if the file is malformed or not float32
     * @throws IOException if it cannot be read
     */
    public static Tensor mapFloat32(Path path, Arena arena) throws IOException {
        Tensor tensor = map(path, arena);
        if (tensor.dataType() != DataType.F32) {
            throw new NpyFormatException(path, "holds '" + FLOAT16 + "' (float16); float32 ('<f4') is needed here");
        }
        return tensor;
    }

    /**
     * Writes a tensor as a {@code .npy} file, atomically, in C order whatever its strides.
     *
     * @param path the target; replaced if it exists
     * @param tensor the data, of any type and strides ({@link Output#create(Path, long[], DataType, Arena)} says
     *     how each type is stored); a strided tensor is copied to C order first, a row at a time where rows are
     *     contiguous
     * @throws IOException if writing fails; the target is then left as it was
     * @throws IllegalStateException if the tensor's memory has been freed
     * @throws WrongThreadException if the tensor's memory is confined to another thread
     */
    public static void write(Path path, Tensor tensor) throws IOException {
        try (Arena arena = Arena.ofConfined();
                Output output = Output.create(path, tensor.shape(), tensor.dataType(), arena)) {
            copyInCOrder(tensor, output.tensor().segment());
            output.commit();
        }
    }

    /** Copies {@code tensor}'s elements into {@code to} in C order: in one piece if it is contiguous, else in runs. */
    private static void copyInCOrder(Tensor tensor, MemorySegment to) {
        MemorySegment from = tensor.segment();
        if (tensor.isContiguous()) {
            MemorySegment.copy(from, 0, to, 0, tensor.byteExtent());
            return;
        }
        long[] shape = tensor.shape();
        long[] strides = tensor.strides();
        long elementBytes = tensor.dataType().byteSize();
        int last = shape.length - 1;
        boolean rowsContiguous = strides[last] == 1;
        long runBytes = (rowsContiguous ? shape[last] : 1) * elementBytes;
        long[] index = new long[shape.length];
        for (long at = 0; at < to.byteSize(); at += runBytes) {
            long offset = 0;
            for (int axis = 0; axis < shape.length; axis++) {
                offset += index[axis] * strides[axis];
            }
            MemorySegment.copy(from, offset * elementBytes, to, at, runBytes);
            for (int axis = rowsContiguous ? last - 1 : last; axis >= 0 && ++index[axis] == shape[axis]; axis--) {
                index[axis] = 0; // the next index, like an odometer
            }
        }
    }

    /**
     * A {@code .npy} file being written: a temporary file beside the target, mapped so that
     * an operation can write its result straight into it. {@link #commit()} makes it durable and
     * renames it over the target; closing without committing deletes it.
     *
     * <p>As a Unix tool would: a target that is a symbolic link is written through (the file it points
     * to is replaced, the link stays); a target that exists but is not a regular file (a directory, a
     * FIFO, a device) is refused, never replaced; a new file gets mode {@code 0666 & ~umask}, a replaced
     * one keeps its mode. Errors name the target as given and the reason (directory missing, permission
     * denied, read-only file system, disk full), never the temporary file.
     *
     * <p>The temporary file is private to this output. On Linux it has no name until {@link #commit()}
     * ({@code O_TMPFILE}), so a process killed meanwhile leaves nothing behind; where the file system cannot make
     * unnamed files it is a hidden file beside the target, and another program that truncates it while it is mapped
     * can make the JVM fail on the next write into it, as with any mapped file.
     */
    public static final class Output implements AutoCloseable {
        private final ReplacedFile file;
        private final Tensor tensor;

        private Output(ReplacedFile file, Tensor tensor) {
            this.file = file;
            this.tensor = tensor;
        }

        /**
         * Creates a float32 output; see {@link #create(Path, long[], DataType, Arena)}.
         *
         * @param target where the file will appear on {@link #commit()}
         * @param shape the array's shape
         * @param arena owns the mapping
         * @return the output; close it
         * @throws IOException if the file cannot be created
         */
        public static Output create(Path target, long[] shape, Arena arena) throws IOException {
            return create(target, shape, DataType.F32, arena);
        }

        /**
         * Creates the temporary file with its header, reserves its disk space, and maps its data region
         * into {@code arena}.
         *
         * @param target where the file will appear on {@link #commit()}; a symbolic link is followed
         * @param shape the array's shape
         * @param type the element type: float32 ({@code <f4}), float16 ({@code <f2}), bfloat16 (bit patterns,
         * {@code <u2}) or int8 ({@code |i1})
         * @param arena owns the mapping
         * @return the output; close it
         * @throws IOException naming {@code target} and the reason, if the file cannot be created or its space
         *     reserved, or if {@code target} exists and is not a regular file
         */
        public static Output create(Path target, long[] shape, DataType type, Arena arena) throws IOException {
            byte[] header = header(
                    switch (type) {
                        case F32 -> FLOAT32;
                        case F16 -> FLOAT16;
                        case BF16 -> BFLOAT16_BITS;
                        case S8 -> INT8;
                    },
                    shape);
            long dataBytes;
            try {
                dataBytes = Math.multiplyExact(elementCount(shape), type.byteSize());
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " is too large");
            }
            ReplacedFile file = ReplacedFile.create(target);
            try {
                FileChannel channel = file.channel();
                channel.write(ByteBuffer.wrap(header));
                // Reserve every block first: mapping past the end is not allowed, and a page written through
                // the mapping must not find the disk full (that is a SIGBUS, not an exception).
                DiskSpace.reserve(file.temporary(), header.length + dataBytes);
                MemorySegment data = channel.map(FileChannel.MapMode.READ_WRITE, header.length, dataBytes, arena);
                return new Output(file, Tensor.of(data, type, shape));
            } catch (IOException e) {
                file.close();
                throw file.cannotWrite(e);
            } catch (RuntimeException e) {
                file.close();
                throw e;
            }
        }

        /**
         * {@return the writable tensor over the file's data region, C order, of the shape and type given
         * to {@code create}} Write the result into it before {@link #commit()}; it is valid until the
         * arena closes.
         */
        public Tensor tensor() {
            return tensor;
        }

        /**
         * Flushes the data to disk and renames the file over the target (over the file a symbolic link
         * points to, leaving the link).
         *
         * @throws IOException if flushing or renaming fails, naming the target and the reason; the target is
         *     then left as it was
         * @throws IllegalStateException if this output is committed or closed already, or the arena that owns its
         *     mapping has been closed
         */
        public void commit() throws IOException {
            if (!tensor.segment().scope().isAlive()) { // force() would say only "Already closed"
                throw new IllegalStateException("the arena that owns the mapping of " + file.target()
                        + " is closed: commit before closing it (the result may not have reached the disk)");
            }
            try {
                tensor.segment().force();
            } catch (UncheckedIOException e) {
                throw file.cannotWrite(e.getCause());
            }
            file.commit();
        }

        /** Deletes the temporary file unless {@link #commit()} succeeded. */
        @Override
        public void close() {
            file.close();
        }
    }

    /**
     * Opens a file to read, refusing anything but a regular file: a directory cannot be read, and reading a FIFO or a
     * device would wait, or never end.
     */
    private static FileChannel openFile(Path path) throws IOException {
        if (Files.exists(path) && !Files.isRegularFile(path)) {
            throw new IOException(
                    "cannot read " + path + ": it is " + ReplacedFile.kind(path) + ", not a regular file");
        }
        return FileChannel.open(path, StandardOpenOption.READ);
    }

    private static long elementCount(long[] shape) {
        long count = 1;
        for (long dim : shape) {
            if (dim < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            }
            count = Math.multiplyExact(count, dim);
        }
        return count;
    }

    /** The header bytes NumPy writes: magic, version, length, dict, padded with spaces to 64 bytes. */
    static byte[] header(String descr, long[] shape) {
        StringBuilder dims = new StringBuilder();
        for (long dim : shape) {
            dims.append(dim).append(", ");
        }
        String shapeText = shape.length == 1
                ? "(" + shape[0] + ",)"
                : "(" + (dims.isEmpty() ? "" : dims.substring(0, dims.length() - 2)) + ")";
        String dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shapeText + ", }";
        int preamble = dict.length() + 1 > 65535 - 64 ? 12 : 10;
        int total = preamble + dict.length() + 1;
        int padded = (total + 63) / 64 * 64;
        String text = dict + " ".repeat(padded - total) + "\n";
        ByteBuffer out = ByteBuffer.allocate(preamble + text.length()).order(ByteOrder.LITTLE_ENDIAN);
        out.put(MAGIC).put((byte) (preamble == 10 ? 1 : 2)).put((byte) 0);
        if (preamble == 10) {
            out.putShort((short) text.length());
        } else {
            out.putInt(text.length());
        }
        out.put(text.getBytes(StandardCharsets.US_ASCII));
        return out.array();
    }

    private static Header readHeader(Path path, FileChannel channel) throws IOException {
        long fileSize = channel.size();
        ByteBuffer preamble = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
        readFully(channel, preamble, 0);
        if (preamble.position() < 10 || !Arrays.equals(Arrays.copyOf(preamble.array(), 6), MAGIC)) {
            throw new NpyFormatException(path, "is not a .npy file (it does not start with \\x93NUMPY)");
        }
        int major = preamble.get(6) & 0xff;
        int minor = preamble.get(7) & 0xff;
        if (major < 1 || major > 3 || minor != 0) {
            throw new NpyFormatException(
                    path,
                    "has .npy format version " + major + "." + minor + "; versions 1.0, 2.0 and 3.0 are supported");
        }
        int lengthBytes = major == 1 ? 2 : 4;
        if (fileSize < 8 + lengthBytes) {
            throw new NpyFormatException(path, "is truncated inside its header");
        }
        long headerLength = major == 1 ? preamble.getShort(8) & 0xffff : preamble.getInt(8) & 0xffffffffL;
        if (headerLength > MAX_HEADER_BYTES) {
            throw new NpyFormatException(
                    path, "has a header of " + headerLength + " bytes; at most " + MAX_HEADER_BYTES + " are accepted");
        }
        long dataOffset = 8 + lengthBytes + headerLength;
        if (fileSize < dataOffset) {
            throw new NpyFormatException(
                    path, "is truncated inside its header (" + fileSize + " bytes, header ends at " + dataOffset + ")");
        }
        ByteBuffer text = ByteBuffer.allocate((int) headerLength);
        readFully(channel, text, 8 + lengthBytes);
        // Versions 1 and 2 are latin-1 (ASCII in practice), version 3 is UTF-8; the dict itself is ASCII.
        String dict = new String(text.array(), major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
        return HeaderParser.parse(path, dict, dataOffset, major < 3);
    }

    /** Reads until {@code buffer} is full or the file ends. */
    private static void readFully(FileChannel channel, ByteBuffer buffer, long position) throws IOException {
        while (buffer.hasRemaining()) {
            int n = channel.read(buffer, position + buffer.position());
            if (n < 0) {
                return;
            }
        }
    }

    private static long checkDataSize(Path path, long fileSize, Header header, DataType type)
            throws NpyFormatException {
        // Bounded as NumPy does, counting empty dimensions as 1: a shape such as (0, 2^62, 4) holds
        // nothing, but the strides computed from it would overflow.
        long span = type.byteSize();
        try {
            for (long dim : header.shape()) {
                span = Math.multiplyExact(span, Math.max(dim, 1));
            }
        } catch (ArithmeticException e) {
            boolean empty = Arrays.stream(header.shape()).anyMatch(dim -> dim == 0);
            throw new NpyFormatException(
                    path,
                    "claims shape " + Arrays.toString(header.shape()) + ", more than 2^63 bytes"
                            + (empty ? " counting its empty dimensions as 1" : ""));
        }
        long dataBytes = elementCount(header.shape()) * type.byteSize();
        long available = fileSize - header.dataOffset();
        if (available < dataBytes) {
            throw new NpyFormatException(
                    path,
                    "is truncated: shape " + Arrays.toString(header.shape()) + " of " + type + " needs " + dataBytes
                            + " bytes of data, the file holds " + available);
        }
        if (available > dataBytes) {
            throw new NpyFormatException(
                    path,
                    "has " + (available - dataBytes) + " bytes after the data that shape "
                            + Arrays.toString(header.shape()) + " describes");
        }
        return dataBytes;
    }

    private static String describeUnsupported(String descr) {
        if (descr.equals(">f4")) {
            return "holds big-endian float32 ('>f4'); convert it with a.astype('<f4')";
        }
        if (descr.startsWith(">")) {
            return "holds big-endian data ('" + descr + "'); convert it with a.astype(a.dtype.newbyteorder('<'))";
        }
        if (descr.contains("O")) {
            return "holds Python objects ('" + descr + "'); only float32 ('<f4') and float16 ('<f2') are supported";
        }
        return "holds '" + descr + "'; only float32 ('<f4') and float16 ('<f2') are supported: convert with "
                + "a.astype(np.float32)";
    }

    /** A strict parser for the header's Python dict literal, with exactly NumPy's three keys. */
    private static final class HeaderParser {
        private final Path path;
        private final String text;
        private int at;

        private HeaderParser(Path path, String text) {
            this.path = path;
            this.text = text;
        }

        /**
         * Parses {@code text}; {@code python2Longs} accepts {@code 8L} for 8 in the shape, as NumPy does in
         * format versions 1.0 and 2.0, which Python 2 wrote.
         */
        static Header parse(Path path, String text, long dataOffset, boolean python2Longs) throws NpyFormatException {
            HeaderParser p = new HeaderParser(path, text);
            String descr = null;
            Boolean fortran = null;
            long[] shape = null;
            Set<String> keys = new HashSet<>();
            p.expect('{');
            while (!p.peek('}')) {
                String key = p.string();
                if (!keys.add(key)) {
                    // Python keeps the last of duplicate keys, another reader may keep the first: refuse the ambiguity.
                    p.fail("has the header key '" + key + "' twice");
                }
                p.expect(':');
                switch (key) {
                    case "descr" ->
                        descr = p.peek('[')
                                ? p.fail(
                                        "has a structured dtype; only float32 ('<f4') and float16 ('<f2') are supported")
                                : p.string();
                    case "fortran_order" -> fortran = p.bool();
                    case "shape" -> shape = p.shape(python2Longs);
                    default -> p.fail("has an unexpected header key '" + key + "'");
                }
                if (!p.peek('}')) {
                    p.expect(',');
                }
            }
            p.expect('}');
            p.skipSpace();
            if (p.at != text.length()) {
                p.fail("has text after the header dict");
            }
            if (descr == null || fortran == null || shape == null) {
                p.fail("has a header without 'descr', 'fortran_order' and 'shape'");
            }
            return new Header(canonical(descr), fortran, shape, dataOffset);
        }

        /**
         * NumPy's {@code dtype.str} for its other spellings of float32 and float16: type codes with {@code =}
         * (native) or {@code |} (no order) or no byte order, which on this little-endian platform mean {@code <},
         * and the names {@code np.dtype} takes. Other types keep their spelling.
         */
        private static String canonical(String descr) {
            if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN && !descr.startsWith("<")) {
                return descr; // there, native order is big-endian
            }
            String code = descr.isEmpty() || "<=|".indexOf(descr.charAt(0)) < 0 ? descr : descr.substring(1);
            return switch (code) {
                case "f4", "f" -> FLOAT32;
                case "f2", "e" -> FLOAT16;
                default ->
                    switch (descr) {
                        case "float32", "single" -> FLOAT32;
                        case "float16", "half" -> FLOAT16;
                        default -> descr;
                    };
            };
        }

        /** ASCII only, as in Python: Character.isWhitespace would also take U+2003 and friends. */
        private void skipSpace() {
            while (at < text.length() && " \t\n\r\f".indexOf(text.charAt(at)) >= 0) {
                at++;
            }
        }

        private boolean peek(char c) {
            skipSpace();
            return at < text.length() && text.charAt(at) == c;
        }

        private void expect(char c) throws NpyFormatException {
            if (!peek(c)) {
                fail("has a malformed header: expected '" + c + "' at offset " + at);
            }
            at++;
        }

        private String string() throws NpyFormatException {
            skipSpace();
            if (at >= text.length() || (text.charAt(at) != '\'' && text.charAt(at) != '"')) {
                fail("has a malformed header: expected a string at offset " + at);
            }
            char quote = text.charAt(at++);
            int end = text.indexOf(quote, at);
            if (end < 0) {
                fail("has a malformed header: unterminated string");
            }
            String value = text.substring(at, end);
            at = end + 1;
            return value;
        }

        private boolean bool() throws NpyFormatException {
            skipSpace();
            if (text.startsWith("True", at)) {
                at += 4;
                return true;
            }
            if (text.startsWith("False", at)) {
                at += 5;
                return false;
            }
            return fail("has a malformed header: expected True or False at offset " + at);
        }

        private long[] shape(boolean python2Longs) throws NpyFormatException {
            expect('(');
            List<Long> dims = new ArrayList<>();
            boolean comma = false;
            while (!peek(')')) {
                int start = at;
                // ASCII digits only: Character.isDigit and Long.parseLong would read U+0663 (Arabic-Indic three) as 3.
                while (at < text.length() && text.charAt(at) >= '0' && text.charAt(at) <= '9') {
                    at++;
                }
                if (start == at) {
                    fail("has a malformed shape: expected a non-negative integer at offset " + at);
                }
                try {
                    dims.add(Long.parseLong(text.substring(start, at)));
                } catch (NumberFormatException e) {
                    fail("has a dimension too large for a 64-bit integer");
                }
                if (python2Longs && at < text.length() && text.charAt(at) == 'L') {
                    at++;
                }
                if (dims.size() > 64) {
                    fail("has more than 64 dimensions");
                }
                comma = !peek(')');
                if (comma) {
                    expect(',');
                }
            }
            if (dims.size() == 1 && !comma) {
                // Python reads (80) as the number 80, and NumPy refuses it; a reader taking it as [80] would guess.
                fail("has a malformed shape: (" + dims.get(0) + ") is not a tuple; a one-dimensional shape is written ("
                        + dims.get(0) + ",)");
            }
            expect(')');
            return dims.stream().mapToLong(Long::longValue).toArray();
        }

        private <T> T fail(String problem) throws NpyFormatException {
            throw new NpyFormatException(path, problem);
        }
    }
}
