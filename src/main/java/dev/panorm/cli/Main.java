package dev.panorm.cli;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.NativeLibraryException;
import dev.panorm.OneDnn;
import dev.panorm.PanormException;
import dev.panorm.Tensor;
import dev.panorm.cli.CommandLine.UsageException;
import dev.panorm.io.Npy;
import dev.panorm.pipeline.Pipeline;

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
import java.util.Map;
import java.util.Optional;
import java.util.SplittableRandom;

/**
 * The {@code panorm} command line: {@code info}, {@code normalize}, {@code backward}, {@code demo} and
 * {@code bench}. Exit status: 0 on success, 1 when the work fails (bad input file, native failure), 2 on
 * a usage error. Public only as the jar's entry point.
 */
public final class Main {
    static final int OK = 0;
    static final int FAILED = 1;
    static final int USAGE = 2;

    private static final String USAGE_TEXT = """
            Usage: panorm <command> [arguments]

            Commands:
              info [--types]
                          oneDNN's version, the CPU ISA it uses, the implementation it picks for a
                          sample shape, its thread count, and the path it was loaded from;
                          --types also lists the implementation for every combination of data types
              normalize IN.npy OUT.npy [--gamma G.npy] [--beta B.npy] [--eps E] [--backend auto|onednn|java|java-scalar]
                        [--stats MEAN.npy VAR.npy] [--axes K] [--rms] [--precise] [--out-dtype f32|f16|bf16]
                        [--chunk-rows N]
                          layer-normalizes a float32 (<f4) or float16 (<f2) .npy array (C order)
                          over its last K axes (default 1), like torch.nn.LayerNorm(IN.shape[-K:], eps);
                          gamma and beta have those K axes' shape.
                          --rms: RMS normalization, like torch.nn.RMSNorm (default eps 2^-23).
                          --precise: oneDNN gets statistics panorm computed in double.
                          --out-dtype: OUT's type; bf16 is written as its raw bit patterns ('<u2',
                          NumPy has no bfloat16): (a.astype(np.uint32) << 16).view(np.float32) widens it.
                          --stats also writes each row's mean and biased variance (shape of IN
                          without its last K axes), as the forward-training pass computes them; with
                          --rms the mean is 0 and the variance is the mean square.
                          Files stream through N rows at a time (default: about 1 MiB), so they may
                          be larger than memory; a progress bar shows on a terminal.
                          Defaults: --eps 1e-5, --backend auto, no gamma (scale 1), no beta (shift 0).
              backward X.npy DY.npy OUT_DX.npy [--gamma G.npy] [--out-dgamma DG.npy] [--out-dbeta DB.npy]
                        [--eps E] [--backend auto|onednn|java|java-scalar]
                          gradients of a layer norm of X given DY = dLoss/dOutput: recomputes the
                          statistics from X, writes dLoss/dX, and with --out-dgamma / --out-dbeta the
                          scale and shift gradients summed over all rows (--out-dgamma needs --gamma).
              Every output is written to a temporary file and renamed when complete, never left partial.
              demo        normalizes a sample tensor with both backends; prints agreement and timing
              bench [--shapes ROWSxC,...] [--seconds S] [--json] [--chart FILE.png|FILE.svg]
                          times forward float32 on each backend and a plain copy of the same bytes, per
                          shape (default 1x768,8x768,32x768,512x1024,2048x4096; S seconds of warm-up and
                          of timing each, default 0.3); prints a table, or JSON with --json; --chart
                          also draws GB/s against size per backend, with the copy as the roof
              help        this text

            Exit status: 0 success, 1 failure, 2 usage error.
            """;

    private final PrintStream out;
    private final PrintStream err;

