package dev.panorm.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panorm.DataType;
import dev.panorm.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class NpyTest {
    private static final float[] VALUES = {-2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f};

    @TempDir
    Path temp;

    private static Path resource(String name) throws URISyntaxException {
        return Path.of(NpyTest.class.getResource("/npy/" + name).toURI());
    }

    @ParameterizedTest
    @ValueSource(strings = {"v1_f32_2x3.npy", "v2_f32_2x3.npy", "v3_f32_2x3.npy"})
    void readsEveryFormatVersionNumPyWrites(String name) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Tensor tensor = Npy.mapFloat32(resource(name), arena);
            assertArrayEquals(new long[] {2, 3}, tensor.shape());
            assertArrayEquals(VALUES, tensor.toFloatArray());
            assertTrue(tensor.segment().isReadOnly(), "mapped input is read-only");
        }
    }

    @Test
    void readsFloat16AndWritesEveryType() throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Tensor half = Npy.map(resource("f16.npy"), arena);
            assertEquals(DataType.F16, half.dataType());
            assertArrayEquals(new long[] {2, 3}, half.shape());
            for (int i = 0; i < 6; i++) {
                short bits = half.segment().getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i);
                assertEquals(VALUES[i], Float.float16ToFloat(bits), 0f);
            }
            Path copy = temp.resolve("half.npy");
            Npy.write(copy, half);
            assertEquals("<f2", Npy.readHeader(copy).descr());
            Path bf16 = temp.resolve("bf16.npy");
            Npy.write(bf16, Tensor.allocate(arena, DataType.BF16, 4));
            assertEquals("<u2", Npy.readHeader(bf16).descr(), "NumPy has no bfloat16: bit patterns as uint16");
        }
    }

    @Test
    void aHeaderKeepsItsShapeToItself() throws Exception {
        long[] shape = {2, 3};
        Npy.Header header = new Npy.Header("<f4", false, shape, 128);
        shape[0] = 7;
        header.shape()[1] = 7;
        assertArrayEquals(new long[] {2, 3}, header.shape());
        assertEquals(6, header.elementCount());

        Npy.Header read = Npy.readHeader(resource("v1_f32_2x3.npy"));
        read.shape()[0] = 0;
        assertArrayEquals(new long[] {2, 3}, read.shape());

        // A value: equal shapes make equal headers, and the shape prints as numbers.
        assertEquals(header, new Npy.Header("<f4", false, new long[] {2, 3}, 128));
        assertEquals(header.hashCode(), new Npy.Header("<f4", false, new long[] {2, 3}, 128).hashCode());
        assertNotEquals(header, new Npy.Header("<f4", false, new long[] {3, 2}, 128));
        assertEquals("Header[descr=<f4, fortranOrder=false, shape=[2, 3], dataOffset=128]", header.toString());
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class, () -> new Npy.Header("<f4", false, new long[] {2, -1}, 128));
        assertEquals("shape [2, -1] has a negative dimension", e.getMessage());
    }

    @Test
    void readsEmptyArrays() throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Tensor tensor = Npy.mapFloat32(resource("empty_f32_0x4.npy"), arena);
            assertArrayEquals(new long[] {0, 4}, tensor.shape());
            Tensor scalar = Npy.mapFloat32(resource("scalar_f32.npy"), arena);
            assertEquals(0, scalar.rank());
            assertArrayEquals(new float[] {3.5f}, scalar.toFloatArray());
        }
    }

    @Test
    void writesWhatItReadsAndWhatNumPyWrites() throws Exception {
        Path file = temp.resolve("out.npy");
        try (Arena arena = Arena.ofConfined()) {
            Npy.write(file, Tensor.ofFloats(arena, VALUES, 2, 3));
            Tensor back = Npy.mapFloat32(file, arena);
            assertArrayEquals(VALUES, back.toFloatArray());
        }
        byte[] bytes = Files.readAllBytes(file);
        int headerLength =
                ByteBuffer.wrap(bytes, 8, 2).order(ByteOrder.LITTLE_ENDIAN).getShort();
        assertEquals(0, (10 + headerLength) % 64, "data starts on a 64-byte boundary, as NumPy requires");
        String header = new String(bytes, 10, headerLength, StandardCharsets.US_ASCII);
        assertEquals("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", header.strip());
        assertTrue(header.endsWith("\n"));
        assertEquals(10 + headerLength + 24, bytes.length);
    }

    @Test
    void headersForEveryRank() {
        assertTrue(new String(Npy.header("<f4", new long[] {}), StandardCharsets.US_ASCII).contains("'shape': ()"));
        assertTrue(new String(Npy.header("<f4", new long[] {5}), StandardCharsets.US_ASCII).contains("'shape': (5,)"));
        assertTrue(new String(Npy.header("<f4", new long[] {1, 2, 3}), StandardCharsets.US_ASCII)
                .contains("'shape': (1, 2, 3)"));
    }

    @ParameterizedTest
    @CsvSource(
            delimiter = '|',
            value = {
                "f64.npy              | holds '<f8'; only float32 ('<f4') and float16 ('<f2') are supported: convert"
                        + " with a.astype(np.float32)",
                "f16.npy              | holds '<f2' (float16); float32 ('<f4') is needed here",
                "big_endian_f32.npy   | holds big-endian float32 ('>f4'); convert it with a.astype('<f4')",
                "fortran_f32.npy      | is in Fortran order",
                "object.npy           | holds Python objects ('|O')",
                "structured.npy       | has a structured dtype",
            })
    void rejectsValidFilesItCannotRead(String name, String message) throws Exception {
        assertRejected(resource(name), message);
    }

    private static void assertRejected(Path file, String message) {
        NpyFormatException e = assertThrows(NpyFormatException.class, () -> {
            try (Arena arena = Arena.ofConfined()) {
                Npy.mapFloat32(file, arena);
            }
        });
        assertTrue(e.getMessage().startsWith(file.toString()), e.getMessage());
        assertTrue(e.getMessage().contains(message), () -> "'" + e.getMessage() + "' should contain '" + message + "'");
    }

    /** A v1.0 file with {@code dict} as its header (padded like NumPy's) and {@code dataBytes} zero bytes of data. */
    private Path craft(String dict, long dataBytes) throws IOException {
        return craft(1, dict, dataBytes);
    }

    /** As {@link #craft(String, long)}, in format version {@code major}.0 (3.0 headers are UTF-8). */
    private Path craft(int major, String dict, long dataBytes) throws IOException {
        int preamble = major == 1 ? 10 : 12;
        byte[] text = dict.getBytes(StandardCharsets.UTF_8);
        int padding = (64 - (preamble + text.length + 1) % 64) % 64;
        int headerLength = text.length + padding + 1;
        ByteBuffer buffer =
                ByteBuffer.allocate(preamble + headerLength + (int) dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        buffer.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', (byte) major, 0});
        if (major == 1) {
            buffer.putShort((short) headerLength);
        } else {
            buffer.putInt(headerLength);
        }
        buffer.put(text)
                .put(" ".repeat(padding).getBytes(StandardCharsets.US_ASCII))
                .put((byte) '\n');
        return Files.write(Files.createTempFile(temp, "crafted", ".npy"), buffer.array());
    }

    private Path bytes(int... content) throws IOException {
        byte[] raw = new byte[content.length];
        for (int i = 0; i < raw.length; i++) {
            raw[i] = (byte) content[i];
        }
        return Files.write(Files.createTempFile(temp, "raw", ".npy"), raw);
    }

    @Test
    void rejectsMalformedFiles() throws Exception {
        String good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        assertRejected(bytes(), "is not a .npy file");
        assertRejected(bytes(0x93, 'N', 'U', 'M', 'P', 'X', 1, 0, 0, 0), "is not a .npy file");
        assertRejected(bytes(0x93, 'N', 'U', 'M', 'P', 'Y', 4, 0, 0, 0), "format version 4.0");
        assertRejected(bytes(0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 100, 0, '{'), "is truncated inside its header");
        assertRejected(bytes(0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0, 0, 0, 1), "header of 16777216 bytes");
        assertRejected(craft(good, 23), "is truncated: shape [2, 3] of F32 needs 24 bytes of data, the file holds 23");
        assertRejected(craft(good, 25), "has 1 bytes after the data");
        assertRejected(
                craft("{'descr': '<f4', 'fortran_order': False}", 0), "without 'descr', 'fortran_order' and 'shape'");
        assertRejected(
                craft("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8),
                "unexpected header key 'x'");
        assertRejected(craft("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }", 8), "expected True or False");
        assertRejected(
                craft("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", 8),
                "expected a non-negative integer");
        assertRejected(
                craft("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 8),
                "too large for a 64-bit integer");
        // Python reads (2) as the number 2, and NumPy refuses the file; (2,) and (2, 3,) are tuples.
        assertRejected(
                craft("{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", 8),
                "(2) is not a tuple; a one-dimensional shape is written (2,)");
        try (Arena arena = Arena.ofConfined()) {
            assertArrayEquals(
                    new long[] {2, 3},
                    Npy.mapFloat32(craft("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3,), }", 24), arena)
                            .shape());
        }
        assertRejected(craft("['descr', '<f4']", 8), "expected '{'");
        assertRejected(craft(good + " trailing", 24), "text after the header dict");
        assertRejected(craft("{'descr: '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24), "malformed header");
    }

    @Test
    void aHeaderClaimingAGiganticArrayCostsNothing() throws Exception {
        // 2^62 elements claimed by a 128-byte file: refused from the file size alone, before any mapping.
        assertRejected(
                craft("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,), }", 0),
                "more than 2^63 bytes");
        assertRejected(
                craft("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000, 1000), }", 0),
                "is truncated: shape [1000000, 1000000, 1000] of F32 needs 4000000000000000 bytes");
    }

    @Test
    void anEmptyShapeMayNotHideAnOverflow() throws Exception {
        // (0, 2^62, 4) holds nothing, but strides computed from it wrap around; NumPy refuses it as too big.
        assertRejected(
                craft("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904, 4), }", 0),
                "claims shape [0, 4611686018427387904, 4], more than 2^63 bytes counting its empty dimensions as 1");
    }

    @Test
    void readsOnlyAsciiDigitsAndSpaces() throws Exception {
        // A 3.0 header is UTF-8, and Java's isDigit and isWhitespace take far more than Python does.
        String dict = "{'descr':%s'<f4', 'fortran_order': False, 'shape': %s, }";
        try (Arena arena = Arena.ofConfined()) {
            assertArrayEquals(
                    new long[] {2, 3},
                    Npy.mapFloat32(craft(3, dict.formatted("\t", "(2,\n3)"), 24), arena)
                            .shape());
        }
        assertRejected(craft(3, dict.formatted(" ", "(\u0663,)"), 12), "expected a non-negative integer");
        assertRejected(craft(3, dict.formatted(" ", "(\uff12, 3)"), 24), "expected a non-negative integer");
        assertRejected(craft(3, dict.formatted(" ", "(2,\u20033)"), 24), "expected a non-negative integer");
        assertRejected(craft(3, dict.formatted("\u2003", "(2, 3)"), 24), "expected a string");
    }

    @Test
    void readsEverySpellingOfItsTypesThatNumPyReads() throws Exception {
        // np.save writes '<f4', but np.load takes whatever np.dtype takes, and Python 2 wrote 8L for 8.
        String dict = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }";
        try (Arena arena = Arena.ofConfined()) {
            for (String descr : List.of("=f4", "|f4", "f4", "<f", "f", "float32", "single")) {
                Path file = craft(dict.formatted(descr, "(2,)"), 8);
                assertEquals(DataType.F32, Npy.map(file, arena).dataType(), descr);
                assertEquals("<f4", Npy.readHeader(file).descr(), descr);
            }
            for (String descr : List.of("=f2", "|f2", "f2", "e", "float16", "half")) {
                assertEquals(
                        DataType.F16,
                        Npy.map(craft(dict.formatted(descr, "(2,)"), 4), arena).dataType(),
                        descr);
            }
            assertArrayEquals(
                    new long[] {2, 3},
                    Npy.map(craft(dict.formatted("<f4", "(2L, 3L)"), 24), arena).shape());
            assertArrayEquals(
                    new long[] {2, 3},
                    Npy.map(craft(2, dict.formatted("<f4", "(2L, 3)"), 24), arena)
                            .shape());
        }
        // NumPy's own refusals: byte order before a name, Python 2 syntax in the UTF-8 version 3.0.
        assertRejected(craft(dict.formatted("<float32", "(2,)"), 8), "holds '<float32'");
        assertRejected(craft(dict.formatted(">f", "(2,)"), 8), "holds big-endian data ('>f')");
        assertRejected(craft(3, dict.formatted("<f4", "(2L,)"), 8), "expected ','");
    }

    @Test
    void refusesDuplicateHeaderKeys() throws Exception {
        // Python would keep the last 'descr', another reader the first: the file means two things.
        assertRejected(
                craft("{'descr': '<f8', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8),
                "has the header key 'descr' twice");
    }

    @Test
    void anAbandonedOutputLeavesNothingBehind() throws Exception {
        Path target = temp.resolve("result.npy");
        Files.writeString(target, "previous contents");
        try (Arena arena = Arena.ofConfined();
                Npy.Output output = Npy.Output.create(target, new long[] {4, 4}, arena)) {
            output.tensor().segment().fill((byte) 1);
            // No commit: as if the computation had failed.
        }
        assertEquals("previous contents", Files.readString(target));
        try (Stream<Path> files = Files.list(temp)) {
            assertEquals(1, files.count(), "the temporary file is gone");
        }
    }

    /** Committing after the mapping's arena closed says so, and leaves the target as it was. */
    @Test
    void committingAfterTheArenaClosedIsNamed() throws Exception {
        Path target = temp.resolve("result.npy");
        Files.writeString(target, "previous contents");
        Arena arena = Arena.ofConfined();
        try (Npy.Output output = Npy.Output.create(target, new long[] {4, 4}, arena)) {
            arena.close();
            assertEquals(
                    "the arena that owns the mapping of " + target
                            + " is closed: commit before closing it (the result may not have reached the disk)",
                    assertThrows(IllegalStateException.class, output::commit).getMessage());
        }
        assertEquals("previous contents", Files.readString(target));
        try (Stream<Path> files = Files.list(temp)) {
            assertEquals(1, files.count(), "the temporary file is gone");
        }
    }

    @Test
    void aCommittedOutputReplacesTheTarget() throws Exception {
        Path target = temp.resolve("result.npy");
        Files.writeString(target, "previous contents");
        try (Arena arena = Arena.ofConfined();
                Npy.Output output = Npy.Output.create(target, new long[] {2, 3}, arena)) {
            Tensor tensor = output.tensor();
            MemorySegment.copy(VALUES, 0, tensor.segment(), ValueLayout.JAVA_FLOAT, 0, 6);
            output.commit();
        }
        try (Arena arena = Arena.ofConfined()) {
            assertArrayEquals(VALUES, Npy.mapFloat32(target, arena).toFloatArray());
        }
        try (Stream<Path> files = Files.list(temp)) {
            assertEquals(1, files.count());
        }
        assertFalse(Arrays.equals(Files.readAllBytes(target), "previous contents".getBytes(StandardCharsets.US_ASCII)));
    }

    @Test
    void writesNonContiguousTensorsInCOrder() throws Exception {
        Path file = temp.resolve("strided.npy");
        try (Arena arena = Arena.ofConfined()) {
            // A [2, 3] window of a [2, 4] matrix: rows padded by one element.
            Tensor wide = Tensor.ofFloats(arena, new float[] {1, 2, 3, 99, 4, 5, 6, 99}, 2, 4);
            Tensor window = Tensor.of(wide.segment(), DataType.F32, new long[] {2, 3}, new long[] {4, 1});
            Npy.write(file, window);
            assertArrayEquals(
                    new float[] {1, 2, 3, 4, 5, 6}, Npy.mapFloat32(file, arena).toFloatArray());

            // Every type: a column-major view (no contiguous rows) and a window whose rows are contiguous.
            float[] values = {1, 2, 3, 4, 5, 6};
            for (DataType type : DataType.values()) {
                Tensor stored = Tensor.ofFloats(arena, type, new float[] {1, 4, 2, 5, 3, 6, 99, 99}, 8);
                Tensor transposed = Tensor.of(stored.segment(), type, new long[] {2, 3}, new long[] {1, 2});
                Tensor padded = Tensor.of(
                        Tensor.ofFloats(arena, type, new float[] {1, 2, 3, 99, 4, 5, 6, 99}, 8)
                                .segment(),
                        type,
                        new long[] {2, 3},
                        new long[] {4, 1});
                for (Tensor view : List.of(transposed, padded)) {
                    Npy.write(file, view);
                    Tensor expected = Tensor.ofFloats(arena, type, values, 2, 3);
                    MemorySegment written = MemorySegment.ofArray(Files.readAllBytes(file));
                    long header = Npy.readHeader(file).dataOffset();
                    assertEquals(
                            -1,
                            written.asSlice(header).mismatch(expected.segment()),
                            type + " " + Arrays.toString(view.strides()));
                }
            }
        }
    }

    /** An [n, 4] float32 file with values 0, 1, 2, ... */
    private Path counting(String name, int rows) throws IOException {
        float[] values = new float[rows * 4];
        for (int i = 0; i < values.length; i++) {
            values[i] = i;
        }
        Path file = temp.resolve(name);
        try (Arena arena = Arena.ofConfined()) {
            Npy.write(file, Tensor.ofFloats(arena, values, rows, 4));
        }
        return file;
    }

    /**
     * Closing a reader while another thread's call holds one of its chunks (a pipeline's worker in a kernel) waits for
     * that call and then frees every buffer: the arena's close used to throw "Session is acquired" half way and leave
     * the buffers allocated for good. The call here is libc's read() into the chunk, from a pipe written later.
     */
    @Test
    void closingWaitsForACallHoldingAChunkAndFreesEveryBuffer() throws Throwable {
        Linker linker = Linker.nativeLinker();
        SymbolLookup libc = linker.defaultLookup();
        MethodHandle pipe = linker.downcallHandle(
                libc.find("pipe").orElseThrow(), FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS));
        FunctionDescriptor io = FunctionDescriptor.of(
                ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG);
        MethodHandle read = linker.downcallHandle(libc.find("read").orElseThrow(), io);
        MethodHandle write = linker.downcallHandle(libc.find("write").orElseThrow(), io);
        Npy.Reader reader = Npy.Reader.open(counting("x.npy", 10));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment fds = arena.allocate(ValueLayout.JAVA_INT, 2);
            assertEquals(0, (int) pipe.invokeExact(fds));
            int readEnd = fds.getAtIndex(ValueLayout.JAVA_INT, 0);
            int writeEnd = fds.getAtIndex(ValueLayout.JAVA_INT, 1);
            CountDownLatch reading = new CountDownLatch(1);
            Thread holder = new Thread(() -> {
                Tensor chunk = reader.chunks(1, 3).iterator().next();
                reading.countDown();
                try {
                    long got = (long) read.invokeExact(readEnd, chunk.segment(), 4L); // blocks: the chunk is held
                    assertEquals(4, got);
                } catch (Throwable e) {
                    throw new AssertionError(e);
                }
            });
            holder.start();
            reading.await();
            Thread.sleep(100); // into read()
            MemorySegment four = Arena.global().allocate(4);
            AtomicBoolean released = new AtomicBoolean();
            Thread release = new Thread(() -> {
                try {
                    Thread.sleep(300);
                    released.set(true);
                    assertEquals(4L, (long) write.invokeExact(writeEnd, four, 4L));
                } catch (Throwable e) {
                    throw new AssertionError(e);
                }
            });
            release.start();
            assertTimeoutPreemptively(Duration.ofSeconds(20), reader::close);
            assertTrue(released.get(), "close returned while a call held a chunk");
            holder.join();
            release.join();
            assertEquals(0, reader.buffersHeld());
            MethodHandle close = linker.downcallHandle(
                    libc.find("close").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
            assertEquals(0, (int) close.invokeExact(readEnd));
            assertEquals(0, (int) close.invokeExact(writeEnd));
        }
        assertEquals(
                "the reader of " + temp.resolve("x.npy") + " is closed",
                assertThrows(
                                IllegalStateException.class,
                                () -> reader.chunks(1, 3).iterator().next())
                        .getMessage());
    }

    @Test
    void aReaderFreesTheBuffersOfEndedThreadsAndClosesTwice() throws Exception {
        Path file = counting("x.npy", 10);
        Npy.Reader reader = Npy.Reader.open(file);
        try (reader) {
            // Every run of a parallel pipeline reads on new threads: their buffers must not pile up.
            for (int run = 0; run < 20; run++) {
                Thread worker = new Thread(() -> reader.chunks(1, 3).iterator().next());
                worker.start();
                worker.join();
            }
            reader.chunks(1, 3).iterator().next();
            assertEquals(1, reader.buffersHeld(), "the ended threads' buffers are freed");
            assertEquals(0f, reader.chunks(1, 3).iterator().next().toFloatArray()[0]);
            reader.close(); // and again at the end of the try: a second close does nothing
        }
        assertEquals(0, reader.buffersHeld());
        assertThrows(
                IllegalStateException.class,
                () -> reader.chunks(1, 3).iterator().next());
    }

    @Test
    void aReaderReadsTheWholeArrayOrChunksOfRows() throws Exception {
        Path file = counting("x.npy", 10);
        try (Npy.Reader reader = Npy.Reader.open(file);
                Arena arena = Arena.ofConfined()) {
            assertEquals(DataType.F32, reader.dataType());
            assertArrayEquals(new long[] {10, 4}, reader.shape());
            float[] all = reader.read(arena).toFloatArray();
            assertEquals(40, all.length);
            assertEquals(39f, all[39]);
            int next = 0;
            List<Long> sizes = new ArrayList<>();
            for (Tensor chunk : reader.chunks(1, 3)) {
                sizes.add(chunk.dim(0));
                for (float value : chunk.toFloatArray()) {
                    assertEquals(next++, value);
                }
            }
            assertEquals(List.of(3L, 3L, 3L, 1L), sizes);
            assertEquals(40, next);
            // The rank of a row: [10, 4] read as rows of [4] or as one row of [10, 4].
            // One buffer per thread for every iteration: a second pass, with smaller chunks, reuses it.
            assertEquals(
                    reader.chunks(1, 3).iterator().next().segment().address(),
                    reader.chunks(1, 2).iterator().next().segment().address());
            Tensor whole = reader.chunks(2, 5).iterator().next();
            assertArrayEquals(new long[] {1, 10, 4}, whole.shape());
        }
        try (Arena arena = Arena.ofConfined()) {
            Npy.Reader reader = Npy.Reader.open(file);
            Tensor chunk = reader.chunks(1, 2).iterator().next();
            reader.close();
            assertThrows(IllegalStateException.class, chunk::toFloatArray, "a closed reader's chunks are freed");
        }
    }

    @Test
    void aFileTruncatedWhileItIsReadIsAnErrorNotAFault() throws Exception {
        Path file = counting("x.npy", 64);
        try (Npy.Reader reader = Npy.Reader.open(file)) {
            Iterator<Tensor> chunks = reader.chunks(1, 8).iterator();
            chunks.next();
            try (FileChannel channel = FileChannel.open(file, StandardOpenOption.WRITE)) {
                channel.truncate(200); // as np.save of a smaller array on the same path does first
            }
            UncheckedIOException e = assertThrows(UncheckedIOException.class, chunks::next);
            assertEquals(
                    file + " changed while it was being read (it has 200 bytes now, 1152 when opened)"
                            + "; run again once it is complete",
                    e.getCause().getMessage());
            try (Arena arena = Arena.ofConfined()) {
                assertThrows(IOException.class, () -> reader.read(arena));
            }
        }
    }

    @Test
    void aFileRewrittenInPlaceWhileItIsReadIsAnError() throws Exception {
        Path file = counting("x.npy", 64);
        byte[] other = Files.readAllBytes(counting("y.npy", 64));
        other[other.length - 1] ^= 1;
        try (Npy.Reader reader = Npy.Reader.open(file)) {
            Iterator<Tensor> chunks = reader.chunks(1, 32).iterator();
            chunks.next();
            Thread.sleep(10); // a new modification time, even on coarse clocks
            Files.write(file, other); // same size, same file: truncated and written again
            UncheckedIOException e = assertThrows(UncheckedIOException.class, chunks::next, "the last chunk checks");
            assertTrue(
                    e.getCause()
                            .getMessage()
                            .startsWith(file + " changed while it was being read (it was modified at "),
                    e.getCause().getMessage());
        }
        // Replaced by a rename, as an atomic writer does: what was opened is intact, so reading it is fine.
        try (Npy.Reader reader = Npy.Reader.open(file);
                Arena arena = Arena.ofConfined()) {
            Path replacement = counting("z.npy", 64);
            Files.move(replacement, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            assertEquals(256, reader.read(arena).elementCount());
        }
    }

    @Test
    void outputErrorsNameTheTargetAndTheReason() throws Exception {
        Path missing = temp.resolve("nodir").resolve("y.npy");
        try (Arena arena = Arena.ofConfined()) {
            IOException e = assertThrows(IOException.class, () -> Npy.Output.create(missing, new long[] {2}, arena));
            assertEquals(
                    "cannot write " + missing + ": directory " + missing.getParent() + " does not exist",
                    e.getMessage());
            IOException device = assertThrows(
                    IOException.class,
                    () -> Npy.write(Path.of("/dev/null"), Tensor.ofFloats(arena, new float[] {1}, 1)));
            assertTrue(
                    device.getMessage()
                            .startsWith("cannot write /dev/null: it is a character device, not a regular" + " file"),
                    device.getMessage());
            Path loop = Files.createSymbolicLink(temp.resolve("loop.npy"), Path.of("loop.npy"));
            IOException looping = assertThrows(IOException.class, () -> Npy.Output.create(loop, new long[] {2}, arena));
            assertEquals("cannot write " + loop + ": too many levels of symbolic links", looping.getMessage());
        }
    }

    @Test
    void aNewOutputHasTheModeOfAnyNewFile() throws Exception {
        Path plain = Files.createFile(temp.resolve("plain"));
        Path out = temp.resolve("y.npy");
        try (Arena arena = Arena.ofConfined()) {
            Npy.write(out, Tensor.ofFloats(arena, new float[] {1, 2}, 2));
        }
        assertEquals(Files.getPosixFilePermissions(plain), Files.getPosixFilePermissions(out));
    }
}
