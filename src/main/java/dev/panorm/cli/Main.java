package dev.panorm.cli;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.NativeLibraryException;
import dev.panorm.OneDnn;
import dev.panorm.PanormException;
import dev.panorm.Tensor;
import dev.panorm.io.Npy;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.SplittableRandom;

/**
 * The {@code panorm} command line: {@code info}, {@code normalize} and {@code demo}.
 * Exit status: 0 on success, 1 when the work fails (bad input file, native failure), 2 on a usage error.
 */
public final class Main {
    static final int OK = 0;
    static final int FAILED = 1;
    static final int USAGE = 2;

    private static final String USAGE_TEXT = """
            Usage: panorm <command> [arguments]

            Commands:
              info        oneDNN's version, the CPU ISA it uses, the implementation it picks for a
                          sample shape, its thread count, and the path it was loaded from
              normalize IN.npy OUT.npy [--gamma G.npy] [--beta B.npy] [--eps E] [--backend onednn|java]
                          layer-normalizes a float32 .npy array (C order, rank >= 1) over its last
                          axis, like torch.nn.LayerNorm(C, eps); gamma and beta are float32 [C].
                          OUT is written to a temporary file and renamed, never left partial.
                          Defaults: --eps 1e-5, --backend onednn, no gamma (scale 1), no beta (shift 0).
              demo        normalizes a sample tensor with both backends; prints agreement and timing
              help        this text

            Exit status: 0 success, 1 failure, 2 usage error.
            """;

    private final PrintStream out;
    private final PrintStream err;

