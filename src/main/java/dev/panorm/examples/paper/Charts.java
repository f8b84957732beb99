package dev.panorm.examples.paper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * The curves as PNG charts, as the paper's Figure 6 draws them: per network and batch size, training loss
 * and test error against the epoch, one line per method, the mean over seeds with the standard deviation as
 * error bars. XChart is an optional dependency of panorm that the command line's class path has. (Colors are
 * XChart's defaults: choosing them would take java.awt types, which the library otherwise never needs.)
 */
final class Charts {
    private Charts() {}

    /**
     * Where the test error axis ends (percent): the first epochs' errors of 10 to 25% would otherwise squeeze
     * the converged region, where the methods differ, into a few pixels.
     */
    private static final int ERROR_AXIS_MAX = 10;

    /** Writes {@code <network>-b<batch>-loss.png} and {@code -error.png} per group batch; returns the files. */
    static List<Path> write(List<Report.Group> groups, Path dir) throws IOException {
        List<Path> files = new ArrayList<>();
        for (Report.Group first : groups) {
            List<Report.Group> panel = groups.stream()
                    .filter(g -> g.network() == first.network() && g.batch() == first.batch())
                    .toList();
            if (panel.getFirst() != first) {
                continue; // drawn with the first group of its panel
            }
            String name = first.network().name().toLowerCase(Locale.ROOT) + "-b" + first.batch();
            String title = (first.network() == Training.Network.MLP ? "MLP" : "GRU") + ", batch size " + first.batch();
            files.add(chart(
                    panel,
                    dir.resolve(name + "-loss.png"),
                    title + ": training loss",
                    "training loss (log scale)",
                    Training.Result::trainLoss,
                    1,
                    true));
            files.add(chart(
                    panel,
                    dir.resolve(name + "-error.png"),
                    title + ": test error",
                    "test error % (cut at " + ERROR_AXIS_MAX + ")",
                    Training.Result::testError,
                    100,
                    false));
        }
        return files;
    }

    private static Path chart(
            List<Report.Group> panel,
            Path file,
            String title,
            String yTitle,
            Function<Training.Result, double[]> curve,
            double scale,
            boolean log)
            throws IOException {
        XYChart chart = new XYChartBuilder()
                .width(560)
                .height(360)
                .title(title)
                .xAxisTitle("epoch")
                .yAxisTitle(yTitle)
                .build();
        chart.getStyler().setYAxisLogarithmic(log);
        if (!log) {
            chart.getStyler().setYAxisMin(0.0);
            chart.getStyler().setYAxisMax((double) ERROR_AXIS_MAX);
        }
        chart.getStyler().setLegendPosition(Styler.LegendPosition.OutsideS);
        chart.getStyler().setLegendLayout(Styler.LegendLayout.Horizontal);
        chart.getStyler().setMarkerSize(5);
        // Layer norm first, then none, then batch norm: XChart colors series by their order, so each method keeps
        // its color in every chart.
        List<Report.Group> ordered = panel.stream()
                .sorted(java.util.Comparator.comparingInt(g -> switch (g.method()) {
                    case LAYER -> 0;
                    case NONE -> 1;
                    case BATCH -> 2;
                }))
                .toList();
        for (Report.Group g : ordered) {
            int epochs = g.epochs();
            double[] x = new double[epochs];
            double[] mean = new double[epochs];
            double[] sd = new double[epochs];
            for (int e = 0; e < epochs; e++) {
                Stats s = g.at(e, curve);
                x[e] = e + 1;
                mean[e] = scale * s.mean();
                sd[e] = scale * s.sd();
            }
            // Error bars on a log axis must stay above zero.
            chart.addSeries(g.method().label, x, mean, log ? null : sd).setMarker(SeriesMarkers.CIRCLE);
        }
        Path temporary = file.resolveSibling(file.getFileName() + ".tmp");
        Files.write(temporary, BitmapEncoder.getBitmapBytes(chart, BitmapEncoder.BitmapFormat.PNG));
        return Files.move(temporary, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }
}
