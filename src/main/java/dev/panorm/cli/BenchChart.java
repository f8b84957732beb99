package dev.panorm.cli;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Locale;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.VectorGraphicsEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.lines.SeriesLines;

/**
 * The chart of {@code panorm bench --chart}: throughput against tensor size, one line per backend,
 * with the plain copy of the same bytes drawn dashed as the memory roof. Drawn by XChart (an optional
 * dependency, on the command line's class path), written to a temporary file and renamed into place.
 */
final class BenchChart {
    private BenchChart() {}

    /** Writes {@code results} as a PNG or SVG chart, by {@code file}'s extension. */
    static void write(List<Bench.Result> results, List<long[]> shapes, Path file) throws IOException {
        String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
        boolean svg = name.endsWith(".svg");
        if (!svg && !name.endsWith(".png")) {
            throw new Main.UsageException("--chart writes .png or .svg, got " + file);
        }
        XYChart chart = new XYChartBuilder()
                .width(960)
                .height(600)
                .title("panorm forward float32: throughput against tensor size")
                .xAxisTitle("bytes read and written per call (MiB, log scale)")
                .yAxisTitle("GB/s")
                .build();
        chart.getStyler().setXAxisLogarithmic(true);
        chart.getStyler().setLegendPosition(Styler.LegendPosition.InsideNE);
        chart.getStyler().setMarkerSize(6);
        for (String backend :
                results.stream().map(Bench.Result::candidate).distinct().toList()) {
            List<Bench.Result> series =
                    results.stream().filter(r -> r.candidate().equals(backend)).toList();
            double[] x = new double[series.size()];
            double[] y = new double[series.size()];
            for (int i = 0; i < series.size(); i++) {
                long[] shape = shapes.get(i);
                x[i] = 2.0 * shape[0] * shape[1] * Float.BYTES / (1 << 20);
                y[i] = series.get(i).gigabytesPerSecond();
            }
            XYSeries line = chart.addSeries(backend.equals("copy-1t") ? "copy, 1 thread (roof)" : backend, x, y);
            if (backend.equals("copy-1t")) {
                line.setLineStyle(SeriesLines.DASH_DASH);
            }
        }
        // Created like any new file (not 0600 like createTempFile's), next to the target so the rename is atomic.
        Path temporary = file.toAbsolutePath()
                .resolveSibling(".panorm-chart-" + ProcessHandle.current().pid() + "-" + System.nanoTime() + ".tmp");
        try {
            try (OutputStream out =
                    Files.newOutputStream(temporary, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                if (svg) {
                    VectorGraphicsEncoder.saveVectorGraphic(chart, out, VectorGraphicsEncoder.VectorGraphicsFormat.SVG);
                } else {
                    out.write(BitmapEncoder.getBitmapBytes(chart, BitmapEncoder.BitmapFormat.PNG));
                }
            }
            Files.move(temporary, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(temporary);
        }
    }
}
