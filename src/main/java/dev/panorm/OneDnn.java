package dev.panorm;

import dev.panorm.internal.dnnl.Dnnl;
import dev.panorm.internal.dnnl.dnnl_version_t;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * Facts about the oneDNN library panorm uses, and the process-wide state shared by every oneDNN
 * operation (the library itself and one CPU engine). Loading happens on first use and at most once.
 *
 * <p>Which library is loaded: the one named by the system property {@code panorm.onednn.library}
 * or the environment variable {@code PANORM_ONEDNN_LIBRARY} (any oneDNN 3.x), else the oneDNN
 * bundled in the {@code org.bytedeco:dnnl} runtime jar, extracted once into
 * {@code ~/.cache/panorm} (override with {@code panorm.cache.dir} or {@code PANORM_CACHE_DIR}).
 *
 * <p>Guide: {@code docs/loading.md}.
 */
public final class OneDnn {
    private static volatile Runtime runtime;

    private OneDnn() {}

    /** The loaded library and its one CPU engine, which lives as long as the class loader. */
    record Runtime(
            NativeLibrary.Loaded library, String version, String gitHash, int cpuRuntime, MemorySegment engine) {}

    /**
     * Loads oneDNN if that has not happened yet.
     *
     * @throws NativeLibraryException if it cannot be loaded, naming what was looked for and how to fix it
     */
    static Runtime runtime() {
        Runtime current = runtime;
        if (current == null) {
            synchronized (OneDnn.class) {
                current = runtime;
                if (current == null) {
                    current = runtime = start();
                }
            }
        }
        return current;
    }

