package dev.panorm.cli;

import dev.panorm.cli.Main.UsageException;
import dev.panorm.internal.io.ReplacedFile;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;

/** {@code panorm bench}: a short version of docs/benchmarks.md. */
@Command(
        name = "bench",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        separator = " ",
        sortOptions = false,
        description = "Times forward float32 on each backend (oneDNN on 1 and all threads, the vector and scalar Java"
                + " kernels, AUTO) and a plain copy of the same bytes, per shape; prints a table, or JSON.")
final class BenchCommand implements Callable<Integer> {
    @ParentCommand
    private Main main;

    @Option(
            names = "--shapes",
            paramLabel = "ROWSxC,...",
            defaultValue = Bench.DEFAULT_SHAPES,
            description = "default: " + Bench.DEFAULT_SHAPES)
    private String shapes;

    @Option(
            names = "--seconds",
            paramLabel = "S",
            defaultValue = "0.3",
            description = "seconds of warm-up and of timing, each, per shape and backend; in (0, 60], default 0.3")
    private double seconds;

    @Option(names = "--json", description = "JSON instead of a table")
    private boolean json;

    @Option(
            names = "--chart",
            paramLabel = "FILE.png|FILE.svg",
            description = "also draw GB/s against size per backend, with the copy as the roof (needs XChart,"
                    + " which scripts/panorm's class path has)")
    private Path chart;

    @Override
    public Integer call() throws IOException {
        List<long[]> parsed = Bench.parseShapes(shapes);
        if (!(seconds > 0 && seconds <= 60)) {
            throw new UsageException("--seconds takes a number of seconds in (0, 60], got " + seconds);
        }
        boolean svg = chart != null && checkChart(chart);
        List<Bench.Result> results = Bench.run(parsed, seconds);
        if (json) { // first: a chart that cannot be written must not lose the measurements
            Bench.printJson(results, main.out);
        } else {
            Bench.printTable(results, main.out);
        }
        if (chart != null) {
            try {
                BenchChart.write(results, parsed, chart, svg);
            } catch (NoClassDefFoundError e) {
                throw new UsageException("--chart needs XChart (org.knowm.xchart:xchart) on the class or module path;"
                        + " scripts/panorm has it: " + e.getMessage());
            }
        }
        return Main.OK;
    }

    /**
     * Refuses a chart file that cannot be written before any time is spent measuring (here, not in {@link
     * BenchChart}, which needs XChart to load).
     *
     * @return whether it is an SVG file (else PNG)
     * @throws IOException if it exists and is not a regular file, or its folder refuses new files
     */
    private static boolean checkChart(Path file) throws IOException {
        String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
        if (!name.endsWith(".png") && !name.endsWith(".svg")) {
            throw new UsageException("--chart writes .png or .svg, got " + file);
        }
        Path folder = ReplacedFile.destination(file).getParent();
        if (!Files.isDirectory(folder)) {
            throw new UsageException("--chart: no such folder " + folder);
        }
        ReplacedFile.create(file).close(); // a temporary file made and removed: a directory, or a folder refusing files
        return name.endsWith(".svg");
    }
}
