package dev.panorm.internal.io;

import dev.panorm.internal.ffm.LinkerAbi;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.file.Path;

/**
 * Linux's unnamed files: {@code open(folder, O_TMPFILE)} makes a file with no name in a folder, which {@code linkat}
 * names once it is complete. Until then no other process sees it, and when this one ends, however it ends (SIGKILL,
 * the OOM killer), the system frees it: a named temporary file would be left behind. Available on Linux, on the
 * ABIs panorm is tested on, where native access is allowed; a file system without {@code O_TMPFILE} support refuses
 * the open, and the caller then makes a named file ({@link ReplacedFile}).
 */
final class UnnamedFiles {
    private static final StructLayout CAPTURED = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURED.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final int O_RDWR = 02;
    /** Not inherited by a program this process starts meanwhile, which would keep the unnamed file alive. */
    private static final int O_CLOEXEC = 02000000;
    /** {@code __O_TMPFILE | O_DIRECTORY}, whose value differs between the architectures; 0 where unknown. */
    private static final int O_TMPFILE = switch (System.getProperty("os.arch", "")) {
        case "amd64", "x86_64" -> 020200000;
        case "aarch64" -> 020040000;
        default -> 0;
    };
    /** rw for everyone; the system takes the umask off, as for any new file. */
    private static final int MODE = 0666;

    private static final int AT_FDCWD = -100;
    private static final int AT_SYMLINK_FOLLOW = 0x400;
    /** errno: a file of the name exists. */
    static final int EEXIST = 17;

    private static final boolean LINUX = System.getProperty("os.name", "").equals("Linux");
    private static final MethodHandle OPEN = downcall(
            "open",
            FunctionDescriptor.of(
                    ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT),
            Linker.Option.firstVariadicArg(2));
    private static final MethodHandle LINKAT = downcall(
            "linkat",
            FunctionDescriptor.of(
                    ValueLayout.JAVA_INT,
                    ValueLayout.JAVA_INT,
                    ValueLayout.ADDRESS,
                    ValueLayout.JAVA_INT,
                    ValueLayout.ADDRESS,
                    ValueLayout.JAVA_INT),
            Linker.Option.captureCallState("errno"));
    private static final MethodHandle CLOSE =
            downcall("close", FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
    private static final MethodHandle STRERROR =
            downcall("strerror", FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.JAVA_INT));

    private UnnamedFiles() {}

    private static MethodHandle downcall(String name, FunctionDescriptor descriptor, Linker.Option... options) {
        return LINUX && O_TMPFILE != 0 ? LinkerAbi.libcDowncall(name, descriptor, options) : null;
    }

    /** {@return whether this JVM can make unnamed files at all} */
    static boolean available() {
        return OPEN != null && LINKAT != null && CLOSE != null && STRERROR != null;
    }

    /**
     * Makes an unnamed file in {@code folder}, open for reading and writing.
     *
     * @return its file descriptor, or -1 if it cannot be made there, for whatever reason (the caller makes a named
     *     file instead, whose error then says why)
     */
    static int open(Path folder) {
        if (!available()) {
            return -1;
        }
        try (Arena arena = Arena.ofConfined()) {
            return (int) OPEN.invokeExact(LinkerAbi.pathString(arena, folder), O_TMPFILE | O_RDWR | O_CLOEXEC, MODE);
        } catch (Throwable e) {
            throw new IllegalStateException("open(O_TMPFILE) failed", e);
        }
    }

    /** {@return the path that opens {@code descriptor}'s file again, in this process} */
    static Path path(int descriptor) {
        return Path.of("/proc/self/fd/" + descriptor);
    }

    /**
     * Gives the unnamed file of {@code descriptor} the name {@code file}, which must not exist.
     *
     * @return 0, or the errno that says why not ({@link #EEXIST} if {@code file} exists)
     */
    static int link(int descriptor, Path file) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURED);
            int result = (int) LINKAT.invokeExact(
                    state,
                    AT_FDCWD,
                    LinkerAbi.pathString(arena, path(descriptor)),
                    AT_FDCWD,
                    LinkerAbi.pathString(arena, file),
                    AT_SYMLINK_FOLLOW);
            return result == 0 ? 0 : (int) ERRNO.get(state, 0L);
        } catch (Throwable e) {
            throw new IllegalStateException("linkat failed", e);
        }
    }

    /** Closes {@code descriptor}; an unnamed file with no other descriptor open is freed. */
    static void close(int descriptor) {
        try {
            int ignored = (int) CLOSE.invokeExact(descriptor); // nothing is lost: the file was forced or is dropped
        } catch (Throwable e) {
            throw new IllegalStateException("close failed", e);
        }
    }

    /** {@return the system's words for {@code errno}, e.g. "No space left on device"} */
    static String describe(int errno) {
        try {
            MemorySegment text = (MemorySegment) STRERROR.invokeExact(errno);
            return text.equals(MemorySegment.NULL)
                    ? "errno " + errno
                    : text.reinterpret(256).getString(0);
        } catch (Throwable e) {
            throw new IllegalStateException("strerror failed", e);
        }
    }
}
