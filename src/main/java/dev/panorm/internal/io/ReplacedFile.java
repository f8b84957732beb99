package dev.panorm.internal.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A file written anew beside its target and renamed over it once complete, so that a failure, or a JVM stopped
 * meanwhile (Ctrl-C), never leaves a partial file under the target's name: what {@code dev.panorm.io.Npy.Output} and
 * {@code panorm bench --chart} write through. Public for the module's own packages only: this package is not exported.
 *
 * <p>As a Unix tool would: a target that is a symbolic link is written through (the file it points to is replaced,
 * the link stays); a target that exists but is not a regular file (a directory, a FIFO, a device) is refused, never
 * replaced; a new file gets mode {@code 0666 & ~umask}, a replaced one keeps its mode. Errors name the target as
 * given and the reason (directory missing, permission denied, read-only file system, disk full), never the
 * temporary file.
 */
public final class ReplacedFile implements AutoCloseable {
    /** The longest file name most Linux file systems take, in bytes. */
    private static final int MAX_NAME_BYTES = 255;

    private final Path target;
    private final Path destination;
    private final Path temporary;
    private final FileChannel channel;
    private final Thread cleanupOnExit;
    private boolean done;

    private ReplacedFile(Path target, Path destination, Path temporary, FileChannel channel, Thread cleanupOnExit) {
        this.target = target;
        this.destination = destination;
        this.temporary = temporary;
        this.channel = channel;
        this.cleanupOnExit = cleanupOnExit;
    }

    /**
     * Creates the temporary file beside where {@code target} really is, open for reading and writing.
     *
     * @param target where the file will appear on {@link #commit()}; a symbolic link is followed
     * @return the file; close it
     * @throws IOException naming {@code target} and the reason, if the file cannot be created, or {@code target}
     *     exists and is not a regular file
     */
    public static ReplacedFile create(Path target) throws IOException {
        Path destination = destination(target);
        String name = destination.getFileName().toString();
        // ".NAME." and ".tmp" around up to 13 random characters; a name near the limit gets a short prefix instead.
        String prefix =
                name.getBytes(StandardCharsets.UTF_8).length + 19 > MAX_NAME_BYTES ? ".panorm-" : "." + name + ".";
        while (true) {
            Path temporary = destination.resolveSibling(
                    prefix + Long.toUnsignedString(ThreadLocalRandom.current().nextLong(), 36) + ".tmp");
            // A name taken is tried again (CREATE_NEW), so it need not be unguessable: no SecureRandom, which reads
            // java.security and failed with an InternalError trace under a low `ulimit -n`.
            // Registered before the file exists, so that no moment leaves it behind when the JVM is stopped.
            Thread cleanupOnExit = new Thread(() -> deleteQuietly(temporary), "panorm-file-cleanup");
            Runtime.getRuntime().addShutdownHook(cleanupOnExit);
            FileChannel channel = null;
            try {
                // No permissions given: the system applies 0666 & ~umask, as for any file a tool creates.
                channel = FileChannel.open(
                        temporary, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ, StandardOpenOption.WRITE);
                if (Files.exists(destination)) {
                    keepMode(destination, temporary);
                }
                return new ReplacedFile(target, destination, temporary, channel, cleanupOnExit);
            } catch (FileAlreadyExistsException taken) {
                removeHook(cleanupOnExit); // another file's name: not ours to delete
            } catch (IOException e) {
                abandon(channel, temporary, cleanupOnExit);
                throw cannotWrite(target, destination, e);
            } catch (RuntimeException e) {
                abandon(channel, temporary, cleanupOnExit);
                throw e;
            }
        }
    }

    /** Undoes a creation that failed half way. */
    private static void abandon(FileChannel channel, Path temporary, Thread cleanupOnExit) {
        if (channel != null) {
            closeQuietly(channel);
            deleteQuietly(temporary);
        }
        removeHook(cleanupOnExit);
    }

    /**
     * Replaces {@code target} with a file of {@code bytes}, as {@link #create} and {@link #commit()} do.
     *
     * @throws IOException naming {@code target} and the reason; the target is then left as it was
     */
    public static void write(Path target, byte[] bytes) throws IOException {
        try (ReplacedFile out = create(target)) {
            ByteBuffer buffer = ByteBuffer.wrap(bytes);
            try {
                while (buffer.hasRemaining()) {
                    out.channel().write(buffer);
                }
            } catch (IOException e) {
                throw out.cannotWrite(e);
            }
            out.commit();
        }
    }

    /** {@return the temporary file, open for reading and writing until {@link #commit()} or {@link #close()}} */
    public FileChannel channel() {
        return channel;
    }

    /** {@return where the file appears on {@link #commit()}, as the caller named it} */
    public Path target() {
        return target;
    }

