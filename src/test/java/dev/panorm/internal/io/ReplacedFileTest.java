package dev.panorm.internal.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panorm.TestJvm;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link ReplacedFile} with an unnamed file (Linux's {@code O_TMPFILE}, where the file system has it) and with a named
 * temporary file: a target appears only whole, an existing one keeps its mode, and a file not committed leaves
 * nothing; the unnamed file leaves nothing even when its folder is renamed or its process killed.
 */
class ReplacedFileTest {
    @TempDir
    Path temp;

    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void theTargetAppearsOnlyOnCommit(boolean unnamed) throws Exception {
        Path target = temp.resolve("out.bin");
        try (ReplacedFile file = create(target, unnamed)) {
            write(file.channel(), "new contents");
            assertEquals(unnamed ? List.of() : List.of(file.temporary()), list(temp), "nothing named yet but its own");
            file.commit();
        }
        assertEquals(List.of(target), list(temp));
        assertEquals("new contents", Files.readString(target));
    }

    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void aReplacedFileKeepsItsModeAndAnAbandonedOneLeavesItAsItWas(boolean unnamed) throws Exception {
        Path target = existing("rw-r-----");
        try (ReplacedFile file = create(target, unnamed)) {
            write(file.channel(), "abandoned");
        }
        assertEquals(List.of(target), list(temp), "the temporary file is gone");
        assertEquals("old", Files.readString(target));
        try (ReplacedFile file = create(target, unnamed)) {
            write(file.channel(), "new");
            file.commit();
        }
        assertEquals(List.of(target), list(temp));
        assertEquals("new", Files.readString(target));
        assertEquals("rw-r-----", PosixFilePermissions.toString(Files.getPosixFilePermissions(target)));
    }

    /** A read-only file is replaced by a read-only file: the mode is set on commit, not while the file is written. */
    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void aReadOnlyFileIsReplacedAndStaysReadOnly(boolean unnamed) throws Exception {
        Path target = existing("r--r--r--");
        try (ReplacedFile file = create(target, unnamed)) {
            assertEquals(
                    "rw-r--r--",
                    PosixFilePermissions.toString(Files.getPosixFilePermissions(file.temporary())),
                    "writable by its owner while it is written");
            try (FileChannel again = FileChannel.open(file.temporary(), StandardOpenOption.WRITE)) {
                write(again, "new");
            }
            file.commit();
        }
        assertEquals("new", Files.readString(target));
        assertEquals("r--r--r--", PosixFilePermissions.toString(Files.getPosixFilePermissions(target)));
        assertEquals(List.of(target), list(temp));
    }

    /** An unnamed file dropped without close: its descriptor is closed when it is collected, and the file freed. */
    @Test
    void anUnnamedFileDroppedUnclosedIsFreedByTheCollector() throws Exception {
        create(temp.resolve("probe"), true).close(); // skips where the file system has no unnamed files
        for (int i = 0; i < 20; i++) {
            create(temp.resolve("out" + i + ".bin"), true).channel().write(ByteBuffer.allocate(4096));
        }
        assertEquals(20, descriptorsOfUnnamedFilesHere(), "each holds its own descriptor (the channel's aside)");
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (descriptorsOfUnnamedFilesHere() > 0 && System.nanoTime() < deadline) {
            System.gc();
            Thread.sleep(20);
        }
        assertEquals(0, descriptorsOfUnnamedFilesHere());
    }

    /** {@return how many of this process's descriptors are unnamed files in {@link #temp}, each counted once} */
    private long descriptorsOfUnnamedFilesHere() throws IOException {
        try (Stream<Path> descriptors = Files.list(Path.of("/proc/self/fd"))) {
            return descriptors
                    .map(descriptor -> {
                        try {
                            return Files.readSymbolicLink(descriptor).toString();
                        } catch (IOException closed) {
                            return "";
                        }
                    })
                    .filter(link -> link.startsWith(temp + "/#"))
                    .distinct()
                    .count();
        }
    }

    /** A folder renamed while its output is written: the commit says so, and neither name holds a file after. */
    @Test
    void anUnnamedFileWhoseFolderMovedLeavesNothing() throws Exception {
        Path folder = Files.createDirectory(temp.resolve("results"));
        Path target = folder.resolve("out.bin");
        try (ReplacedFile file = create(target, true)) {
            file.channel().write(ByteBuffer.allocate(4096));
            Files.move(folder, temp.resolve("moved"));
            IOException error = assertThrows(IOException.class, file::commit);
            assertEquals("cannot write " + target + ": directory " + folder + " does not exist", error.getMessage());
        }
        assertEquals(List.of(), list(temp.resolve("moved")));
    }

    /** SIGKILL (as the OOM killer sends) while writing: the unnamed file is freed with its process. */
    @Test
    void anUnnamedFileOfAKilledProcessLeavesNothing() throws Exception {
        create(temp.resolve("probe"), true).close(); // skips where the file system has no unnamed files
        Path target = temp.resolve("out.bin");
        Process child = new ProcessBuilder(
                        TestJvm.java(),
                        "--enable-native-access=ALL-UNNAMED",
                        "-cp",
                        TestJvm.classPath(),
                        ReplacedFileProbe.class.getName(),
                        target.toString(),
                        "true")
                .redirectErrorStream(true)
                .start();
        try (BufferedReader output =
                new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            StringBuilder seen = new StringBuilder();
            while ((line = output.readLine()) != null && !line.equals("writing")) {
                seen.append(line).append('\n');
            }
            assertEquals("writing", line, seen.toString());
            child.destroyForcibly(); // SIGKILL: no shutdown hook runs
            assertTrue(child.waitFor(30, TimeUnit.SECONDS));
        }
        assertEquals(List.of(), list(temp));
    }

    /** {@return {@code out.bin} in {@link #temp}, holding "old", with {@code mode}} */
    private Path existing(String mode) throws IOException {
        Path file = Files.writeString(temp.resolve("out.bin"), "old");
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString(mode));
        return file;
    }

    private static void write(FileChannel channel, String text) throws IOException {
        channel.write(ByteBuffer.wrap(text.getBytes(StandardCharsets.US_ASCII)));
    }

    /** {@link ReplacedFile#create(Path, boolean)}; an unnamed file only where this file system makes them. */
    private static ReplacedFile create(Path target, boolean unnamed) throws IOException {
        ReplacedFile file = ReplacedFile.create(target, unnamed);
        if (unnamed && !file.temporary().startsWith("/proc/self/fd")) {
            file.close();
            assumeTrue(false, "no unnamed files (O_TMPFILE) on this file system");
        }
        return file;
    }

    private static List<Path> list(Path folder) throws IOException {
        try (Stream<Path> files = Files.list(folder)) {
            return files.sorted().toList();
        }
    }
}
