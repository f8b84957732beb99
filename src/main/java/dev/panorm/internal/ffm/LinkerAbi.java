package dev.panorm.internal.ffm;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.invoke.MethodHandle;

/**
 * Whether this JVM's foreign linker may build downcall and upcall stubs. Public for the module's own packages only:
 * this package is not exported.
 */
public final class LinkerAbi {
    private LinkerAbi() {}

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
