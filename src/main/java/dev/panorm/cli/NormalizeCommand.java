package dev.panorm.cli;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import dev.panorm.cli.Main.UsageException;
import dev.panorm.io.Npy;
import dev.panorm.pipeline.Pipeline;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/** {@code panorm normalize}: a {@code .npy} file through a LayerNorm, a chunk of rows at a time. */
@Command(
        name = "normalize",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        separator = " ",
        sortOptions = false,
        description = {
            "Layer-normalizes a float32 (<f4) or float16 (<f2) .npy array (C order) over its last K axes, like "
                    + "torch.nn.LayerNorm(IN.shape[-K:], eps), and writes OUT.npy of the same shape.",
            "IN is read a chunk of rows at a time (never memory-mapped), so it may be larger than memory, and a file"
                    + " rewritten while it is read is an error, not a crash; a progress bar shows on a terminal."
        })
final class NormalizeCommand implements Callable<Integer> {
    /** Each chunk of IN is held in memory (and its output pages until written): bound it. */
    static final long MAX_CHUNK_BYTES = 64L << 20;

    @ParentCommand
    private Main main;

    @Parameters(index = "0", paramLabel = "IN.npy", description = "the array to normalize")
    private Path in;

    @Parameters(
            index = "1",
            paramLabel = "OUT.npy",
            description = "where the result goes (through a symbolic link"
                    + " to its target); an existing file is replaced and keeps its mode")
    private Path out;

    @Option(
            names = "--gamma",
            paramLabel = "G.npy",
            description = "scale (PyTorch's weight), of the normalized axes'" + " shape; default: none (1)")
    private Path gamma;

    @Option(names = "--beta", paramLabel = "B.npy", description = "shift (PyTorch's bias); default: none (0)")
    private Path beta;

    @Option(
            names = "--eps",
            paramLabel = "E",
            converter = Options.Eps.class,
            description = "added to the variance; default 1e-5, or 2^-23 with --rms")
    private Double eps;

    @Option(
            names = "--backend",
            paramLabel = "auto|onednn|java|java-scalar",
            converter = Options.BackendName.class,
            defaultValue = "auto",
            description = "default: auto, the fastest per call")
    private Backend backend;

    @Option(
            names = "--stats",
            arity = "2",
            paramLabel = "MEAN.npy VAR.npy",
            hideParamSyntax = true,
            description = "also write each row's mean and biased variance (float32, IN's shape without its last K"
                    + " axes); with --rms the mean is 0 and the variance is the mean square")
    private List<Path> stats;

    @Option(
            names = "--axes",
            paramLabel = "K",
            converter = Options.Positive.class,
            defaultValue = "1",
            description = "how many trailing axes to normalize over; default 1")
    private long axes;

    @Option(names = "--rms", description = "RMS normalization, like torch.nn.RMSNorm")
    private boolean rms;

    @Option(names = "--precise", description = "oneDNN gets statistics computed in double (see docs/accuracy.md)")
    private boolean precise;

    @Option(
            names = "--out-dtype",
            paramLabel = "f32|f16|bf16",
            converter = Options.OutType.class,
            defaultValue = "f32",
            description = "OUT's type; bf16 is written as raw bit patterns ('<u2', NumPy has no bfloat16):"
                    + " (a.astype(np.uint32) << 16).view(np.float32) widens it")
    private DataType outType;

    @Option(
            names = "--chunk-rows",
            paramLabel = "N",
            converter = Options.Positive.class,
            description = "rows per chunk; default about 1 MiB of IN. Each chunk is held in memory, so a chunk may be"
                    + " at most 64 MiB")
    private Long chunkRows;

