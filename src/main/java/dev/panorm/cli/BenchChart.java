package dev.panorm.cli;

import dev.panorm.internal.io.ReplacedFile;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import javax.imageio.ImageIO;
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
 * dependency, on the command line's class path), written as {@code .npy} outputs are ({@link ReplacedFile}).
 */
final class BenchChart {
    private BenchChart() {}

    /** Writes {@code results} as an SVG or PNG chart, as {@link ReplacedFile} writes. */
    static void write(List<Bench.Result> results, List<long[]> shapes, Path file, boolean svg) throws IOException {
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
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        if (svg) {
            VectorGraphicsEncoder.saveVectorGraphic(chart, bytes, VectorGraphicsEncoder.VectorGraphicsFormat.SVG);
        } else {
            // In memory: ImageIO's default disk cache in java.io.tmpdir failed under a file-size limit or a missing
            // tmpdir with "I/O error writing PNG file!" or "Can't create cache file!", naming neither file nor cause.
            ImageIO.setUseCache(false);
            try {
                bytes.write(BitmapEncoder.getBitmapBytes(chart, BitmapEncoder.BitmapFormat.PNG));
            } catch (IOException e) {
                throw new IOException("cannot write " + file + ": encoding the PNG failed: " + e.getMessage(), e);
            }
        }
        ReplacedFile.write(file, bytes.toByteArray());
    }
}
