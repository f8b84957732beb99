package dev.panorm.examples.paper;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panorm.Backend;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole study on a small synthetic data set (no download): it trains every configuration, writes its
 * report, curves and charts, and a layer-normalized model gives bit-identical outputs alone and in a batch,
 * in training and in test mode, on every fixed backend.
 */
class PaperExampleTest {
    @TempDir
    Path out;

    private static PaperExample.Options options(String... args) {
        return PaperExample.Options.parse(args);
    }

    @Test
    void theStudyRunsOnSyntheticDataAndWritesItsResults() throws IOException {
        PaperExample.Options options = options(
                "--synthetic",
                "300",
                "--train",
                "200",
                "--seeds",
                "2",
                "--mlp-epochs",
                "3",
                "--gru-epochs",
                "2",
                "--mlp-hidden",
                "16",
                "--gru-hidden",
                "8",
                "--mlp-batches",
                "50,4",
                "--gru-batches",
                "1,8",
                "--threads",
                "2",
                "--no-profile",
                "--out",
                out.toString());
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        PaperExample.Outcome outcome = PaperExample.run(
                options,
                new PrintStream(stdout, true, StandardCharsets.UTF_8),
                new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8));

        assertEquals(
                2 * 3 * 2 + 2 * 2 * 2,
                outcome.results().size()); // MLP: 2 batches x 3 methods x 2 seeds; GRU: 2 x 2 x 2
        for (Training.Result r : outcome.results()) {
            assertTrue(
                    r.trainLoss()[r.trainLoss().length - 1] < r.trainLoss()[0]
                            || r.spec().method() == Training.Method.NONE,
                    () -> r.spec().label() + " did not learn: " + java.util.Arrays.toString(r.trainLoss()));
        }
        String report = Files.readString(outcome.report());
        assertTrue(
                report.contains("## Claim 1") && report.contains("## Claim 2") && report.contains("## Claim 3"),
                report);
        assertEquals(report, stdout.toString(StandardCharsets.UTF_8));
        List<String> csv = Files.readAllLines(out.resolve("curves.csv"));
        assertEquals(1 + 12 * 3 + 8 * 2, csv.size());
        for (String chart : List.of("mlp-b50", "mlp-b4", "gru-b1", "gru-b8")) {
            for (String metric : List.of("-loss.png", "-error.png")) {
                assertTrue(Files.size(out.resolve(chart + metric)) > 1000, chart + metric);
            }
        }