    private Main(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    /** Runs the command line and exits with its status. */
    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    /**
     * Runs one command.
     *
     * @return the exit status
     */
    static int run(String[] args, PrintStream out, PrintStream err) {
        Main main = new Main(out, err);
        if (args.length == 0) {
            err.print(USAGE_TEXT);
            return USAGE;
        }
        String[] rest = Arrays.copyOfRange(args, 1, args.length);
        try {
            return switch (args[0]) {
                case "info" -> main.info(rest);
                case "normalize" -> main.normalize(rest);
                case "demo" -> main.demo(rest);
                case "help", "-h", "--help" -> {
                    out.print(USAGE_TEXT);
                    yield OK;
                }
                default -> throw new UsageException("unknown command '" + args[0] + "'");
            };
        } catch (UsageException e) {
            err.println("panorm: " + e.getMessage());
            err.println("Run 'panorm help' for usage.");
            return USAGE;
        } catch (NoSuchFileException e) {
            err.println("panorm: error: no such file: " + e.getFile());
            return FAILED;
        } catch (IOException | PanormException | IllegalArgumentException | IllegalStateException e) {
            err.println("panorm: error: " + e.getMessage());
            return FAILED;
        }
    }

    private int info(String[] args) {
        if (args.length != 0) {
            throw new UsageException("info takes no arguments");
        }
        out.println("panorm       " + Optional.ofNullable(Main.class.getPackage().getImplementationVersion()).orElse("(development build)"));
        out.println("java         " + Runtime.version() + " (" + System.getProperty("java.vendor") + ")");
        Optional<NativeLibraryException> failure = OneDnn.loadFailure();
        if (failure.isPresent()) {
            out.println("oneDNN       not available: " + failure.get().getMessage());
            out.println("backends     java");
            return FAILED;
        }
        out.println("oneDNN       " + OneDnn.version() + (OneDnn.gitHash().isEmpty() ? "" : " (git " + OneDnn.gitHash() + ")")
                + (OneDnn.isBundled() ? ", bundled" : ", user-provided (bundled: " + OneDnn.bundledVersion() + ")"));
        out.println("library      " + OneDnn.libraryPath());
        out.println("CPU ISA      " + OneDnn.cpuIsa());
        out.println("threads      " + OneDnn.maxThreads() + " (" + OneDnn.cpuRuntime() + ")");
        long rows = 32;
        long c = 768;
        try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c))) {
            out.println("sample       layer normalization F32[" + rows + ", " + c + "] forward inference -> "
                    + norm.implementation(rows));
        }
        out.println("backends     onednn, java");
        return OK;
    }

    private int normalize(String[] args) throws IOException {
        List<String> positional = new ArrayList<>();
        Path gammaPath = null;
        Path betaPath = null;
        double eps = LayerNormConfig.DEFAULT_EPS;
        Backend backend = Backend.ONEDNN;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--gamma" -> gammaPath = Path.of(value(args, ++i, "--gamma"));
                case "--beta" -> betaPath = Path.of(value(args, ++i, "--beta"));
                case "--eps" -> eps = parseEps(value(args, ++i, "--eps"));
                case "--backend" -> backend = parseBackend(value(args, ++i, "--backend"));
                default -> {
                    if (args[i].startsWith("--")) {
                        throw new UsageException("unknown option '" + args[i] + "' for normalize");
                    }
                    positional.add(args[i]);
                }
            }
        }
        if (positional.size() != 2) {
            throw new UsageException("normalize needs IN.npy and OUT.npy, got " + positional.size() + " paths");
        }
        Path in = Path.of(positional.get(0));
        Path outPath = Path.of(positional.get(1));
        if (Files.exists(outPath) && Files.exists(in) && Files.isSameFile(in, outPath)) {
            throw new UsageException("OUT is the same file as IN; write to another path");
        }
        if (Files.isDirectory(outPath)) {
            throw new UsageException("OUT " + outPath + " is a directory");
        }
        try (Arena arena = Arena.ofConfined()) {
            Tensor x = Npy.mapFloat32(in, arena);
            if (x.rank() < 1) {
                throw new IllegalArgumentException(in + " holds a scalar (shape ()); layer normalization needs rank >= 1");
            }
            long c = x.dim(-1);
            if (c < 1) {
                throw new IllegalArgumentException(in + " has shape " + Arrays.toString(x.shape())
                        + "; its last axis must not be empty");
            }
            Tensor gamma = gammaPath == null ? null : parameter(gammaPath, "--gamma", c, arena);
            Tensor beta = betaPath == null ? null : parameter(betaPath, "--beta", c, arena);
            LayerNormConfig config = new LayerNormConfig(c, eps, gamma != null, beta != null);
            try (LayerNorm norm = LayerNorm.create(config, backend);
                 Npy.Output output = Npy.Output.create(outPath, x.shape(), arena)) {
                long start = System.nanoTime();
                norm.forward(x, output.tensor(), gamma, beta);
                long nanos = System.nanoTime() - start;
                output.commit();
                long rows = x.elementCount() / c;
                out.printf(Locale.ROOT, "normalized %d rows of %d with %s (%s) in %.3f ms -> %s%n", rows, c,
                        backend.name().toLowerCase(Locale.ROOT), rows > 0 ? norm.implementation(rows) : "nothing to do",
                        nanos / 1e6, outPath);
            }
        }
        return OK;
    }

    private static Tensor parameter(Path path, String option, long c, Arena arena) throws IOException {
        Tensor tensor = Npy.mapFloat32(path, arena);
        if (!tensor.hasShape(c)) {
            throw new IllegalArgumentException(option + " " + path + " has shape " + Arrays.toString(tensor.shape())
                    + " but must have shape [" + c + "] (the last axis of IN)");
        }
        return tensor;
    }

    private int demo(String[] args) {
        if (args.length != 0) {
            throw new UsageException("demo takes no arguments");
        }
        int rows = 64;
        int c = 768;
        LayerNormConfig config = LayerNormConfig.of(c);
        out.printf(Locale.ROOT, "panorm demo: layer normalization of F32[%d, %d], eps %.0e, with scale and shift%n%n",
                rows, c, config.eps());
        List<Backend> backends = new ArrayList<>(List.of(Backend.values()));
        Optional<NativeLibraryException> failure = OneDnn.loadFailure();
        if (failure.isPresent()) {
            out.println("oneDNN is not available (" + failure.get().getMessage() + "); showing the Java backend only.");
            backends.remove(Backend.ONEDNN);
        }
        try (Arena arena = Arena.ofConfined()) {
            SplittableRandom random = new SplittableRandom(42);
            Tensor x = Tensor.allocate(arena, DataType.F32, rows, c);
            Tensor gamma = Tensor.allocate(arena, DataType.F32, c);
            Tensor beta = Tensor.allocate(arena, DataType.F32, c);
            fill(x, random, rows, c);
            fill(gamma, random, 1, c);
            fill(beta, random, 1, c);
            List<float[]> results = new ArrayList<>();
            out.printf(Locale.ROOT, "%-8s %-16s %16s %12s%n", "backend", "implementation", "median per call", "throughput");
            for (Backend backend : backends) {
                Tensor y = Tensor.allocate(arena, DataType.F32, rows, c);
                try (LayerNorm norm = LayerNorm.create(config, backend)) {
                    double seconds = medianSeconds(() -> norm.forward(x, y, gamma, beta));
                    double gigabytes = 2.0 * x.byteExtent() / 1e9; // read src, write dst
                    out.printf(Locale.ROOT, "%-8s %-16s %13.2f us %7.2f GB/s%n", backend.name().toLowerCase(Locale.ROOT),
                            norm.implementation(rows), seconds * 1e6, gigabytes / seconds);
                }
                results.add(y.toFloatArray());
            }
            if (results.size() == 2) {
                double maxDiff = 0;
                for (int i = 0; i < results.get(0).length; i++) {
                    maxDiff = Math.max(maxDiff, Math.abs(results.get(0)[i] - results.get(1)[i]));
                }
                out.printf(Locale.ROOT, "%nagreement: max |onednn - java| = %.2e over %d outputs "
                        + "(both within the README's documented tolerance of the exact result)%n", maxDiff, rows * c);
            }
        }
        return OK;
    }

    /** Rows with different offsets and spreads, like activations; a fixed seed keeps the demo repeatable. */
    private static void fill(Tensor tensor, SplittableRandom random, int rows, int c) {
        float[] values = new float[rows * c];
        for (int r = 0; r < rows; r++) {
            double offset = random.nextDouble(-2, 2);
            double spread = random.nextDouble(0.5, 2);
            for (int i = 0; i < c; i++) {
                values[r * c + i] = (float) (offset + spread * gaussian(random));
            }
        }
        tensor.segment().copyFrom(java.lang.foreign.MemorySegment.ofArray(values));
    }

    private static double gaussian(SplittableRandom random) {
        return Math.sqrt(-2 * Math.log(1 - random.nextDouble())) * Math.cos(2 * Math.PI * random.nextDouble());
    }

    /** Warms up, then times batches of calls for about half a second; returns the median seconds per call. */
    private static double medianSeconds(Runnable call) {
        for (int i = 0; i < 2_000; i++) {
            call.run();
        }
        int batch = 50;
        List<Double> perCall = new ArrayList<>();
        long deadline = System.nanoTime() + 500_000_000L;
        while (System.nanoTime() < deadline || perCall.size() < 5) {
            long start = System.nanoTime();
            for (int i = 0; i < batch; i++) {
                call.run();
            }
            perCall.add((System.nanoTime() - start) / 1e9 / batch);
        }
        perCall.sort(null);
        return perCall.get(perCall.size() / 2);
    }

    private static String value(String[] args, int index, String option) {
        if (index >= args.length) {
            throw new UsageException(option + " needs a value");
        }
        return args[index];
    }

    private static double parseEps(String text) {
        try {
            return Double.parseDouble(text);
        } catch (NumberFormatException e) {
            throw new UsageException("--eps must be a number, got '" + text + "'");
        }
    }

    private static Backend parseBackend(String text) {
        return switch (text) {
            case "onednn" -> Backend.ONEDNN;
            case "java" -> Backend.JAVA;
            default -> throw new UsageException("--backend must be onednn or java, got '" + text + "'");
        };
    }

    /** A command line that does not parse; reported with exit status 2. */
    private static final class UsageException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        UsageException(String message) {
            super(message);
        }
    }
}
