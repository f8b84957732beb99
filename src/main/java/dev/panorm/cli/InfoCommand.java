package dev.panorm.cli;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.NativeLibraryException;
import dev.panorm.OneDnn;
import dev.panorm.Tensor;
import dev.panorm.internal.cache.AutoProfile;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;

/** {@code panorm info}: which oneDNN runs, from where, what it picks on this machine, and which model AUTO uses. */
@Command(
        name = "info",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        description =
                "oneDNN's version, the CPU ISA it uses, the implementation it picks for a sample shape (and what AUTO runs), its thread"
                        + " count, the path it was loaded from, and AUTO's model: this machine's profile from 'panorm tune',"
                        + " or the built-in one. Exit status 1 if oneDNN cannot be loaded.")
final class InfoCommand implements Callable<Integer> {
    private static final long ROWS = 32;
    private static final long C = 768;

    @ParentCommand
    private Main main;

    @Option(names = "--types", description = "also list both implementations for every combination of data types")
    private boolean types;

    @Override
    public Integer call() {
        PrintStream out = main.out;
        out.println("panorm       "
                + Optional.ofNullable(Main.class.getPackage().getImplementationVersion())
                        .orElse("(development build)"));
        out.println("java         " + Runtime.version() + " (" + System.getProperty("java.vendor") + ")");
        Optional<NativeLibraryException> failure = OneDnn.loadFailure();
        if (failure.isPresent()) {
            out.println("oneDNN       not available: " + failure.get().getMessage());
            out.println("backends     java");
            return Main.FAILED;
        }
        out.println("oneDNN       " + OneDnn.version()
                + (OneDnn.gitHash().isEmpty() ? "" : " (git " + OneDnn.gitHash() + ")")
                + (OneDnn.isBundled() ? ", bundled" : ", user-provided (bundled: " + OneDnn.bundledVersion() + ")"));
        out.println("library      " + OneDnn.libraryPath());
        out.println("CPU ISA      " + OneDnn.cpuIsa());
        out.println("threads      " + OneDnn.maxThreads() + " (" + OneDnn.cpuRuntime() + ")");
        try (Arena arena = Arena.ofConfined();
                LayerNorm oneDnn = LayerNorm.create(LayerNormConfig.of(C), Backend.ONEDNN);
                LayerNorm auto = LayerNorm.create(LayerNormConfig.of(C))) {
            Tensor x = Tensor.allocate(arena, DataType.F32, ROWS, C);
            Tensor parameter = Tensor.allocate(arena, DataType.F32, C);
            out.println("sample       layer normalization F32[" + ROWS + ", " + C + "] forward inference -> "
                    + oneDnn.implementation(x, x, parameter, parameter) + " (oneDNN's), "
                    + auto.implementation(x, x, parameter, parameter) + " (what AUTO runs)");
        }
        out.println("backends     onednn, java");
        out.println("auto model   " + AutoProfile.describeInUse());
        if (types) {
            printTypeTable(out);
        }
        return Main.OK;
    }

    /** Which implementation runs a forward pass for every combination of data types, on this machine. */
    private static void printTypeTable(PrintStream out) {
        out.println();
        out.printf(Locale.ROOT, "forward inference on [%d, %d] data, by data type:%n", ROWS, C);
        out.printf(
                Locale.ROOT,
                "%-5s %-5s %-12s %-32s %s%n",
                "src",
                "dst",
                "scale/shift",
                "AUTO runs",
                "Backend.ONEDNN runs");
        DataType[] types = {DataType.F32, DataType.BF16, DataType.F16}; // a norm's types; S8 is only quantized output
        try (Arena arena = Arena.ofConfined();
                LayerNorm oneDnn = LayerNorm.create(LayerNormConfig.of(C), Backend.ONEDNN);
                LayerNorm auto = LayerNorm.create(LayerNormConfig.of(C))) {
            for (DataType src : types) {
                for (DataType dst : types) {
                    for (DataType parameters : types) {
                        Tensor x = Tensor.allocate(arena, src, ROWS, C);
                        Tensor y = Tensor.allocate(arena, dst, ROWS, C);
                        Tensor p = Tensor.allocate(arena, parameters, C);
                        out.printf(
                                Locale.ROOT,
                                "%-5s %-5s %-12s %-32s %s%n",
                                Options.name(src),
                                Options.name(dst),
                                Options.name(parameters),
                                auto.implementation(x, y, p, p),
                                oneDnn.implementation(x, y, p, p));
                    }
                }
            }
        }
    }
}