        // Claim 3 on every backend but AUTO, which may pick different kernels for 1 row and for the whole set.
        assertEquals(2 * Backend.values().length, outcome.layerNormChecks().size());
        for (Consistency.LayerNormCheck c : outcome.layerNormChecks()) {
            if (c.backend() != Backend.AUTO) {
                assertEquals(0, c.differingAlone(), c.toString());
            }
            assertEquals(0, c.differingTraining(), c.toString());
        }
        assertEquals(2, outcome.batchNormChecks().size());
    }

    @Test
    void theProfileTimesEveryBackend() {
        Digits train = Digits.synthetic(40, 3);
        Training.Shape shape = new Training.Shape(8, 6, 1e-3, 3e-3);
        List<Profile.Row> rows = Profile.run(shape, train, 1, 3e-3, 2, seconds -> {});
        assertEquals(1 + Backend.values().length, rows.size());
        assertEquals(0, rows.getFirst().timer().totalCalls());
        // Per sequence: the two input projections and two calls per time step (8), forward and backward.
        assertEquals(
                40 * 2 * (2 + 2 * 8),
                rows.get(1).timer().totalCalls() / rows.get(1).epochs());

        ByteArrayOutputStream lines = new ByteArrayOutputStream();
        Profile.coldStart(Backend.JAVA, shape, train, 1, 3e-3, 2, new PrintStream(lines, true, StandardCharsets.UTF_8));
        List<String> epochs = lines.toString(StandardCharsets.UTF_8).lines().toList();
        assertEquals(2, epochs.size());
        assertTrue(epochs.get(1).matches("cold-start epoch 2 [0-9.]+ [0-9.]+ 1440"), epochs.get(1));
    }

    @Test
    void theColdStartProfileRunsAChildJvmPerBackend() {
        Training.Shape shape = new Training.Shape(8, 6, 1e-3, 3e-3);
        List<Profile.Cold> rows =
                Profile.coldStarts(shape, List.of("--synthetic", "60"), 40, 1, 3e-3, 1, 1, seconds -> {});
        assertEquals(1 + Backend.values().length, rows.size());
        assertEquals(0, rows.getFirst().callsPerEpoch());
        for (Profile.Cold row : rows.subList(1, rows.size())) {
            assertEquals(40 * 2 * (2 + 2 * 8), row.callsPerEpoch(), String.valueOf(row.backend()));
            assertTrue(
                    row.panormSeconds()[0] > 0 && row.panormSeconds()[0] < row.seconds()[0],
                    String.valueOf(row.backend()));
        }
    }

    @Test
    void anOutputFolderThatCannotBeMadeFailsBeforeTraining() throws IOException {
        Path file = Files.createFile(out.resolve("file"));
        IOException e = assertThrows(
                IOException.class,
                () -> PaperExample.run(
                        options("--synthetic", "300", "--train", "200", "--no-profile", "--out", file + "/report"),
                        new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8),
                        new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8)));
        // Checked before training: after it, the message was only the folder's name.
        assertEquals("cannot make the folder " + file + "/report: Not a directory", e.getMessage());
    }

    @Test
    void badCommandLinesAreUsageErrors() {
        assertThrows(PaperExample.Usage.class, () -> options());
        assertThrows(PaperExample.Usage.class, () -> options("--synthetic", "10", "--data", "x"));
        assertThrows(PaperExample.Usage.class, () -> options("--synthetic", "-1"));
        assertThrows(PaperExample.Usage.class, () -> options("--synthetic", "10", "--mlp-batches", "128,1"));
        assertThrows(PaperExample.Usage.class, () -> options("--synthetic", "10", "--backend", "GPU"));
        assertThrows(PaperExample.Usage.class, () -> options("--synthetic", "10", "--seeds"));
        assertThrows(PaperExample.Usage.class, () -> options("--synthetic", "10", "--only", "cnn"));
        assertThrows(PaperExample.Usage.class, () -> options("--synthetic", "10", "--frobnicate", "1"));
        assertEquals(
                "unknown option --frobnicate",
                assertThrows(PaperExample.Usage.class, () -> options("--synthetic", "10", "--frobnicate"))
                        .getMessage());
        assertThrows(PaperExample.Usage.class, () -> options("--synthetic", "10", "--mlp-lr", "Infinity"));
        assertThrows(PaperExample.Usage.class, () -> options("--synthetic", "10", "--gru-lr", "NaN"));
    }

    @Test
    void aSyntheticSetIsSplitAsTheDigitsAre() {
        assertEquals(1280, options("--data", "digits.csv.gz").train());
        assertEquals(1280, options("--synthetic", "1797").train());
        assertEquals(45, options("--synthetic", "64").train());
        assertEquals(30, options("--synthetic", "64", "--train", "30").train());
    }

    @Test
    void digitsAreReadFromScikitLearnsFormat(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("digits.csv.gz");
        StringBuilder csv = new StringBuilder();
        for (int n = 0; n < 3; n++) {
            for (int i = 0; i < 64; i++) {
                csv.append(i % 17).append(',');
            }
            csv.append(n + 4).append('\n');
        }
        try (var gz = new java.util.zip.GZIPOutputStream(Files.newOutputStream(file))) {
            gz.write(csv.toString().getBytes(StandardCharsets.US_ASCII));
        }
        Digits digits = Digits.read(file);
        assertEquals(3, digits.size());
        assertEquals(6, digits.labels()[2]);
        assertEquals(16 / 16f, digits.image(1)[16]);
        assertEquals(64, Digits.sha256(file).length());

        Files.write(file, new byte[] {31, -117, 8, 0}); // a truncated gzip header
        assertThrows(IOException.class, () -> Digits.read(file));
    }
}