    @Override
    public Integer call() throws IOException {
        if (stats != null && stats.size() != 2) {
            throw new UsageException("--stats is given twice");
        }
        Path meanPath = stats == null ? null : stats.get(0);
        Path variancePath = stats == null ? null : stats.get(1);
        if (axes > 64) {
            throw new UsageException("--axes must be at most 64, got " + axes);
        }
        int k = (int) axes;
        Options.checkDistinct(Arrays.asList(in, gamma, beta), Arrays.asList(out, meanPath, variancePath));
        try (Arena arena = Arena.ofConfined();
                Npy.Reader x = Options.open(in, "IN", k)) {
            long[] shape = x.shape();
            long[] normalizedShape = Arrays.copyOfRange(shape, shape.length - k, shape.length);
            Tensor scale = gamma == null ? null : Options.parameter(gamma, "--gamma", normalizedShape, arena);
            Tensor shift = beta == null ? null : Options.parameter(beta, "--beta", normalizedShape, arena);
            LayerNormConfig config = (rms ? LayerNormConfig.rms(normalizedShape) : LayerNormConfig.of(normalizedShape))
                    .withScale(scale != null)
                    .withShift(shift != null)
                    .withPreciseStatistics(precise);
            config = eps == null ? config : config.withEps(eps);
            long rowBytes = config.normalizedSize() * x.dataType().byteSize();
            long rows = Arrays.stream(shape).reduce(1, Math::multiplyExact) / config.normalizedSize();
            long perChunk = chunkRows(rowBytes, rows);
            long[] rowShape = Arrays.copyOf(shape, shape.length - k);
            try (LayerNorm norm = LayerNorm.create(config, backend);
                    Npy.Output output = Npy.Output.create(out, shape, outType, arena);
                    Npy.Output mean = stats == null ? null : Npy.Output.create(meanPath, rowShape, arena);
                    Npy.Output variance = stats == null ? null : Npy.Output.create(variancePath, rowShape, arena)) {
                long start = System.nanoTime();
                String implementation = implementation(norm, x, output.tensor(), perChunk, scale, shift);
                Pipeline pipeline = Pipeline.of(norm)
                        .parameters(scale, shift)
                        .chunkRows(perChunk)
                        .progress(ProgressBar.onTerminal(main.err));
                // RMS normalization has no mean: the file keeps the zeros it normalizes with.
                Pipeline.Summary done = stats == null
                        ? pipeline.run(x, output.tensor())
                        : pipeline.runTraining(x, output.tensor(), rms ? null : mean.tensor(), variance.tensor());
                output.commit();
                if (stats != null) {
                    mean.commit();
                    variance.commit();
                }
                long nanos = System.nanoTime() - start;
                main.out.printf(
                        Locale.ROOT,
                        "normalized %s of %d with %s (%s) in %s, %d bytes read and written, %s -> %s%s%n",
                        Options.rows(done.rows()),
                        config.normalizedSize(),
                        Options.name(backend),
                        implementation,
                        Options.duration(nanos),
                        done.bytes(),
                        Options.rate(done.bytes(), nanos),
                        out,
                        stats == null ? "" : ", " + meanPath + ", " + variancePath);
            }
        }
        return Main.OK;
    }

    /** Rows per chunk: as asked, or about 1 MiB, never more than the file has; asking for over 64 MiB is an error. */
    private long chunkRows(long rowBytes, long rows) {
        if (chunkRows != null && chunkRows > Math.max(1, MAX_CHUNK_BYTES / rowBytes)) {
            throw new UsageException(String.format(
                    Locale.ROOT,
                    "--chunk-rows %d makes chunks of %.1f MiB of %s; at most"
                            + " 64 MiB (%d rows here) are allowed, since each chunk is held in memory",
                    chunkRows,
                    chunkRows * (double) rowBytes / (1 << 20),
                    in,
                    Math.max(1, MAX_CHUNK_BYTES / rowBytes)));
        }
        long perChunk = chunkRows != null ? chunkRows : Math.max(1, Pipeline.DEFAULT_CHUNK_BYTES / rowBytes);
        return Math.max(1, Math.min(perChunk, rows));
    }

    /** What computes the first chunk (and so, as chunks share a shape, nearly every one). */
    private static String implementation(
            LayerNorm norm, Npy.Reader x, Tensor output, long perChunk, Tensor scale, Tensor shift) {
        int k = norm.config().normalizedAxes();
        Iterator<Tensor> chunks = x.chunks(k, perChunk).iterator();
        if (!chunks.hasNext()) {
            return "none (no rows)";
        }
        Tensor first = chunks.next();
        return norm.implementation(first, output.rows(k, 0, first.dim(0)), scale, shift);
    }
}
