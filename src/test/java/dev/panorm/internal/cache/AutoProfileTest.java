package dev.panorm.internal.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The profile file: its format, its key, and which profile the lookup takes or ignores (and says so). */
class AutoProfileTest {
    private static final AutoProfile.Key HERE = new AutoProfile.Key("Test CPU\\ 9000 = fast", 8, "25+36", "3.8.1");
    private static final Instant TUNED = Instant.parse("2026-11-30T20:00:00Z");

    @TempDir
    Path temp;

    private static AutoProfile profile(AutoProfile.Key key) {
        return new AutoProfile(
                key,
                TUNED,
                Map.of("f32.backward", 65536L, "f32.forward", 3072L),
                Map.of("f32.backward", 1L << 20),
                Map.of("f32.forward", 32768L, "bf16.forward", Long.MAX_VALUE),
                Map.of("f32.forward", 65536L));
    }

    /** Runs {@code lookUp} and returns its result with the warnings it gave. */
    private static Map.Entry<Optional<AutoProfile.InUse>, List<String>> lookUp(String setting, Path folder) {
        List<String> warnings = new ArrayList<>();
        return Map.entry(AutoProfile.lookUp(setting, folder, HERE, warnings::add), warnings);
    }

    @Test
    void aProfileReadsBackAsItWasWritten() throws IOException {
        Path file = AutoProfile.fileFor(temp.resolve("new/folder"), HERE);
        profile(HERE).write(file);
        AutoProfile read = AutoProfile.read(file);
        assertEquals(profile(HERE), read);
        assertEquals(
                List.of("f32.forward", "f32.backward"),
                List.copyOf(read.javaUpTo().keySet()));
        assertEquals(Map.of("f32.backward", 1L << 20), read.javaFrom());
        assertEquals(
                List.of("f32.forward", "bf16.forward"),
                List.copyOf(read.oneDnnThreadsFrom().keySet()));
        assertEquals(Map.of("f32.forward", 65536L), read.wideRowsJavaUpTo());
        String text = Files.readString(file);
        assertTrue(
                text.contains(
                        "\nf32.forward=3072\nf32.forward.wide_rows=65536\nf32.forward.onednn_threads_from=32768\n"),
                text);
        assertTrue(text.contains("\nf32.backward=65536\nf32.backward.java_from=1048576\n"), text);
        assertTrue(text.contains("\nbf16.forward.onednn_threads_from=" + Long.MAX_VALUE + "\n"), text);
        assertEquals(List.of(file), Files.list(file.getParent()).toList()); // no temporary file left
    }

    /** The lines of a profile file of {@code format} for {@link #HERE}, tuned at {@link #TUNED}, then {@code entries}. */
    private static List<String> profileLines(String format, String... entries) {
        List<String> lines = new ArrayList<>(List.of(
                "format=" + format,
                "cpu=" + HERE.cpu().replace("\\", "\\\\"),
                "cores=8",
                "java=25+36",
                "onednn=3.8.1",
                "tuned=2026-11-30T20:00:00Z"));
        lines.addAll(List.of(entries));
        return lines;
    }

    /** A profile of format 1, written before second crossovers: its crossovers, none second. */
    @Test
    void aProfileOfTheFirstFormatReadsWithoutSecondCrossovers() throws IOException {
        Path file = temp.resolve("format1.properties");
        Files.writeString(file, String.join("\n", profileLines("1", "f32.backward=65536")) + "\n");
        AutoProfile read = AutoProfile.read(file);
        assertEquals(new AutoProfile(HERE, TUNED, Map.of("f32.backward", 65536L)), read);
    }

