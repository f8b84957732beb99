package dev.panorm.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.panorm.DataType;
import dev.panorm.Tensor;
import dev.panorm.TestAccess;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Feeds {@link Npy} thousands of mutated {@code .npy} files, as an attacker or a broken disk would. Each
 * file must either map to a tensor that exactly fills it, or be refused with an {@link NpyFormatException}
 * naming the file. Anything else fails: another exception, an {@link OutOfMemoryError}, or an accepted
 * file that should have been refused: one whose header is not ASCII, or whose shape is too big for NumPy
 * to allocate.
 *
 * <p>The mutations start from valid files of every format version and edit them at three levels: the
 * header dict (hostile shapes, other dtypes, Fortran order, missing, duplicate and unknown keys, padding
 * to the header size limit), its text (braces, stray characters, non-ASCII digits and spaces), and the raw
 * bytes (magic, version, header length field, truncation, trailing bytes).
 *
 * <p>The seed is fixed unless {@code -Dpanorm.fuzz.seed=random} asks for a new one ({@link TestAccess#fuzzSeed});
 * it is printed, and every failure message carries it, the case index, the mutations applied and the file's
 * first bytes. Replay a failure with
 * {@snippet lang=shell :
 * scripts/mvn test -Dtest=NpyFuzzTest -Dsurefire.failIfNoSpecifiedTests=false -Dpanorm.fuzz.seed=SEED
 * }
 */
class NpyFuzzTest {
    private static final int CASES = 10_000;

    /** Valid starting points: format version, dtype and shape, including empty, scalar and 1-D arrays. */
    private static final List<Base> BASES = List.of(
            new Base(1, "<f4", 2, 3),
            new Base(1, "<f2", 5),
            new Base(1, "<f4", 0, 4),
            new Base(1, "<f4"),
            new Base(2, "<f4", 3, 1, 2),
            new Base(2, "<f2", 0),
            new Base(3, "<f4", 7),
            new Base(3, "<f2", 2, 2));

    /** Shapes that attack the parser or the size arithmetic, with the element count they claim (-1: none). */
    private static final List<ShapeText> HOSTILE_SHAPES = List.of(
            new ShapeText("(4611686018427387904,)", -1),
            new ShapeText("(9223372036854775807,)", -1),
            new ShapeText("(9223372036854775808,)", -1),
            new ShapeText("(99999999999999999999999,)", -1),
            new ShapeText("(3037000500, 3037000500)", -1),
            new ShapeText("(4294967296, 4294967296, 4)", -1),
            new ShapeText("(0, 9223372036854775807, 9223372036854775807)", 0),
            new ShapeText("(0, 4611686018427387904, 4)", 0),
            new ShapeText("(2305843009213693952, 0)", 0),
            new ShapeText("(-1,)", -1),
            new ShapeText("(2, -3)", -1),
            new ShapeText("(2**62,)", -1),
            new ShapeText("(1e3,)", -1),
            new ShapeText("(2.0,)", -1),
            new ShapeText("(,)", -1),
            new ShapeText("(1,,2)", -1),
            new ShapeText("[2, 3]", -1),
            new ShapeText("(2, 3", -1),
            new ShapeText("2, 3)", -1),
            new ShapeText("((2,),)", -1),
            new ShapeText("(0x10,)", -1),
            new ShapeText("(+2,)", -1),
            new ShapeText("(None,)", -1),
            new ShapeText("(\uff12,)", 2),
            new ShapeText("(\u0663,)", 3),
            new ShapeText("(2,\u20033)", 6),
            new ShapeText("(2,\u00a03)", 6),
            new ShapeText("(" + "1, ".repeat(64) + ")", 1),
            new ShapeText("(" + "1, ".repeat(65) + ")", 1));

    private static final List<String> DESCRS = List.of(
            "'|O'",
            "'O'",
            "'<f8'",
            "'>f4'",
            "'>f2'",
            "'=f4'",
            "'|u1'",
            "'<u2'",
            "'<f4 '",
            "''",
            "[('a', '<f4')]",
            "('<f4', (2,))",
            "'<f4",
            "<f4",
            "None",
            "'<f2'",
            "'<f4'");
    private static final List<String> FORTRAN_ORDERS =
            List.of("True", "False", "1", "0", "None", "'False'", "Tru", "FALSE", "False False");
    private static final List<String> NON_ASCII =
            List.of("\u00e9", "\u00a0", "\u2003", "\u0663", "\uff12", "\ufeff", "\ud83d\ude00", "\u0000", "\u0085");
    private static final String ASCII_NOISE = "{}()[],:'\" 0123456789-+.eTrueFalsNon\n\t\\";

    @TempDir
    Path temp;

    @Test
    void mutatedFilesAreReadConsistentlyOrRefusedWithAClearMessage() throws IOException {
        long seed = TestAccess.fuzzSeed();
        System.out.println("NpyFuzzTest seed " + seed + " (replay with -Dpanorm.fuzz.seed=" + seed + ")");
        SplittableRandom master = new SplittableRandom(seed);
        int accepted = 0;
        for (int i = 0; i < CASES; i++) {
            SplittableRandom random = master.split();
            Draft draft = new Draft(BASES.get(random.nextInt(BASES.size())));
            byte[] bytes = mutate(draft, random);
            // A fresh file each time: rewriting one in place makes ext4 flush it to disk, 2 ms a case.
            Path file = Files.write(temp.resolve("case" + i + ".npy"), bytes);
            int index = i;
            Supplier<String> replay = () -> "seed " + seed + ", case " + index + ", mutations " + draft.steps
                    + ", file (" + bytes.length + " bytes) " + escape(bytes);
            if (read(file, bytes, replay)) {
                accepted++;
            }
            Files.delete(file);
        }
        System.out.println("NpyFuzzTest: " + CASES + " cases, " + accepted + " accepted");
        // Mutations that all break the file would test only the first check: make sure many get deep.
        assertTrue(accepted > CASES / 20, "only " + accepted + " of " + CASES + " files were accepted, seed " + seed);
    }

    @Test
    void theStartingFilesAreValidAndMatchPanormsWriter() throws IOException {
        for (Base base : BASES) {
            byte[] bytes = new Draft(base).encode();
            Path file = Files.write(temp.resolve("base.npy"), bytes);
            assertTrue(read(file, bytes, base::toString), base + " is accepted");
            if (base.major() == 1) {
                byte[] header = Npy.header(base.descr(), base.shape());
                assertArrayEquals(header, Arrays.copyOf(bytes, header.length), base + " is what Npy writes");
            }
        }
    }

    /**
     * Reads {@code file} as the CLI does and checks the outcome.
     *
     * @return whether it was accepted
     */
    private static boolean read(Path file, byte[] bytes, Supplier<String> replay) {
        Npy.Header header = null;
        try {
            header = Npy.readHeader(file);
        } catch (Throwable e) {
            assertRefusedClearly(file, e, replay);
        }
        Tensor tensor;
        try (Arena arena = Arena.ofConfined()) {
            tensor = Npy.map(file, arena);
        } catch (Throwable e) {
            assertRefusedClearly(file, e, replay);
            return false;
        }
        assertNotNull(header, () -> "map accepted what readHeader refused; " + replay.get());
        assertConsistent(tensor, header, bytes, replay);
        return true;
    }

    private static void assertRefusedClearly(Path file, Throwable e, Supplier<String> replay) {
        if (!(e instanceof NpyFormatException)) {
            throw new AssertionError("threw " + e + " instead of NpyFormatException; " + replay.get(), e);
        }
        String message = e.getMessage();
        assertTrue(
                message != null
                        && message.startsWith(file.toString())
                        && message.length() > file.toString().length(),
                () -> "the message '" + message + "' should name the file and the problem; " + replay.get());
    }

    /** An accepted file: the tensor exactly fills it, and NumPy would have read it too. */
    private static void assertConsistent(Tensor tensor, Npy.Header header, byte[] bytes, Supplier<String> replay) {
        DataType type = header.descr().equals("<f2") ? DataType.F16 : DataType.F32;
        assertTrue(
                header.descr().equals("<f4") || header.descr().equals("<f2"),
                () -> "dtype " + header.descr() + "; " + replay.get());
        assertFalse(header.fortranOrder(), replay);
        assertEquals(type, tensor.dataType(), replay);
        assertArrayEquals(header.shape(), tensor.shape(), replay);
        assertTrue(tensor.isContiguous() && tensor.segment().isReadOnly(), replay);
        assertEquals(
                bytes.length,
                header.dataOffset() + tensor.byteExtent(),
                () -> "the data must fill the file; " + replay.get());
        assertEquals(tensor.byteExtent(), tensor.segment().byteSize(), replay);

        int major = bytes[6];
        int lengthBytes = major == 1 ? 2 : 4;
        ByteBuffer preamble = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        long headerLength = major == 1 ? preamble.getShort(8) & 0xffff : preamble.getInt(8) & 0xffffffffL;
        assertEquals(8 + lengthBytes + headerLength, header.dataOffset(), replay);
        for (int i = 8 + lengthBytes; i < header.dataOffset(); i++) {
            int at = i;
            assertTrue(bytes[i] >= 0, () -> "non-ASCII header byte at " + at + "; " + replay.get());
        }
        // NumPy refuses shapes whose non-empty dimensions span more than 2^63 bytes, even when one is 0.
        long span = type.byteSize();
        for (long dim : header.shape()) {
            try {
                span = Math.multiplyExact(span, Math.max(dim, 1));
            } catch (ArithmeticException e) {
                fail("accepted shape " + Arrays.toString(header.shape()) + ", too big for NumPy; " + replay.get());
            }
        }
    }

    /** Applies a random mix of dict, text, byte and length mutations, recording each in {@code draft.steps}. */
    private static byte[] mutate(Draft draft, SplittableRandom random) {
        if (random.nextInt(10) < 6) {
            for (int n = 1 + random.nextInt(2); n > 0; n--) {
                mutateDict(draft, random);
            }
        }
        if (random.nextInt(10) < 3) {
            for (int n = 1 + random.nextInt(2); n > 0; n--) {
                mutateText(draft, random);
            }
        }
        byte[] bytes = draft.encode();
        if (random.nextInt(10) < 4) {
            for (int n = 1 + random.nextInt(3); n > 0; n--) {
                bytes = mutateBytes(draft, bytes, random);
            }
        }
        if (random.nextInt(10) < 3) {
            bytes = resize(draft, bytes, random);
        }
        return bytes;
    }

    private static void mutateDict(Draft draft, SplittableRandom random) {
        switch (random.nextInt(9)) {
            case 0 -> {
                ShapeText shape = HOSTILE_SHAPES.get(random.nextInt(HOSTILE_SHAPES.size()));
                draft.replace("shape", shape.text(), shape.elements());
            }
            case 1 -> {
                long[] dims = new long[random.nextInt(5)];
                Arrays.setAll(dims, d -> random.nextInt(6));
                draft.replace("shape", shapeText(dims), Arrays.stream(dims).reduce(1, Math::multiplyExact));
            }
            case 2 -> draft.replace("descr", pick(DESCRS, random), draft.elements);
            case 3 -> draft.replace("fortran_order", pick(FORTRAN_ORDERS, random), draft.elements);
            case 4 -> {
                if (!draft.entries.isEmpty()) {
                    draft.step("drop " + draft.entries.remove(random.nextInt(draft.entries.size())));
                }
            }
            case 5 -> {
                String key = pick(List.of("descr", "fortran_order", "shape"), random);
                String value = switch (key) {
                    case "descr" -> pick(DESCRS, random);
                    case "fortran_order" -> pick(FORTRAN_ORDERS, random);
                    default -> pick(HOSTILE_SHAPES, random).text();
                };
                draft.entries.add(random.nextInt(draft.entries.size() + 1), "'" + key + "': " + value);
                draft.step("duplicate " + key + " as " + value);
            }
            case 6 -> {
                draft.entries.add(random.nextInt(draft.entries.size() + 1), "'extra': 1");
                draft.step("unknown key");
            }
            case 7 -> {
                // Valid variations: NumPy reads any key order and either quote.
                Collections.shuffle(draft.entries, new Random(random.nextLong()));
                if (random.nextBoolean()) {
                    draft.entries.replaceAll(entry -> entry.replace('\'', '"'));
                }
                draft.step("reorder or requote");
            }
            default -> {
                int limit = Npy.MAX_HEADER_BYTES;
                draft.headerLength = pick(List.of(limit - 1, limit, limit + 1, 65535, 70000), random);
                draft.step("pad header to " + draft.headerLength);
            }
        }
    }

    private static void mutateText(Draft draft, SplittableRandom random) {
        String text = draft.text();
        int at = random.nextInt(text.length() + 1);
        String edited = switch (random.nextInt(6)) {
            case 0 -> pick(List.of("", "{", "}", "}}", "{{"), random) + text.substring(1);
            case 1 ->
                text.substring(0, text.lastIndexOf('}') < 0 ? text.length() : text.lastIndexOf('}'))
                        + pick(List.of("", "}}", "{", ", }"), random);
            case 2 -> text.substring(0, at) + pick(NON_ASCII, random) + text.substring(at);
            case 3 -> text.replace(pick(List.of(" ", "0", "2", "3", "5"), random), pick(NON_ASCII, random));
            case 4 ->
                text.substring(0, at) + ASCII_NOISE.charAt(random.nextInt(ASCII_NOISE.length())) + text.substring(at);
            default -> at == text.length() ? text : text.substring(0, at) + text.substring(at + 1);
        };
        draft.text = edited;
        draft.step("edit text to " + edited);
    }

    private static byte[] mutateBytes(Draft draft, byte[] bytes, SplittableRandom random) {
        int lengthBytes = draft.major == 1 ? 2 : 4;
        int textEnd = Math.min(bytes.length, draft.dataOffset);
        // Aim at one part of the preamble or header, so that short fields get as many hits as long text.
        int[][] parts = {{0, 6}, {6, 8}, {8, 8 + lengthBytes}, {8 + lengthBytes, Math.max(textEnd, 9 + lengthBytes)}};
        int[] part = parts[random.nextInt(parts.length)];
        int at = Math.min(bytes.length, part[0] + random.nextInt(part[1] - part[0]));
        return switch (random.nextInt(6)) {
            case 0 -> {
                if (at == bytes.length) {
                    yield bytes;
                }
                bytes[at] ^= (byte) (1 << random.nextInt(8));
                draft.step("flip a bit at " + at);
                yield bytes;
            }
            case 1 -> {
                draft.step("insert a byte at " + at);
                yield splice(bytes, at, 0, new byte[] {(byte) random.nextInt(256)});
            }
            case 2 -> {
                if (at == bytes.length) {
                    yield bytes;
                }
                draft.step("delete the byte at " + at);
                yield splice(bytes, at, 1, new byte[0]);
            }
            case 3 -> {
                int[][] versions = {{0, 0}, {1, 0}, {2, 0}, {3, 0}, {4, 0}, {1, 1}, {2, 5}, {255, 255}};
                int[] version = versions[random.nextInt(versions.length)];
                draft.step("version " + version[0] + "." + version[1]);
                yield splice(bytes, 6, 2, new byte[] {(byte) version[0], (byte) version[1]});
            }
            case 4 -> {
                long trueLength = draft.dataOffset - 8 - lengthBytes;
                long length = pick(
                        List.of(
                                trueLength - 1,
                                trueLength + 1,
                                (long) bytes.length,
                                bytes.length - 8L - lengthBytes + 1,
                                (long) Npy.MAX_HEADER_BYTES,
                                Npy.MAX_HEADER_BYTES + 1L,
                                0L,
                                0xffffL,
                                0x7fffffffL,
                                0xffffffffL,
                                random.nextLong() & 0xffffffffL),
                        random);
                byte[] field = ByteBuffer.allocate(4)
                        .order(ByteOrder.LITTLE_ENDIAN)
                        .putInt((int) length)
                        .array();
                draft.step("header length field " + length);
                int replaced = Math.min(lengthBytes, Math.max(0, bytes.length - 8));
                yield splice(bytes, 8, replaced, Arrays.copyOf(field, lengthBytes));
            }
            default -> {
                if (at == bytes.length) {
                    yield bytes;
                }
                bytes[at] = (byte) random.nextInt(256);
                draft.step("set byte " + at);
                yield bytes;
            }
        };
    }

    private static byte[] resize(Draft draft, byte[] bytes, SplittableRandom random) {
        if (random.nextInt(4) == 0) {
            int extra = 1 + random.nextInt(8);
            draft.step("append " + extra + " bytes");
            return Arrays.copyOf(bytes, bytes.length + extra);
        }
        // Mostly inside the data, where a truncated download would end.
        int length = random.nextBoolean() && bytes.length > draft.dataOffset
                ? draft.dataOffset + random.nextInt(bytes.length - draft.dataOffset)
                : random.nextInt(bytes.length);
        draft.step("truncate to " + length);
        return Arrays.copyOf(bytes, length);
    }

    /** {@code bytes} with {@code removed} bytes at {@code at} replaced by {@code inserted}. */
    private static byte[] splice(byte[] bytes, int at, int removed, byte[] inserted) {
        int from = Math.min(at, bytes.length);
        int to = Math.min(from + removed, bytes.length);
        byte[] out = new byte[bytes.length - (to - from) + inserted.length];
        System.arraycopy(bytes, 0, out, 0, from);
        System.arraycopy(inserted, 0, out, from, inserted.length);
        System.arraycopy(bytes, to, out, from + inserted.length, bytes.length - to);
        return out;
    }

    private static <T> T pick(List<T> choices, SplittableRandom random) {
        return choices.get(random.nextInt(choices.size()));
    }

    /** A shape as Python writes a tuple: {@code ()}, {@code (5,)}, {@code (2, 3)}. */
    private static String shapeText(long... shape) {
        String dims =
                String.join(", ", Arrays.stream(shape).mapToObj(Long::toString).toList());
        return shape.length == 1 ? "(" + dims + ",)" : "(" + dims + ")";
    }

    /** Printable ASCII as is, everything else as {@code \xNN}; long files cut after 600 bytes. */
    private static String escape(byte[] bytes) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < Math.min(bytes.length, 600); i++) {
            int b = bytes[i] & 0xff;
            if (b >= 0x20 && b < 0x7f && b != '\\') {
                out.append((char) b);
            } else {
                out.append(String.format("\\x%02x", b));
            }
        }
        return bytes.length > 600 ? out + "..." : out.toString();
    }

    private record Base(int major, String descr, long... shape) {
        @Override
        public String toString() {
            return "v" + major + ".0 " + descr + " " + shapeText(shape);
        }
    }

    private record ShapeText(String text, long elements) {}

    /** A file under construction: dict entries, then (once edited as text) the header text, then bytes. */
    private static final class Draft {
        final int major;
        final List<String> entries = new ArrayList<>();
        final List<String> steps = new ArrayList<>();
        int elementSize;
        /** Elements the shape claims, sizing the data; -1 keeps the data as it was. */
        long elements;

        long dataBytes;
        /** The header text once edited directly; null while it is rendered from {@link #entries}. */
        String text;
        /** 0 for NumPy's padding to 64 bytes, else the header length to pad to. */
        int headerLength;
        /** Where the data starts in the encoded file, before any byte mutation. */
        int dataOffset;

        Draft(Base base) {
            major = base.major();
            entries.add("'descr': '" + base.descr() + "'");
            entries.add("'fortran_order': False");
            entries.add("'shape': " + shapeText(base.shape()));
            elementSize = base.descr().equals("<f2") ? 2 : 4;
            elements = Arrays.stream(base.shape()).reduce(1, Math::multiplyExact);
            dataBytes = elements * elementSize;
        }

        void step(String what) {
            steps.add(escape(what.getBytes(StandardCharsets.UTF_8)));
        }

        void replace(String key, String value, long newElements) {
            entries.replaceAll(entry -> entry.startsWith("'" + key + "'") ? "'" + key + "': " + value : entry);
            if (key.equals("descr")) {
                elementSize = value.contains("f2") || value.contains("u2") ? 2 : value.contains("f8") ? 8 : 4;
            }
            elements = newElements;
            if (elements >= 0) {
                dataBytes = elements * elementSize;
            }
            step(key + " " + value);
        }

        String text() {
            return text != null ? text : "{" + String.join(", ", entries) + ", }";
        }

        /** Magic, version, header length, header text padded and ended with a newline, and zeroed data. */
        byte[] encode() {
            int lengthBytes = major == 1 ? 2 : 4;
            byte[] dict = text().getBytes(StandardCharsets.UTF_8);
            int unpadded = dict.length + 1;
            int padded =
                    headerLength > unpadded ? headerLength : unpadded + (64 - (8 + lengthBytes + unpadded) % 64) % 64;
            dataOffset = 8 + lengthBytes + padded;
            ByteBuffer out = ByteBuffer.allocate(dataOffset + (int) dataBytes).order(ByteOrder.LITTLE_ENDIAN);
            out.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', (byte) major, 0});
            if (lengthBytes == 2) {
                out.putShort((short) padded);
            } else {
                out.putInt(padded);
            }
            out.put(dict)
                    .put(" ".repeat(padded - unpadded).getBytes(StandardCharsets.US_ASCII))
                    .put((byte) '\n');
            return out.array();
        }
    }
}
