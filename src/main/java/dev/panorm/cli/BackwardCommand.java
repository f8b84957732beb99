package dev.panorm.cli;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import dev.panorm.cli.Main.UsageException;
import dev.panorm.io.Npy;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/** {@code panorm backward}: the gradients of a layer norm of X for a given dLoss/dOutput. */
@Command(
        name = "backward",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        separator = " ",
        sortOptions = false,
        description = {
            "Gradients of a layer norm of X (over its last axis) given DY = dLoss/dOutput: recomputes the statistics"
                    + " from X and writes dLoss/dX, and with --out-dgamma / --out-dbeta the scale and shift gradients"
                    + " summed over all rows.",
            "X and DY are read into memory whole (the sums run over every row)."
        })
final class BackwardCommand implements Callable<Integer> {
    @ParentCommand
    private Main main;

    @Parameters(index = "0", paramLabel = "X.npy", description = "the layer norm's input, float32 or float16")
    private Path xPath;

    @Parameters(index = "1", paramLabel = "DY.npy", description = "dLoss/dOutput, float32, X's shape")
    private Path dyPath;

    @Parameters(index = "2", paramLabel = "OUT_DX.npy", description = "where dLoss/dX goes")
    private Path dxPath;

    @Option(names = "--gamma", paramLabel = "G.npy", description = "the scale the forward pass used; default: none")
    private Path gammaPath;

    @Option(names = "--out-dgamma", paramLabel = "DG.npy", description = "also write dLoss/dgamma (needs --gamma)")
    private Path dGammaPath;

    @Option(names = "--out-dbeta", paramLabel = "DB.npy", description = "also write dLoss/dbeta")
    private Path dBetaPath;

    @Option(
            names = "--eps",
            paramLabel = "E",
            converter = Options.Eps.class,
            defaultValue = "1e-5",
            description = "added to the variance; default 1e-5")
    private double eps;

    @Option(
            names = "--backend",
            paramLabel = "auto|onednn|java|java-scalar",
            converter = Options.BackendName.class,
            defaultValue = "auto",
            description = "default: auto")
    private Backend backend;

    @Override
    public Integer call() throws IOException {
        if (dGammaPath != null && gammaPath == null) {
            throw new UsageException("--out-dgamma needs --gamma: without a scale there is no scale gradient");
        }
        Options.checkDistinct(Arrays.asList(xPath, dyPath, gammaPath), Arrays.asList(dxPath, dGammaPath, dBetaPath));
        try (Arena arena = Arena.ofConfined();
                Npy.Reader xFile = Options.open(xPath, "X", 1);
                Npy.Reader dyFile = Npy.Reader.open(dyPath)) {
            if (dyFile.dataType() != DataType.F32) {
                throw new IllegalArgumentException(
                        "DY " + dyPath + " holds float16 ('<f2'); float32 ('<f4') is needed here");
            }
            if (!Arrays.equals(dyFile.shape(), xFile.shape())) {
                throw new IllegalArgumentException("DY " + dyPath + " has shape " + Arrays.toString(dyFile.shape())
                        + " but must have the shape of X, " + Arrays.toString(xFile.shape()));
            }
            Tensor x = xFile.read(arena);
            Tensor dy = dyFile.read(arena);
            long c = x.dim(-1);
            Tensor gamma = gammaPath == null ? null : Options.parameter(gammaPath, "--gamma", new long[] {c}, arena);
            // The shift does not change any gradient; it is configured only when its gradient is asked for.
            boolean shift = dBetaPath != null;
            LayerNormConfig config =
                    LayerNormConfig.of(c).withEps(eps).withScale(gamma != null).withShift(shift);
            long[] rowShape = Arrays.copyOf(x.shape(), x.rank() - 1);
            Tensor beta = shift ? Tensor.allocate(arena, DataType.F32, c) : null;
            Tensor mean = Tensor.allocate(arena, DataType.F32, rowShape);
            Tensor variance = Tensor.allocate(arena, DataType.F32, rowShape);
            boolean full = gamma != null && dGammaPath != null || shift;
            try (LayerNorm norm = LayerNorm.create(config, backend);
                    Npy.Output dx = Npy.Output.create(dxPath, x.shape(), arena);
                    Npy.Output dGamma =
                            dGammaPath == null ? null : Npy.Output.create(dGammaPath, new long[] {c}, arena);
                    Npy.Output dBeta = dBetaPath == null ? null : Npy.Output.create(dBetaPath, new long[] {c}, arena)) {
                long start = System.nanoTime();
                // The statistics come from a forward-training pass; its output is not needed, so dx holds it briefly.
                norm.forwardTraining(x, dx.tensor(), gamma, beta, mean, variance);
                if (full) {
                    Tensor diffScale = gamma == null
                            ? null
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
                main.out.printf(
                        Locale.ROOT,
                        "backward over %s of %d with %s in %s -> %s%s%s%n",
                        Options.rows(x.elementCount() / c),
                        c,
                        Options.name(backend),
                        Options.duration(nanos),
                        dxPath,
                        dGammaPath == null ? "" : ", " + dGammaPath,
                        dBetaPath == null ? "" : ", " + dBetaPath);
            }
        }
        return Main.OK;
    }
}