    /** A profile of format 2, written before oneDNN's thread counts: its crossovers, no thread counts. */
    @Test
    void aProfileOfTheSecondFormatReadsWithoutThreadCounts() throws IOException {
        Path file = temp.resolve("format2.properties");
        List<String> lines = profileLines("2", "f32.backward=65536", "f32.backward.java_from=1048576");
        Files.writeString(file, String.join("\n", lines) + "\n");
        assertEquals(
                new AutoProfile(HERE, TUNED, Map.of("f32.backward", 65536L), Map.of("f32.backward", 1L << 20)),
                AutoProfile.read(file));
        lines.add("f32.backward.onednn_threads_from=32768"); // not a name of format 2
        Files.writeString(file, String.join("\n", lines) + "\n");
        IOException wrong = assertThrows(IOException.class, () -> AutoProfile.read(file));
        assertTrue(wrong.getMessage().contains("onednn_threads_from"), wrong.getMessage());
    }

    /** A profile of format 3, written before crossovers for wide rows: wide rows take their kind's crossover. */
    @Test
    void aProfileOfTheThirdFormatReadsWithoutWideRows() throws IOException {
        Path file = temp.resolve("format3.properties");
        List<String> lines = profileLines("3", "f32.forward=32768", "f32.forward.onednn_threads_from=98304");
        Files.writeString(file, String.join("\n", lines) + "\n");
        assertEquals(
                new AutoProfile(HERE, TUNED, Map.of("f32.forward", 32768L), Map.of(), Map.of("f32.forward", 98304L)),
                AutoProfile.read(file));
        lines.add("f32.forward.wide_rows=65536"); // not a name of format 3
        Files.writeString(file, String.join("\n", lines) + "\n");
        IOException wrong = assertThrows(IOException.class, () -> AutoProfile.read(file));
        assertTrue(wrong.getMessage().contains("wide_rows"), wrong.getMessage());
    }

    /** The vendor that picks the built-in thread counts (OneDnnKernel.AMD) is the one /proc/cpuinfo names. */
    @Test
    void theCpuVendorIsReadFromProcCpuinfo() throws IOException {
        assertEquals(procCpuinfo("vendor_id", ""), AutoProfile.Key.cpuVendor());
    }

    /** The family that tells AMD's Zen 4 from Zen 5 (OneDnnKernel.COSTLY_SECOND_THREAD) is the one /proc/cpuinfo names. */
    @Test
    void theCpuFamilyIsReadFromProcCpuinfo() throws IOException {
        assertEquals(Integer.parseInt(procCpuinfo("cpu family", "-1")), AutoProfile.Key.cpuFamily());
    }

    /** The first CPU's {@code field} in /proc/cpuinfo, or {@code missing}; skips the test where there is no such file. */
    private static String procCpuinfo(String field, String missing) throws IOException {
        Path cpuinfo = Path.of("/proc/cpuinfo");
        assumeTrue(Files.isReadable(cpuinfo), "no /proc/cpuinfo here");
        return Files.readAllLines(cpuinfo).stream()
                .filter(line -> line.startsWith(field))
                .findFirst()
                .map(line -> line.substring(line.indexOf(':') + 1).strip())
                .orElse(missing);
    }

    @Test
    void eachKeyHasItsOwnFile() {
        AutoProfile.Key other = new AutoProfile.Key(HERE.cpu(), 4, HERE.java(), HERE.onednn());
        assertNotEquals(AutoProfile.fileFor(temp, HERE), AutoProfile.fileFor(temp, other));
        assertEquals(AutoProfile.fileFor(temp, HERE), AutoProfile.fileFor(temp, HERE));
    }

    @Test
    void theLookupTakesThisMachinesProfileFromTheFolder() throws IOException {
        Path file = AutoProfile.fileFor(temp, HERE);
        profile(HERE).write(file);
        var found = lookUp(null, temp);
        assertEquals(Optional.of(new AutoProfile.InUse(file, profile(HERE))), found.getKey());
        assertEquals(List.of(), found.getValue());
    }

    @Test
    void noProfileMeansTheBuiltInModelSilently() {
        var found = lookUp(null, temp);
        assertEquals(Optional.empty(), found.getKey());
        assertEquals(List.of(), found.getValue());
    }

    @Test
    void noneTurnsProfilesOff() throws IOException {
        profile(HERE).write(AutoProfile.fileFor(temp, HERE));
        assertEquals(Optional.empty(), lookUp("none", temp).getKey());
    }

