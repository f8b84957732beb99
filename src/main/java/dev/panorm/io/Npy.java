package dev.panorm.io;

import dev.panorm.DataType;
import dev.panorm.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * NumPy's {@code .npy} format (versions 1.0, 2.0 and 3.0), read and written through memory mapping
 * so that no element is copied on the Java heap. Reads little-endian float32 ({@code <f4}) and
 * float16 ({@code <f2}) arrays in C order; writes float32, float16, and bfloat16 as its raw bit
 * patterns ({@code <u2}: NumPy has no bfloat16; widen with
 * {@code (a.astype(np.uint32) << 16).view(np.float32)}).
 *
 * <p>Files are treated as untrusted: the header is parsed strictly, its size is bounded
 * ({@value #MAX_HEADER_BYTES} bytes, NumPy's own default limit), and the shape is checked against
 * the file's real size before anything is mapped, so a header that claims a gigantic array costs
 * nothing. Every problem is an {@link NpyFormatException} naming the file and what is wrong.
 *
 * <p>Output is written to a temporary file beside the target and renamed over it only once
 * complete, so a failure never leaves a partial file under the target's name.
 */
public final class Npy {
    /** The largest header accepted, as in NumPy's {@code max_header_size}. */
    public static final int MAX_HEADER_BYTES = 10_000;

    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    private static final String FLOAT32 = "<f4";
    private static final String FLOAT16 = "<f2";
    private static final String BFLOAT16_BITS = "<u2";

    private Npy() {}

    /**
     * A parsed header, as found in the file: nothing in it has been checked against the file's size.
     *
     * @param descr NumPy's type code, e.g. {@code <f4} for little-endian float32
     * @param fortranOrder whether the data is in Fortran (column-major) order rather than C order
     * @param shape the dimensions, each {@code >= 0} (the array itself, not a copy)
     * @param dataOffset the byte offset in the file where the data starts
     */
    public record Header(String descr, boolean fortranOrder, long[] shape, long dataOffset) {
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
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            return readHeader(path, channel);
        }
    }

    /**
     * Maps a float32 or float16, C-order {@code .npy} file read-only into {@code arena} and views it as a
     * tensor. Nothing is copied: the tensor reads the file's pages.
     *
     * @param path the file
     * @param arena owns the mapping; the tensor is valid until the arena is closed
     * @return a read-only tensor of the file's shape, {@link DataType#F32} or {@link DataType#F16}
     * @throws NpyFormatException if the file is malformed, of another type, big-endian, or in Fortran order
     * @throws IOException if it cannot be read
     */
    public static Tensor map(Path path, Arena arena) throws IOException {
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            Header header = readHeader(path, channel);
            DataType type = switch (header.descr()) {
                case FLOAT32 -> DataType.F32;
                case FLOAT16 -> DataType.F16;
                default -> throw new NpyFormatException(path, describeUnsupported(header.descr()));
            };
            if (header.fortranOrder()) {
                throw new NpyFormatException(path, "is in Fortran order; save it in C order "
                        + "(np.save(path, np.ascontiguousarray(a)))");
            }
            long dataBytes = checkDataSize(path, channel.size(), header, type);
            MemorySegment data = channel.map(FileChannel.MapMode.READ_ONLY, header.dataOffset(), dataBytes, arena);
            return Tensor.of(data, type, header.shape());
        }
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
     * @param tensor the data; a strided float32 tensor is written element by element
     * @throws IOException if writing fails; the target is then left as it was
     */
    public static void write(Path path, Tensor tensor) throws IOException {
        try (Arena arena = Arena.ofConfined();
             Output output = Output.create(path, tensor.shape(), tensor.dataType(), arena)) {
            output.tensor().segment().copyFrom(contiguousCopy(tensor, arena));
            output.commit();
        }
    }

    private static MemorySegment contiguousCopy(Tensor tensor, Arena arena) {
        if (tensor.isContiguous()) {
            return tensor.segment().asSlice(0, tensor.byteExtent());
        }
        if (tensor.dataType() != DataType.F32) {
            throw new IllegalArgumentException("only contiguous " + tensor.dataType() + " tensors can be written, got "
                    + tensor);
        }
        return arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_FLOAT, tensor.toFloatArray());
    }

    /**
     * A {@code .npy} file being written: a temporary file beside the target, mapped so that
     * an operation can write its result straight into it. {@link #commit()} makes it durable and
     * renames it over the target; closing without committing deletes it.
     */
    public static final class Output implements AutoCloseable {
        private final Path target;
        private final Path temporary;
        private final Tensor tensor;
        private final Thread cleanupOnExit;
        private boolean done;

        private Output(Path target, Path temporary, Tensor tensor) {
            this.target = target;
            this.temporary = temporary;
            this.tensor = tensor;
            // If the JVM is stopped mid-write (Ctrl-C), do not leave the temporary file behind.
            this.cleanupOnExit = new Thread(() -> deleteQuietly(temporary), "panorm-npy-cleanup");
            Runtime.getRuntime().addShutdownHook(cleanupOnExit);
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
         * Creates the temporary file with its header and maps its data region into {@code arena}.
         *
         * @param target where the file will appear on {@link #commit()}
         * @param shape the array's shape
         * @param type the element type: float32 ({@code <f4}), float16 ({@code <f2}) or bfloat16 (bit patterns, {@code <u2})
         * @param arena owns the mapping
         * @return the output; close it
         * @throws IOException if the file cannot be created
         */
        public static Output create(Path target, long[] shape, DataType type, Arena arena) throws IOException {
            Path absolute = target.toAbsolutePath();
            byte[] header = header(switch (type) {
                case F32 -> FLOAT32;
                case F16 -> FLOAT16;
                case BF16 -> BFLOAT16_BITS;
            }, shape);
            long dataBytes;
            try {
                dataBytes = Math.multiplyExact(elementCount(shape), type.byteSize());
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " is too large");
            }
            Path temporary = Files.createTempFile(absolute.getParent(), "." + absolute.getFileName() + ".", ".tmp");
            try (FileChannel channel = FileChannel.open(temporary, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                channel.write(ByteBuffer.wrap(header));
                // Reserve every block first: mapping past the end is not allowed, and a page written through
                // the mapping must not find the disk full (that is a SIGBUS, not an exception).
                try {
                    DiskSpace.reserve(temporary, header.length + dataBytes);
                } catch (IOException e) {
                    throw new IOException("cannot write " + absolute + ": " + e.getMessage(), e);
                }
                MemorySegment data = channel.map(FileChannel.MapMode.READ_WRITE, header.length, dataBytes, arena);
                return new Output(absolute, temporary, Tensor.of(data, type, shape));
            } catch (IOException | RuntimeException e) {
                deleteQuietly(temporary);
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
         * Flushes the data to disk and renames the file over the target.
         *
         * @throws IOException if flushing or renaming fails; the target is then left as it was
         */
        public void commit() throws IOException {
            if (done) {
                throw new IllegalStateException("already committed or closed");
            }
            tensor.segment().force();
            Files.move(temporary, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            finish();
        }

        /** Deletes the temporary file unless {@link #commit()} succeeded. */
        @Override
        public void close() {
            if (!done) {
                deleteQuietly(temporary);
                finish();
            }
        }

        private void finish() {
            done = true;
            try {
                Runtime.getRuntime().removeShutdownHook(cleanupOnExit);
            } catch (IllegalStateException shuttingDown) {
                // The hook runs anyway; it finds nothing to delete after a commit.
            }
        }
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

    private static void deleteQuietly(Path path) {
        try {
            Files.deleteIfExists(path);
        } catch (IOException ignored) {
            // Best effort: the file has a hidden temporary name.
        }
    }

    /** The header bytes NumPy writes: magic, version, length, dict, padded with spaces to 64 bytes. */
    static byte[] header(String descr, long[] shape) {
        StringBuilder dims = new StringBuilder();
        for (long dim : shape) {
            dims.append(dim).append(", ");
        }
        String shapeText = shape.length == 1 ? "(" + shape[0] + ",)"
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
            throw new NpyFormatException(path, "has .npy format version " + major + "." + minor
                    + "; versions 1.0, 2.0 and 3.0 are supported");
        }
        int lengthBytes = major == 1 ? 2 : 4;
        if (fileSize < 8 + lengthBytes) {
            throw new NpyFormatException(path, "is truncated inside its header");
        }
        long headerLength = major == 1 ? preamble.getShort(8) & 0xffff : preamble.getInt(8) & 0xffffffffL;
        if (headerLength > MAX_HEADER_BYTES) {
            throw new NpyFormatException(path, "has a header of " + headerLength + " bytes; at most " + MAX_HEADER_BYTES
                    + " are accepted");
        }
        long dataOffset = 8 + lengthBytes + headerLength;
        if (fileSize < dataOffset) {
            throw new NpyFormatException(path, "is truncated inside its header (" + fileSize + " bytes, header ends at "
                    + dataOffset + ")");
        }
        ByteBuffer text = ByteBuffer.allocate((int) headerLength);
        readFully(channel, text, 8 + lengthBytes);
        // Versions 1 and 2 are latin-1 (ASCII in practice), version 3 is UTF-8; the dict itself is ASCII.
        String dict = new String(text.array(), major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
        return HeaderParser.parse(path, dict, dataOffset);
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
            throw new NpyFormatException(path, "claims shape " + Arrays.toString(header.shape())
                    + ", more than 2^63 bytes" + (empty ? " counting its empty dimensions as 1" : ""));
        }
        long dataBytes = elementCount(header.shape()) * type.byteSize();
        long available = fileSize - header.dataOffset();
        if (available < dataBytes) {
            throw new NpyFormatException(path, "is truncated: shape " + Arrays.toString(header.shape()) + " of " + type
                    + " needs " + dataBytes + " bytes of data, the file holds " + available);
        }
        if (available > dataBytes) {
            throw new NpyFormatException(path, "has " + (available - dataBytes) + " bytes after the data that shape "
                    + Arrays.toString(header.shape()) + " describes");
        }
        return dataBytes;
    }

    private static String describeUnsupported(String descr) {
        if (descr.equals(">f4")) {
            return "holds big-endian float32 ('>f4'); convert it with a.astype('<f4')";
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

        static Header parse(Path path, String text, long dataOffset) throws NpyFormatException {
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
                    case "descr" -> descr = p.peek('[') ? p.fail("has a structured dtype; only float32 is supported")
                            : p.string();
                    case "fortran_order" -> fortran = p.bool();
                    case "shape" -> shape = p.shape();
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
            return new Header(descr, fortran, shape, dataOffset);
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

        private long[] shape() throws NpyFormatException {
            expect('(');
            List<Long> dims = new ArrayList<>();
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
                if (dims.size() > 64) {
                    fail("has more than 64 dimensions");
                }
                if (!peek(')')) {
                    expect(',');
                }
            }
            expect(')');
            return dims.stream().mapToLong(Long::longValue).toArray();
        }

        private <T> T fail(String problem) throws NpyFormatException {
            throw new NpyFormatException(path, problem);
        }
    }
}
