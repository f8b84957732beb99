package dev.panorm.io;

import dev.panorm.internal.ffm.LinkerAbi;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Reserves a file's disk blocks up front with {@code posix_fallocate}. A file written through a memory
 * mapping gets its blocks only when a page is first written; on a full disk that write is a SIGBUS,
 * which kills the JVM when native code does it. With the blocks reserved, a full disk is an
 * {@link IOException} before any data is written. Where the C library lacks posix_fallocate (macOS),
 * the file is extended sparsely as before, and that protection is lost, as it is where native access is denied
 * ({@code --illegal-native-access=deny}) or the linker's ABI is not one panorm is tested on ({@link LinkerAbi}).
 */
final class DiskSpace {
    private static final int O_RDWR = 2;
    private static final StructLayout CAPTURED = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURED.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    /** Null where the C library has no posix_fallocate (macOS): files are then extended sparsely. */
    private static final MethodHandle FALLOCATE = LinkerAbi.libcDowncall(
            "posix_fallocate",
            FunctionDescriptor.of(
                    ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG));

    private static final MethodHandle OPEN = FALLOCATE == null
            ? null
            : LinkerAbi.libcDowncall(
                    "open",
                    // open is variadic (a mode follows O_CREAT); panorm passes no mode, so no variadic argument.
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT),
                    Linker.Option.firstVariadicArg(2),
                    Linker.Option.captureCallState("errno"));
    private static final MethodHandle CLOSE = FALLOCATE == null
            ? null
            : LinkerAbi.libcDowncall("close", FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));

    private DiskSpace() {}

    /**
     * Allocates the disk blocks of bytes {@code [0, length)} of an existing file.
     *
     * @throws IOException giving the system's reason (e.g. no space left on device); the caller names the file
     */
    static void reserve(Path file, long length) throws IOException {
        if (length == 0) {
            return;
        }
        if (FALLOCATE == null || OPEN == null || CLOSE == null) {
            // Without posix_fallocate the file can only grow sparsely; a full disk is then caught later.
            try (FileChannel channel = FileChannel.open(file, StandardOpenOption.WRITE)) {
                if (channel.size() < length) {
                    channel.write(ByteBuffer.allocate(1), length - 1);
                }
            }
            return;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURED);
            int fd = (int) OPEN.invokeExact(state, LinkerAbi.pathString(arena, file), O_RDWR);
            if (fd < 0) {
                throw new IOException(reason((int) ERRNO.get(state, 0L)));
            }
            int error = (int) FALLOCATE.invokeExact(fd, 0L, length);
            int closed = (int) CLOSE.invokeExact(fd);
            if (error != 0) {
                throw new IOException(reason(error) + ", reserving " + length + " bytes");
            }
            if (closed != 0) {
                throw new IOException("close failed after reserving " + length + " bytes");
            }
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable e) {
            throw new IllegalStateException("posix_fallocate failed", e);
        }
    }

    /** The usual errno values a full or limited disk, or a process's limits, give, by name; others by number. */
    private static String reason(int errno) {
        return switch (errno) {
            case 24 -> "too many open files (EMFILE)";
            case 23 -> "too many open files in the system (ENFILE)";
            case 12 -> "out of memory (ENOMEM)";
            case 5 -> "input/output error (EIO)";
            case 28 -> "no space left on device (ENOSPC)";
            case 27 -> "file too large (EFBIG)";
            case 122 -> "disk quota exceeded (EDQUOT)";
            case 13 -> "permission denied (EACCES)";
            case 30 -> "read-only file system (EROFS)";
            case 2 -> "no such file or directory (ENOENT): was its folder moved or removed?";
            default -> "errno " + errno;
        };
    }
}