    private static Runtime start() {
        NativeLibrary.Loaded library = NativeLibrary.load();
        // Looked up here first: a missing symbol in the bindings is an error in their class's initializer, which
        // leaves that class unusable for the rest of the process.
        if (SymbolLookup.loaderLookup().find("dnnl_version").isEmpty()) {
            throw new NativeLibraryException(
                    library.path() + " is not oneDNN: it has no function dnnl_version. Unset "
                            + NativeLibrary.LIBRARY_PROPERTY + " / " + NativeLibrary.LIBRARY_ENV
                            + " to use the bundled "
                            + NativeLibrary.bundledVersion() + ".",
                    null);
        }
        MemorySegment version = Dnnl.dnnl_version().reinterpret(dnnl_version_t.sizeof());
        int major = dnnl_version_t.major(version);
        String text = major + "." + dnnl_version_t.minor(version) + "." + dnnl_version_t.patch(version);
        if (major != 3) {
            throw new NativeLibraryException(
                    library.path() + " is oneDNN " + text + "; panorm needs oneDNN 3.x. "
                            + "Unset " + NativeLibrary.LIBRARY_PROPERTY + " / " + NativeLibrary.LIBRARY_ENV
                            + " to use the bundled " + NativeLibrary.bundledVersion() + ".",
                    null);
        }
        List<String> missing = missingFunctions(SymbolLookup.loaderLookup());
        if (!missing.isEmpty()) {
            throw new NativeLibraryException(
                    library.path() + " is oneDNN " + text + " but lacks " + String.join(", ", missing)
                            + ", which panorm calls (it is built and tested with " + NativeLibrary.bundledVersion()
                            + "). Use a later oneDNN 3.x, or unset " + NativeLibrary.LIBRARY_PROPERTY + " / "
                            + NativeLibrary.LIBRARY_ENV + " to use the bundled one.",
                    null);
        }
        MemorySegment hashPointer = dnnl_version_t.hash(version);
        String hash = hashPointer.equals(MemorySegment.NULL)
                ? ""
                : hashPointer.reinterpret(64).getString(0);
        int cpuRuntime = dnnl_version_t.cpu_runtime(version);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
            check(Dnnl.dnnl_engine_create(out, Dnnl.dnnl_cpu(), 0), "dnnl_engine_create", "CPU engine 0");
            return new Runtime(library, text, hash, cpuRuntime, out.get(ValueLayout.ADDRESS, 0));
        }
    }

    /**
     * The functions of oneDNN's C API that panorm calls through its bindings ({@code OneDnnFunctionsTest} keeps this
     * list equal to what the sources call). Checked on load: the bindings look a function up on its first call, and a
     * missing one is an error in their class's initializer, which leaves that class unusable for the process.
     */
    static final List<String> FUNCTIONS = List.of(
            "dnnl_binary_primitive_desc_create",
            "dnnl_engine_create",
            "dnnl_get_effective_cpu_isa",
            "dnnl_layer_normalization_backward_primitive_desc_create_v2",
            "dnnl_layer_normalization_forward_primitive_desc_create_v2",
            "dnnl_matmul_primitive_desc_create",
            "dnnl_memory_create",
            "dnnl_memory_desc_create_with_strides",
            "dnnl_memory_desc_destroy",
            "dnnl_memory_desc_get_size",
            "dnnl_memory_destroy",
            "dnnl_memory_set_data_handle",
            "dnnl_post_ops_append_binary",
            "dnnl_post_ops_create",
            "dnnl_post_ops_destroy",
            "dnnl_primitive_attr_create",
            "dnnl_primitive_attr_destroy",
            "dnnl_primitive_attr_set_post_ops",
            "dnnl_primitive_attr_set_scratchpad_mode",
            "dnnl_primitive_create",
            "dnnl_primitive_desc_destroy",
            "dnnl_primitive_desc_query",
            "dnnl_primitive_desc_query_md",
            "dnnl_primitive_destroy",
            "dnnl_primitive_execute",
            "dnnl_reduction_primitive_desc_create",
            "dnnl_stream_create",
            "dnnl_stream_destroy",
            "dnnl_stream_wait",
            "dnnl_version");

    /** {@return the {@link #FUNCTIONS} that {@code lookup} does not find, in that order} */
    static List<String> missingFunctions(SymbolLookup lookup) {
        return FUNCTIONS.stream().filter(name -> lookup.find(name).isEmpty()).toList();
    }

    /** Throws {@link OneDnnException} unless {@code status} is {@code dnnl_success}. */
    static void check(int status, String call, String context) {
        if (status != Dnnl.dnnl_success()) {
            throw new OneDnnException(status, call, context);
        }
    }

    /** {@return whether oneDNN can be loaded} Loads it on first call. */
    public static boolean isAvailable() {
        return loadFailure().isEmpty();
    }

    /** {@return why oneDNN cannot be loaded, or empty if it can} Loads it on first call. */
    public static Optional<NativeLibraryException> loadFailure() {
        try {
            runtime();
            return Optional.empty();
        } catch (NativeLibraryException e) {
            return Optional.of(e);
        }
    }

    /**
     * {@return the loaded oneDNN's version, e.g. {@code 3.8.1}}
     *
     * @throws NativeLibraryException if oneDNN cannot be loaded
     */
    public static String version() {
        return runtime().version();
    }

    /**
     * {@return the loaded oneDNN's git hash, or an empty string if it reports none}
     *
     * @throws NativeLibraryException if oneDNN cannot be loaded
     */
    public static String gitHash() {
        return runtime().gitHash();
    }

    /**
     * {@return the path the {@code libdnnl} shared library was loaded from}
     *
     * @throws NativeLibraryException if oneDNN cannot be loaded
     */
    public static Path libraryPath() {
        return runtime().library().path();
    }

    /**
     * {@return whether the loaded library is the one bundled with panorm (not a user-provided one)}
     *
     * @throws NativeLibraryException if oneDNN cannot be loaded
     */
    public static boolean isBundled() {
        return runtime().library().bundled();
    }

    /**
     * {@return the oneDNN version bundled with this panorm build, whether or not it is the one in use}
     * Loads nothing.
     */
    public static String bundledVersion() {
        return NativeLibrary.bundledVersion();
    }

    /**
     * {@return the CPU threading runtime oneDNN was built with, e.g. {@code OpenMP}}
     *
     * @throws NativeLibraryException if oneDNN cannot be loaded
     */
    public static String cpuRuntime() {
        int code = runtime().cpuRuntime();
        return switch (code) {
            case 0 -> "none";
            case 1 -> "sequential";
            case 2 -> "OpenMP";
            case 4 -> "TBB";
            case 8 -> "threadpool";
            default -> "runtime " + code;
        };
    }

    /**
     * {@return the instruction set oneDNN's CPU kernels use on this machine, e.g. {@code avx512_core}}
     *
     * @throws NativeLibraryException if oneDNN cannot be loaded
     */
    public static String cpuIsa() {
        runtime();
        int isa = Dnnl.dnnl_get_effective_cpu_isa();
        record Isa(int code, String name) {}
        for (Isa known : new Isa[] {
            new Isa(Dnnl.dnnl_cpu_isa_avx10_1_512_amx_fp16(), "avx10_1_512_amx_fp16"),
            new Isa(Dnnl.dnnl_cpu_isa_avx10_1_512_amx(), "avx10_1_512_amx"),
            new Isa(Dnnl.dnnl_cpu_isa_avx10_1_512(), "avx10_1_512"),
            new Isa(Dnnl.dnnl_cpu_isa_avx512_core_bf16(), "avx512_core_bf16"),
            new Isa(Dnnl.dnnl_cpu_isa_avx512_core_vnni(), "avx512_core_vnni"),
            new Isa(Dnnl.dnnl_cpu_isa_avx512_core(), "avx512_core"),
            new Isa(Dnnl.dnnl_cpu_isa_avx2_vnni_2(), "avx2_vnni_2"),
            new Isa(Dnnl.dnnl_cpu_isa_avx2_vnni(), "avx2_vnni"),
            new Isa(Dnnl.dnnl_cpu_isa_avx2(), "avx2"),
            new Isa(Dnnl.dnnl_cpu_isa_avx(), "avx"),
            new Isa(Dnnl.dnnl_cpu_isa_sse41(), "sse41")
        }) {
            if (isa == known.code()) {
                return known.name();
            }
        }
        return isa == Dnnl.dnnl_cpu_isa_default() ? "default" : "isa 0x" + Integer.toHexString(isa);
    }

    /**
     * {@return how many threads one oneDNN call may use by default: OpenMP's {@code omp_get_max_threads()}
     * for the calling thread, which {@code OMP_NUM_THREADS} sets} Returns 1 for a library without OpenMP.
     *
     * @throws NativeLibraryException if oneDNN cannot be loaded
     */
    public static int maxThreads() {
        runtime();
        return OpenMp.defaultThreads();
    }
}
