package dev.panorm.cli;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import dev.panorm.cli.Main.UsageException;
import dev.panorm.internal.io.MappedPages;
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
    /** {@code torch.finfo(torch.float16).eps}: RMS normalization's default eps for float16 input, as PyTorch's. */
    static final double FLOAT16_EPSILON = 0x1p-10;

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
            description = "added to the variance; default 1e-5, or with --rms torch.finfo(IN's dtype).eps, as"
                    + " torch.nn.RMSNorm takes it: 2^-23 for float32, 2^-10 for float16")
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
                    + " axes); with --rms the mean is 0 and the variance is the mean square. Not with --out-dtype i8;"
                    + " with --residual, only with --out-sum (they describe the sum)")
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
            paramLabel = "f32|f16|bf16|i8",
            converter = Options.OutType.class,
            defaultValue = "f32",
            description = "OUT's type, f32 unless given (float16 IN too); bf16 is written as raw bit patterns"
                    + " ('<u2', NumPy has no bfloat16):"
                    + " (a.astype(np.uint32) << 16).view(np.float32) widens it; i8 is symmetric int8 ('|i1'), with"
                    + " --out-scales or --scale")
    private DataType outType;

    @Option(
            names = "--residual",
            paramLabel = "R.npy",
            description = "add R (IN's shape and type) to IN before normalizing, in the same pass: s = IN + R")
    private Path residual;

    @Option(
            names = "--out-sum",
            paramLabel = "S.npy",
            description = "with --residual, also write s = IN + R (IN's shape and type), the next residual; OUT is"
                    + " then the norm of s as written (for float16 IN, the sum rounded to float16, as an add"
                    + " followed by the norm gives), without it the norm of the float32 sum")
    private Path sumPath;

    @Option(
            names = "--out-scales",
            paramLabel = "SCALES.npy",
            description = "with --out-dtype i8: quantize each row with its own scale max|y|/127, written as float32 of"
                    + " IN's shape without its last K axes; y = OUT * SCALES.reshape(SCALES.shape + (1,) * K)")
    private Path scalesPath;

    @Option(
            names = "--scale",
            paramLabel = "S",
            converter = Options.QuantizationScale.class,
            description =
                    "with --out-dtype i8: quantize every row with this one scale (finite, above 2^-128); y = OUT * S")
    private Float staticScale;

    @Option(
            names = "--chunk-rows",
            paramLabel = "N",
            converter = Options.Positive.class,
            description = "rows per chunk; default about 1 MiB of IN. Each chunk is held in memory, so a chunk may be"
                    + " at most 64 MiB, or one row where a row is larger")
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
        boolean quantized = outType == DataType.S8;
        if (quantized && (scalesPath == null) == (staticScale == null)) {
            throw new UsageException(
                    scalesPath != null
                            ? "--out-dtype i8 takes --out-scales SCALES.npy (a scale per row) or --scale S (one scale), not both"
                            : "--out-dtype i8 needs either --out-scales SCALES.npy (a scale per row) or --scale S (one scale)");
        }
        if (!quantized && (scalesPath != null || staticScale != null)) {
            throw new UsageException((scalesPath != null ? "--out-scales" : "--scale") + " needs --out-dtype i8");
        }
        if (sumPath != null && residual == null) {
            throw new UsageException("--out-sum needs --residual");
        }
        if (stats != null && (quantized || residual != null && sumPath == null)) {
            throw new UsageException(
                    quantized
                            ? "--stats is not available with --out-dtype i8"
                            : "--stats with --residual needs --out-sum (the statistics describe s)");
        }
        Options.checkDistinct(
                Arrays.asList(in, gamma, beta, residual),
                Arrays.asList(out, meanPath, variancePath, sumPath, scalesPath));
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
            if (eps != null) {
                config = config.withEps(eps);
            } else if (rms && x.dataType() == DataType.F16) {
                config = config.withEps(FLOAT16_EPSILON); // torch.nn.RMSNorm's default for float16 input
            }
            long rowBytes = config.normalizedSize() * x.dataType().byteSize();
            long rows = Arrays.stream(shape).reduce(1, Math::multiplyExact) / config.normalizedSize();
            long perChunk = chunkRows(rowBytes, rows);
            long[] rowShape = Arrays.copyOf(shape, shape.length - k);
            if (residual != null || quantized) {
                fused(config, x, scale, shift, perChunk, arena);
                return Main.OK;
            }
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

    /**
     * The residual add and int8 output: IN and R read in lockstep, a chunk of rows at a time, through
     * {@link LayerNorm#forwardResidual} or {@link LayerNorm#forwardQuantized}, on this thread.
     */
    private void fused(LayerNormConfig config, Npy.Reader x, Tensor scale, Tensor shift, long perChunk, Arena arena)
            throws IOException {
        int k = config.normalizedAxes();
        long[] shape = x.shape();
        try (Npy.Reader r = residual == null ? null : Options.open(residual, "--residual", k)) {
            // Before any output is made: a wrong R must not be reported as a full disk for the outputs.
            if (r != null && (!Arrays.equals(r.shape(), shape) || r.dataType() != x.dataType())) {
                throw new IllegalArgumentException("--residual " + residual + " is " + Options.name(r.dataType())
                        + Arrays.toString(r.shape()) + " but must have IN's shape and type, "
                        + Options.name(x.dataType()) + Arrays.toString(shape));
            }
            fused(config, x, r, scale, shift, perChunk, arena);
        }
    }

    /** The fused pass itself, with R open (null: none) and checked. */
    private void fused(
            LayerNormConfig config, Npy.Reader x, Npy.Reader r, Tensor scale, Tensor shift, long perChunk, Arena arena)
            throws IOException {
        int k = config.normalizedAxes();
        long[] shape = x.shape();
        long[] rowShape = Arrays.copyOf(shape, shape.length - k);
        boolean quantized = outType == DataType.S8;
        try (LayerNorm norm = LayerNorm.create(config, backend);
                Npy.Output output = Npy.Output.create(out, shape, outType, arena);
                Npy.Output sum = sumPath == null ? null : Npy.Output.create(sumPath, shape, x.dataType(), arena);
                Npy.Output scales = scalesPath == null ? null : Npy.Output.create(scalesPath, rowShape, arena);
                // RMS normalization has no mean: the file keeps the zeros it is created with, as in call().
                Npy.Output mean = stats == null ? null : Npy.Output.create(stats.get(0), rowShape, arena);
                Npy.Output variance = stats == null ? null : Npy.Output.create(stats.get(1), rowShape, arena)) {
            long start = System.nanoTime();
            Iterator<Tensor> xs = x.chunks(k, perChunk).iterator();
            Iterator<Tensor> rs = r == null ? null : r.chunks(k, perChunk).iterator();
            Pipeline.Progress progress = ProgressBar.onTerminal(main.err);
            long rows = Arrays.stream(rowShape).reduce(1, Math::multiplyExact);
            long row = 0;
            while (xs.hasNext()) {
                Tensor chunk = xs.next();
                Tensor rChunk = rs == null ? null : rs.next();
                long n = chunk.dim(0);
                Tensor y = output.tensor().rows(k, row, n);
                Tensor s = sum == null ? null : sum.tensor().rows(k, row, n);
                if (quantized) {
                    Tensor rowScales = scales == null ? null : perRow(scales.tensor(), row, n);
                    if (rowScales != null) {
                        norm.forwardQuantized(chunk, rChunk, null, s, y, scale, shift, rowScales);
                    } else {
                        norm.forwardQuantized(chunk, rChunk, null, s, y, scale, shift, staticScale);
                    }
                } else if (stats != null) {
                    norm.forwardResidualTraining(
                            chunk,
                            rChunk,
                            null,
                            s,
                            y,
                            scale,
                            shift,
                            config.rms() ? null : perRow(mean.tensor(), row, n),
                            perRow(variance.tensor(), row, n));
                } else {
                    norm.forwardResidual(chunk, rChunk, null, s, y, scale, shift);
                }
                MappedPages.release(y); // as Pipeline does: the resident set stays one chunk's, not the outputs'
                MappedPages.release(s);
                row += n;
                if (progress != null) {
                    progress.update(row, rows, System.nanoTime() - start);
                }
            }
            for (Npy.Output written : new Npy.Output[] {output, sum, scales, mean, variance}) {
                if (written != null) {
                    written.commit();
                }
            }
            long nanos = System.nanoTime() - start;
            main.out.printf(
                    Locale.ROOT,
                    "normalized %s of %d with %s (%s%s) in %s -> %s%s%s%s%n",
                    Options.rows(row),
                    config.normalizedSize(),
                    Options.name(backend),
                    residual != null ? "residual add fused" : "",
                    quantized ? (residual != null ? ", " : "") + "int8 output" : "",
                    Options.duration(nanos),
                    out,
                    sumPath == null ? "" : ", " + sumPath,
                    scalesPath == null ? "" : ", " + scalesPath,
                    stats == null ? "" : ", " + stats.get(0) + ", " + stats.get(1));
        }
    }

    /** Rows {@code [first, first + n)} of a per-row float32 output, as the 1-D tensor a chunk's call takes. */
    private static Tensor perRow(Tensor values, long first, long n) {
        return Tensor.of(values.segment().asSlice(first * Float.BYTES, n * Float.BYTES), DataType.F32, n);
    }

    /**
     * Rows per chunk: as asked, or about 1 MiB, never more than the file has. Asking for chunks over 64 MiB (of the
     * file's rows, not of rows it does not have) is an error; a row larger than that is a chunk all the same.
     */
    private long chunkRows(long rowBytes, long rows) {
        long perChunk =
                Math.max(1, Math.min(chunkRows != null ? chunkRows : Pipeline.DEFAULT_CHUNK_BYTES / rowBytes, rows));
        long maxRows = Math.max(1, MAX_CHUNK_BYTES / rowBytes);
        if (perChunk > maxRows) {
            throw new UsageException(String.format(
                    Locale.ROOT,
                    "--chunk-rows %d makes chunks of %.1f MiB of %s; at most"
                            + " 64 MiB (%d rows here) are allowed, since each chunk is held in memory",
                    chunkRows,
                    perChunk * (double) rowBytes / (1 << 20),
                    in,
                    maxRows));
        }
        return perChunk;
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