    @Test
    void aNamedFileIsUsedWhereverItIs() throws IOException {
        Path file = temp.resolve("mine.properties");
        profile(HERE).write(file);
        assertEquals(
                Optional.of(new AutoProfile.InUse(file, profile(HERE))),
                lookUp(file.toString(), temp).getKey());
    }

    @Test
    void aProfileOfAnotherMachineIsIgnoredWithAWarning() throws IOException {
        AutoProfile.Key other = new AutoProfile.Key(HERE.cpu(), HERE.cores(), "26+1", HERE.onednn());
        Path file = temp.resolve("other.properties");
        profile(other).write(file);
        var found = lookUp(file.toString(), temp);
        assertEquals(Optional.empty(), found.getKey());
        assertEquals(1, found.getValue().size(), found.getValue().toString());
        assertTrue(
                found.getValue().getFirst().contains("JDK 26+1"),
                found.getValue().toString());
    }

    @Test
    void malformedOrMissingProfilesAreIgnoredWithAWarning() throws IOException {
        String valid = Files.readString(writeValid());
        List<String> broken = List.of(
                valid.replace("format=4", "format=5"),
                valid.replace("format=4", "format=1"), // format 1 has no second crossovers
                valid.replace("format=4", "format=2"), // nor does format 2 have thread counts
                valid.replace("format=4", "format=3"), // nor format 3 wide rows
                valid.replace("wide_rows=65536", "wide_rows=-1"),
                valid.replace("f32.forward.wide_rows", "f32.backward_composed.wide_rows"), // no crossover of its kind
                valid.replace("onednn_threads_from=32768", "onednn_threads_from=-1"),
                valid.replace("f32.forward.onednn_threads_from", "f32.sideways.onednn_threads_from"),
                valid.replace("java_from=1048576", "java_from=4096"),
                valid.replace("cores=8", "cores=eight"),
                valid.replace("f32.forward=3072", "f32.forward=-1"),
                valid.replace("f32.forward=", "f32.sideways="),
                valid.replace("f32.forward=", "f64.forward="),
                valid.replaceAll("tuned=.*", "tuned=yesterday"),
                valid.replaceAll("cpu=.*\n", ""),
                "\\uZZZZ=1\n");
        for (String text : broken) {
            Path file = Files.writeString(temp.resolve("broken.properties"), text);
            assertThrows(IOException.class, () -> AutoProfile.read(file), text);
            var found = lookUp(file.toString(), temp);
            assertEquals(Optional.empty(), found.getKey(), text);
            assertEquals(1, found.getValue().size(), text);
            assertTrue(
                    found.getValue().getFirst().contains("broken.properties"),
                    found.getValue().toString());
        }
        var missing = lookUp(temp.resolve("missing.properties").toString(), temp);
        assertEquals(Optional.empty(), missing.getKey());
        assertEquals(1, missing.getValue().size());
        // In the folder, the machine's file broken is ignored with a warning too.
        Files.writeString(AutoProfile.fileFor(temp, HERE), "format=1\n");
        assertEquals(1, lookUp(null, temp).getValue().size());
    }

    /** What a hand-edited profile gets wrong is named: the line, not a Java exception. */
    @Test
    void aBrokenProfileIsNamedPrecisely() throws IOException {
        String valid = Files.readString(writeValid());
        Map<String, String> expected = Map.of(
                valid.replaceAll("format=.*\n", ""),
                "no format",
                valid.replace("format=4", "format=4   "),
                "", // trailing spaces are no error
                valid.replace("f32.forward=3072", "f32.forward=abc"),
                "f32.forward must be a whole number, got 'abc'",
                valid + "f32.forward=2000\n",
                "f32.forward is given twice",
                valid.replace("format=4", "format=3"),
                "f32.forward.wide_rows needs format 4 or later; the file is format 3",
                valid.replaceAll("tuned=.*", "tuned=garbage"),
                "tuned must be an instant such as 2026-12-04T05:00:00Z, got 'garbage'",
                "\uFEFF" + valid,
                ""); // a byte order mark
        for (Map.Entry<String, String> entry : expected.entrySet()) {
            Path file = Files.writeString(temp.resolve("hand.properties"), entry.getKey());
            if (entry.getValue().isEmpty()) { // read as written
                assertEquals(profile(HERE), AutoProfile.read(file), entry.getKey());
            } else {
                IOException wrong = assertThrows(IOException.class, () -> AutoProfile.read(file), entry.getKey());
                assertTrue(
                        wrong.getMessage().endsWith("is not a panorm profile: " + entry.getValue()),
                        wrong.getMessage());
            }
        }
    }