    /** {@return the temporary file's path} */
    public Path temporary() {
        return temporary;
    }

    /**
     * Flushes the file to disk and renames it over the target (over the file a symbolic link points to, leaving the
     * link). Data written through a mapping must be forced by the caller first.
     *
     * @throws IOException if flushing or renaming fails, naming the target and the reason; the target is then
     *     left as it was
     */
    public void commit() throws IOException {
        if (done) {
            throw new IllegalStateException("already committed or closed");
        }
        try {
            channel.force(true);
            channel.close();
            Files.move(temporary, destination, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw cannotWrite(e);
        }
        finish();
    }

    /** Deletes the temporary file unless {@link #commit()} succeeded. */
    @Override
    public void close() {
        if (!done) {
            closeQuietly(channel);
            deleteQuietly(temporary);
            finish();
        }
    }

    /** {@return an error that names the target as the user gave it and the reason, not the temporary file} */
    public IOException cannotWrite(IOException e) {
        return cannotWrite(target, destination, e);
    }

    private static IOException cannotWrite(Path target, Path destination, IOException e) {
        if (e.getMessage() != null && e.getMessage().startsWith("cannot write ")) {
            return e;
        }
        Path directory = destination.getParent();
        String reason = switch (e) {
            case NoSuchFileException missing
            when !Files.isDirectory(directory) -> "directory " + directory + " does not exist";
            case AccessDeniedException denied -> "permission denied (directory " + directory + ")";
            case FileSystemException system when system.getReason() != null -> system.getReason();
            case FileSystemException system -> "no new file can be made in directory " + directory;
            // FileChannel.map says only "Map failed", with an OutOfMemoryError as the cause when mmap's ENOMEM
            // (address space limited, as under `ulimit -v`) was the reason.
            default ->
                e.getCause() instanceof OutOfMemoryError
                        ? e.getMessage()
                                + ": out of memory or address space for the mapping (a limit such as ulimit -v?)"
                        : e.getMessage();
        };
        return new IOException("cannot write " + target + ": " + reason, e);
    }

    /**
     * Where a write to {@code target} lands: the end of its chain of symbolic links, absolute.
     *
     * @throws IOException if that exists and is not a regular file, or the links loop
     */
    public static Path destination(Path target) throws IOException {
        Path path = endOfLinks(target);
        if (path == null) {
            throw new IOException("cannot write " + target + ": too many levels of symbolic links");
        }
        if (Files.exists(path) && !Files.isRegularFile(path)) {
            throw new IOException("cannot write " + target + ": "
                    + (path.equals(target.toAbsolutePath()) ? "it" : path)
                    + " is " + kind(path) + ", not a regular file; panorm writes a new file and renames it into"
                    + " place, so it never replaces one that is not regular");
        }
        return path;
    }

    /**
     * {@return the end of {@code path}'s chain of symbolic links, absolute, where a write to it lands; null if the
     * links loop (more than 40, as Linux allows)}
     */
    public static Path endOfLinks(Path path) throws IOException {
        Path end = path.toAbsolutePath();
        for (int links = 0; Files.isSymbolicLink(end); links++) {
            if (links == 40) {
                return null;
            }
            end = end.resolveSibling(Files.readSymbolicLink(end));
        }
        return end;
    }

    /** {@return what a file that is not regular is, in words: "a directory", "a FIFO (named pipe)", ...} */
    public static String kind(Path path) {
        if (Files.isDirectory(path)) {
            return "a directory";
        }
        try {
            return switch ((int) Files.getAttribute(path, "unix:mode") & 0170000) {
                case 0010000 -> "a FIFO (named pipe)";
                case 0020000 -> "a character device";
                case 0060000 -> "a block device";
                case 0140000 -> "a socket";
                default -> "a special file";
            };
        } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
            return "a special file";
        }
    }

    /** A replaced file keeps its permissions, where the file system has POSIX ones. */
    private static void keepMode(Path existing, Path replacement) throws IOException {
        try {
            Files.setPosixFilePermissions(replacement, Files.getPosixFilePermissions(existing));
        } catch (UnsupportedOperationException notPosix) {
            // Nothing to keep.
        }
    }

    private void finish() {
        done = true;
        removeHook(cleanupOnExit);
    }

    private static void removeHook(Thread hook) {
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException shuttingDown) {
            // The hook runs anyway; it finds nothing to delete after a commit.
        }
    }

    private static void closeQuietly(FileChannel channel) {
        try {
            channel.close();
        } catch (IOException ignored) {
            // Nothing was committed; the file is deleted next.
        }
    }

    private static void deleteQuietly(Path path) {
        try {
            Files.deleteIfExists(path);
        } catch (IOException ignored) {
            // Best effort: the file has a hidden temporary name.
        }
    }
}