    private Main(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    /**
     * Runs the command line and exits the JVM with its status.
     *
     * @param args a command ({@code info}, {@code normalize}, {@code backward}, {@code demo}, {@code bench}
     *     or {@code help}) and its arguments; {@code panorm help} prints them all
     */
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
                case "backward" -> main.backward(rest);
                case "demo" -> main.demo(rest);
                case "bench" -> main.bench(rest);
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
        CommandLine line = new CommandLine("info", args, Map.of("--types", 0));
        line.positional();
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
        try (Arena arena = Arena.ofConfined(); LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c))) {
            Tensor x = Tensor.allocate(arena, DataType.F32, rows, c);
            Tensor parameter = Tensor.allocate(arena, DataType.F32, c);
            out.println("sample       layer normalization F32[" + rows + ", " + c + "] forward inference -> "
                    + norm.implementation(x, x, parameter, parameter));
        }
        out.println("backends     onednn, java");
        if (line.has("--types")) {
            printTypeTable(rows, c);
        }
        return OK;
    }

    /** Which implementation runs a forward pass for every combination of data types, on this machine. */
    private void printTypeTable(long rows, long c) {
        out.println();
        out.printf(Locale.ROOT, "forward inference on [%d, %d] data, by data type:%n", rows, c);
        out.printf(Locale.ROOT, "%-5s %-5s %-12s %s%n", "src", "dst", "scale/shift", "implementation");
        try (Arena arena = Arena.ofConfined(); LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c))) {
            for (DataType src : DataType.values()) {
                for (DataType dst : DataType.values()) {
                    for (DataType parameters : DataType.values()) {
                        Tensor x = Tensor.allocate(arena, src, rows, c);
                        Tensor y = Tensor.allocate(arena, dst, rows, c);
                        Tensor p = Tensor.allocate(arena, parameters, c);
                        out.printf(Locale.ROOT, "%-5s %-5s %-12s %s%n", name(src), name(dst), name(parameters),
                                norm.implementation(x, y, p, p));
                    }
                }
            }
        }
    }

    private static String name(Backend backend) {
        return backend.name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    private static String name(DataType type) {
        return type.name().toLowerCase(Locale.ROOT);
    }

    private int normalize(String[] args) throws IOException {
        CommandLine line = new CommandLine("normalize", args, Map.of("--gamma", 1, "--beta", 1, "--eps", 1,
                "--backend", 1, "--stats", 2, "--out-dtype", 1, "--axes", 1, "--rms", 0, "--precise", 0,
                "--chunk-rows", 1));
        List<String> paths = line.positional("IN.npy", "OUT.npy");
        Path in = Path.of(paths.get(0));
        Path outPath = Path.of(paths.get(1));
        Path gammaPath = optionalPath(line, "--gamma");
        Path betaPath = optionalPath(line, "--beta");
        List<String> stats = line.values("--stats");
        Path meanPath = stats == null ? null : Path.of(stats.get(0));
        Path variancePath = stats == null ? null : Path.of(stats.get(1));
        boolean rms = line.has("--rms");
        double defaultEps = rms ? LayerNormConfig.DEFAULT_RMS_EPS : LayerNormConfig.DEFAULT_EPS;
        double eps = parseEps(line.value("--eps", String.valueOf(defaultEps)));
        Backend backend = parseBackend(line.value("--backend", "auto"));
        DataType outType = parseDataType(line.value("--out-dtype", "f32"));
        int axes = (int) parsePositive("--axes", line.value("--axes", "1"), Integer.MAX_VALUE);
        long chunkRows = line.has("--chunk-rows") ? parsePositive("--chunk-rows", line.value("--chunk-rows", ""), Long.MAX_VALUE) : 0;
        checkDistinct(Arrays.asList(in, gammaPath, betaPath), Arrays.asList(outPath, meanPath, variancePath));
        try (Arena arena = Arena.ofConfined()) {
            Tensor x = data(in, "IN", axes, arena);
            long[] normalizedShape = Arrays.copyOfRange(x.shape(), x.rank() - axes, x.rank());
            Tensor gamma = gammaPath == null ? null : parameter(gammaPath, "--gamma", normalizedShape, arena);
            Tensor beta = betaPath == null ? null : parameter(betaPath, "--beta", normalizedShape, arena);
            LayerNormConfig config = (rms ? LayerNormConfig.rms(normalizedShape) : LayerNormConfig.of(normalizedShape))
                    .withEps(eps).withScale(gamma != null).withShift(beta != null)
                    .withPreciseStatistics(line.has("--precise"));
            long[] rowShape = Arrays.copyOf(x.shape(), x.rank() - axes);
            try (LayerNorm norm = LayerNorm.create(config, backend);
                 Npy.Output output = Npy.Output.create(outPath, x.shape(), outType, arena);
                 Npy.Output mean = stats == null ? null : Npy.Output.create(meanPath, rowShape, arena);
                 Npy.Output variance = stats == null ? null : Npy.Output.create(variancePath, rowShape, arena)) {
                long start = System.nanoTime();
                // Chunk by chunk through the mapped files, so a file larger than memory streams through.
                Pipeline pipeline = Pipeline.of(norm).parameters(gamma, beta).progress(ProgressBar.onTerminal(err));
                pipeline = chunkRows > 0 ? pipeline.chunkRows(chunkRows) : pipeline;
                // RMS normalization has no mean: the file keeps the zeros it normalizes with.
                Pipeline.Summary done = stats == null ? pipeline.run(x, output.tensor())
                        : pipeline.runTraining(x, output.tensor(), rms ? null : mean.tensor(), variance.tensor());
                Tensor firstRows = x.rows(axes, 0, Math.min(done.rows(), pipeline.chunkRowsFor(x)));
                String implementation = norm.implementation(firstRows, output.tensor().rows(axes, 0, firstRows.dim(0)),
                        gamma, beta);
                output.commit();
                if (stats != null) {
                    mean.commit();
                    variance.commit();
                }
                double seconds = (System.nanoTime() - start) / 1e9;
                out.printf(Locale.ROOT, "normalized %d rows of %d with %s (%s) in %.3f s, %d bytes read and written,"
                        + " %.2f GB/s -> %s%s%n", done.rows(), config.normalizedSize(), name(backend), implementation,
                        seconds, done.bytes(), done.bytes() / seconds / 1e9, outPath, stats == null ? "" : ", " + meanPath + ", " + variancePath);
            }
        }
        return OK;
    }

    private int backward(String[] args) throws IOException {
        CommandLine line = new CommandLine("backward", args,
                Map.of("--gamma", 1, "--out-dgamma", 1, "--out-dbeta", 1, "--eps", 1, "--backend", 1));
        List<String> paths = line.positional("X.npy", "DY.npy", "OUT_DX.npy");
        Path xPath = Path.of(paths.get(0));
        Path dyPath = Path.of(paths.get(1));
        Path dxPath = Path.of(paths.get(2));
        Path gammaPath = optionalPath(line, "--gamma");
        Path dGammaPath = optionalPath(line, "--out-dgamma");
        Path dBetaPath = optionalPath(line, "--out-dbeta");
        if (dGammaPath != null && gammaPath == null) {
            throw new UsageException("--out-dgamma needs --gamma: without a scale there is no scale gradient");
        }
        double eps = parseEps(line.value("--eps", String.valueOf(LayerNormConfig.DEFAULT_EPS)));
        Backend backend = parseBackend(line.value("--backend", "auto"));
        checkDistinct(Arrays.asList(xPath, dyPath, gammaPath), Arrays.asList(dxPath, dGammaPath, dBetaPath));
        try (Arena arena = Arena.ofConfined()) {
            Tensor x = data(xPath, "X", 1, arena);
            Tensor dy = Npy.mapFloat32(dyPath, arena);
            if (!dy.hasSameShape(x)) {
                throw new IllegalArgumentException("DY " + dyPath + " has shape " + Arrays.toString(dy.shape())
                        + " but must have the shape of X, " + Arrays.toString(x.shape()));
            }
            long c = x.dim(-1);
            Tensor gamma = gammaPath == null ? null : parameter(gammaPath, "--gamma", new long[] {c}, arena);
            // The shift does not change any gradient; it is configured only when its gradient is asked for.
            boolean shift = dBetaPath != null;
            LayerNormConfig config = LayerNormConfig.of(c).withEps(eps).withScale(gamma != null).withShift(shift);
            long[] rowShape = Arrays.copyOf(x.shape(), x.rank() - 1);
            Tensor beta = shift ? Tensor.allocate(arena, DataType.F32, c) : null;
            Tensor mean = Tensor.allocate(arena, DataType.F32, rowShape);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rowShape);
            boolean full = gamma != null && dGammaPath != null || shift;
            try (LayerNorm norm = LayerNorm.create(config, backend);
                 Npy.Output dx = Npy.Output.create(dxPath, x.shape(), arena);
                 Npy.Output dGamma = dGammaPath == null ? null : Npy.Output.create(dGammaPath, new long[] {c}, arena);
                 Npy.Output dBeta = dBetaPath == null ? null : Npy.Output.create(dBetaPath, new long[] {c}, arena)) {
                long start = System.nanoTime();
                // The statistics come from a forward-training pass; its output is not needed, so dx holds it briefly.
                norm.forwardTraining(x, dx.tensor(), gamma, beta, mean, variance);
                if (full) {
                    Tensor diffScale = gamma == null ? null
                            : dGamma != null ? dGamma.tensor() : Tensor.allocate(arena, DataType.F32, c);
                    norm.backward(dy, x, mean, variance, gamma, dx.tensor(), diffScale, shift ? dBeta.tensor() : null);
                } else {
                    norm.backwardData(dy, x, mean, variance, gamma, dx.tensor());
                }
                long nanos = System.nanoTime() - start;
                dx.commit();
                if (dGamma != null) {
                    dGamma.commit();
                }
                if (dBeta != null) {
                    dBeta.commit();
                }
                out.printf(Locale.ROOT, "backward over %d rows of %d with %s in %.3f ms -> %s%s%s%n", x.elementCount() / c,
                        c, name(backend), nanos / 1e6, dxPath,
                        dGammaPath == null ? "" : ", " + dGammaPath, dBetaPath == null ? "" : ", " + dBetaPath);
            }
        }
        return OK;
    }

    private static Path optionalPath(CommandLine line, String option) {
        String value = line.value(option, null);
        return value == null ? null : Path.of(value);
    }

    /** Outputs must not be directories, inputs, or each other: each is replaced by a rename. */
    private static void checkDistinct(List<Path> inputs, List<Path> outputs) throws IOException {
        List<Path> seen = new ArrayList<>();
        for (Path output : outputs) {
            if (output == null) {
                continue;
            }
            if (Files.isDirectory(output)) {
                throw new UsageException("output " + output + " is a directory");
            }
            for (Path input : inputs) {
                if (input != null && sameFile(input, output)) {
                    throw new UsageException("output " + output + " is the same file as input " + input
                            + "; write to another path");
                }
            }
            for (Path other : seen) {
                if (sameFile(other, output)) {
                    throw new UsageException("two outputs are the same file: " + output);
                }
            }
            seen.add(output);
        }
    }

    private static boolean sameFile(Path a, Path b) throws IOException {
        if (Files.exists(a) && Files.exists(b)) {
            return Files.isSameFile(a, b);
        }
        return a.toAbsolutePath().normalize().equals(b.toAbsolutePath().normalize());
    }

    /** A float32 or float16 array with at least {@code axes} axes, the last ones not empty. */
    private static Tensor data(Path path, String role, int axes, Arena arena) throws IOException {
        Tensor x = Npy.map(path, arena);
        if (x.rank() < axes) {
            throw new IllegalArgumentException(role + " " + path + " has shape " + Arrays.toString(x.shape()) + ": rank "
                    + x.rank() + ", fewer than the " + axes + " axes to normalize over");
        }
        for (int axis = x.rank() - axes; axis < x.rank(); axis++) {
            if (x.dim(axis) < 1) {
                throw new IllegalArgumentException(role + " " + path + " has shape " + Arrays.toString(x.shape())
                        + "; the axes to normalize over must not be empty");
            }
        }
        return x;
    }

    private static Tensor parameter(Path path, String option, long[] normalizedShape, Arena arena) throws IOException {
        Tensor tensor = Npy.map(path, arena);
        if (!tensor.hasShape(normalizedShape)) {
            throw new IllegalArgumentException(option + " " + path + " has shape " + Arrays.toString(tensor.shape())
                    + " but must have shape " + Arrays.toString(normalizedShape) + " (the normalized axes of the data)");
        }
        return tensor;
    }

    private int bench(String[] args) throws IOException {
        CommandLine line = new CommandLine("bench", args, Map.of("--shapes", 1, "--seconds", 1, "--json", 0,
                "--chart", 1));
        line.positional();
        List<long[]> shapes = Bench.parseShapes(line.value("--shapes", Bench.DEFAULT_SHAPES));
        double seconds;
        try {
            seconds = Double.parseDouble(line.value("--seconds", "0.3"));
        } catch (NumberFormatException e) {
            seconds = Double.NaN;
        }
        if (!(seconds > 0 && seconds <= 60)) {
            throw new UsageException("--seconds takes a number of seconds in (0, 60], got " + line.value("--seconds", ""));
        }
        Path chart = optionalPath(line, "--chart");
        if (chart != null && chart.toAbsolutePath().getParent() != null && !Files.isDirectory(chart.toAbsolutePath().getParent())) {
            throw new UsageException("--chart: no such folder " + chart.toAbsolutePath().getParent());
        }
        List<Bench.Result> results = Bench.run(shapes, seconds);
        if (chart != null) {
            try {
                BenchChart.write(results, shapes, chart);
            } catch (NoClassDefFoundError e) {
                throw new UsageException("--chart needs XChart on the class path (scripts/panorm has it): " + e.getMessage());
            }
        }
        if (line.has("--json")) {
            Bench.printJson(results, out);
        } else {
            Bench.printTable(results, out);
        }
        return OK;
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
        List<Backend> backends = new ArrayList<>(List.of(Backend.ONEDNN, Backend.JAVA, Backend.JAVA_SCALAR, Backend.AUTO));
        Optional<NativeLibraryException> failure = OneDnn.loadFailure();
        if (failure.isPresent()) {
            out.println("oneDNN is not available (" + failure.get().getMessage() + "); showing the Java backends only.");
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
            float[] first = null;
            out.printf(Locale.ROOT, "%-12s %-34s %16s %12s %18s%n", "backend", "implementation", "median per call",
                    "throughput", "max |y - y_first|");
            for (Backend backend : backends) {
                Tensor y = Tensor.allocate(arena, DataType.F32, rows, c);
                try (LayerNorm norm = LayerNorm.create(config, backend)) {
                    double seconds = Bench.medianSeconds(() -> norm.forward(x, y, gamma, beta), 0.5);
                    double gigabytes = 2.0 * x.byteExtent() / 1e9; // read src, write dst
                    float[] result = y.toFloatArray();
                    double maxDiff = 0;
                    for (int i = 0; first != null && i < result.length; i++) {
                        maxDiff = Math.max(maxDiff, Math.abs(result[i] - first[i]));
                    }
                    first = first == null ? result : first;
                    out.printf(Locale.ROOT, "%-12s %-34s %13.2f us %7.2f GB/s %18.2e%n", name(backend),
                            norm.implementation(x, y, gamma, beta), seconds * 1e6, gigabytes / seconds, maxDiff);
                }
            }
            out.printf(Locale.ROOT, "%nagreement: every backend within the README's documented tolerance of the exact "
                    + "result; the last column compares each with the first over %d outputs%n", rows * c);
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

    private static double parseEps(String text) {
        try {
            return Double.parseDouble(text);
        } catch (NumberFormatException e) {
            throw new UsageException("--eps must be a number, got '" + text + "'");
        }
    }

    private static DataType parseDataType(String text) {
        return switch (text) {
            case "f32" -> DataType.F32;
            case "f16" -> DataType.F16;
            case "bf16" -> DataType.BF16;
            default -> throw new UsageException("--out-dtype must be f32, f16 or bf16, got '" + text + "'");
        };
    }

    /** A whole number of at least 1 given to {@code option}, within {@code max}. */
    private static long parsePositive(String option, String text, long max) {
        try {
            long value = Long.parseLong(text);
            if (value >= 1 && value <= max) {
                return value;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new UsageException(option + " must be a whole number >= 1, got '" + text + "'");
    }

    private static Backend parseBackend(String text) {
        for (Backend backend : Backend.values()) {
            if (name(backend).equals(text)) {
                return backend;
            }
        }
        throw new UsageException("--backend must be auto, onednn, java or java-scalar, got '" + text + "'");
    }
}