    /**
     * A profile that is no regular file, or larger than any profile, is ignored with a warning without being read: a
     * FIFO blocked the first AUTO operation for good, and {@code /dev/zero} or a huge file filled the heap.
     */
    @Test
    void onlyARegularFileOfAProfilesSizeIsRead() throws Exception {
        Path fifo = temp.resolve("fifo.properties");
        assumeTrue(new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor() == 0, "mkfifo");
        Path huge = temp.resolve("huge.properties");
        try (RandomAccessFile sparse = new RandomAccessFile(huge.toFile(), "rw")) {
            sparse.setLength(AutoProfile.MAX_BYTES + 1L);
        }
        Map<String, String> expected = Map.of(
                fifo.toString(),
                "not a regular file",
                "/dev/zero",
                "not a regular file",
                huge.toString(),
                "larger than 1024 KiB, which no profile is");
        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
            for (Map.Entry<String, String> entry : expected.entrySet()) {
                var found = lookUp(entry.getKey(), temp);
                assertEquals(Optional.empty(), found.getKey(), entry.getKey());
                assertEquals(1, found.getValue().size(), entry.getKey());
                assertTrue(
                        found.getValue().getFirst().endsWith(entry.getValue()),
                        found.getValue().toString());
            }
        });
        Path largest = Files.writeString(temp.resolve("padded.properties"), Files.readString(writeValid()));
        Files.writeString(
                largest, "#".repeat((int) (AutoProfile.MAX_BYTES - Files.size(largest))), StandardOpenOption.APPEND);
        assertEquals(profile(HERE), AutoProfile.read(largest), "a profile of the largest size is read");
    }

    private Path writeValid() throws IOException {
        Path file = temp.resolve("valid.properties");
        profile(HERE).write(file);
        return file;
    }

    @Test
    void crossoversNameADataTypeAndAKind() {
        assertThrows(IllegalArgumentException.class, () -> new AutoProfile(HERE, TUNED, Map.of("f32.sideways", 1L)));
        assertThrows(IllegalArgumentException.class, () -> new AutoProfile(HERE, TUNED, Map.of("forward", 1L)));
        assertThrows(IllegalArgumentException.class, () -> new AutoProfile(HERE, TUNED, Map.of("f32.forward", -1L)));
        // A second crossover lies above its kind's first one.
        Map<String, Long> first = Map.of("f32.backward", 4096L);
        assertThrows(
                IllegalArgumentException.class,
                () -> new AutoProfile(HERE, TUNED, first, Map.of("f32.backward", 4096L)));
        assertThrows(
                IllegalArgumentException.class,
                () -> new AutoProfile(HERE, TUNED, first, Map.of("f32.forward", 1L << 20)));
        assertThrows(
                IllegalArgumentException.class,
                () -> new AutoProfile(HERE, TUNED, first, Map.of("f32.backwards", 1L << 20)));
        // A crossover for wide rows belongs to a kind with a crossover.
        assertThrows(
                IllegalArgumentException.class,
                () -> new AutoProfile(HERE, TUNED, first, Map.of(), Map.of(), Map.of("f32.forward", 8192L)));
    }

    @Test
    void theRunningMachineHasAKey() {
        AutoProfile.Key here = AutoProfile.Key.thisMachine();
        assertEquals(Runtime.getRuntime().availableProcessors(), here.cores());
        assertEquals(Runtime.version().toString(), here.java());
        assertTrue(!here.cpu().isBlank() && !here.onednn().isBlank(), here.toString());
    }
}
