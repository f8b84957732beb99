package dev.panorm.internal.ffm;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * Whether this JVM's foreign linker may build downcall and upcall stubs. Public for the module's own packages only:
 * this package is not exported.
 */
public final class LinkerAbi {
    /** How the JDK encodes file names for the system ({@code sun.jnu.encoding}, from the locale). */
    private static final Charset FILE_NAMES = fileNames();

    private LinkerAbi() {}

    private static Charset fileNames() {
        try {
            return Charset.forName(System.getProperty("sun.jnu.encoding", "UTF-8"));
        } catch (IllegalArgumentException unknown) {
            return StandardCharsets.UTF_8;
        }
    }

    /**
     * {@return {@code path} as a C string in {@code arena}, encoded as the JDK encodes file names} UTF-8 instead would
     * name another file under a locale of another encoding.
     */
    public static MemorySegment pathString(Arena arena, Path path) {
        return arena.allocateFrom(path.toString(), FILE_NAMES);
    }

    /**
     * {@return whether {@code os.arch} names an ABI panorm is tested on} The linker takes its ABI from {@code os.arch};
     * in a JVM started with another {@code os.arch} than its own (as {@code NativeLibraryTest}'s test of unsupported
     * platforms does), making a stub crashes the JVM (SIGSEGV in {@code ForeignGlobals::parse_abi_descriptor}). Code
     * that can do without its stub asks first.
     */
    public static boolean isTested() {
        String arch = System.getProperty("os.arch", "");
        return arch.equals("amd64") || arch.equals("x86_64") || arch.equals("aarch64");
    }

    /**
     * {@return a downcall handle for the C library's function {@code name}, or null where there is none, the ABI is
     * not one panorm is tested on ({@link #isTested()}), or native access is denied ({@code
     * --illegal-native-access=deny})} For code that has a way to do without the function.
     */
    public static MethodHandle libcDowncall(String name, FunctionDescriptor descriptor, Linker.Option... options) {
        if (!isTested()) {
            return null;
        }
        Linker linker = Linker.nativeLinker();
        try {
            return linker.defaultLookup()
                    .find(name)
                    .map(symbol -> linker.downcallHandle(symbol, descriptor, options))
                    .orElse(null);
        } catch (IllegalCallerException nativeAccessDenied) {
            return null;
        }
    }
}
