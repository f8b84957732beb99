package dev.panorm.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panorm.Tensor;
import dev.panorm.internal.cache.AutoProfile;
import dev.panorm.io.Npy;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class MainTest {
    @TempDir
    Path temp;

    private record Run(int exit, String out, String err) {}

    private static Run run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int exit = Main.run(
                args,
                new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Run(exit, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    private Path save(String name, float[] values, long... shape) throws IOException {
        Path file = temp.resolve(name);
        try (Arena arena = Arena.ofConfined()) {
            Npy.write(file, Tensor.ofFloats(arena, values, shape));
        }
        return file;
    }

    private static float[] load(Path file) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            return Npy.mapFloat32(file, arena).toFloatArray();
        }
    }

    private static float[] random(int n, long seed, double mean) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) (mean + random.nextDouble(-3, 3));
        }
        return values;
    }

    private static double mean(float[] x, int base, int c) {
        double sum = 0;
        for (int i = 0; i < c; i++) {
            sum += x[base + i];
        }
        return sum / c;
    }

    /** The biased variance of the row at {@code base}, in two passes. */
    private static double variance(float[] x, int base, int c, double mean) {
        double sum = 0;
        for (int i = 0; i < c; i++) {
            sum += (x[base + i] - mean) * (x[base + i] - mean);
        }
        return sum / c;
    }

    /**
     * Layer normalization in double, row by row: the oracle, written again here to keep the CLI test self-contained.
     */
    private static double[] expected(float[] x, int c, float[] gamma, float[] beta, double eps) {
        double[] y = new double[x.length];
        for (int base = 0; base < x.length; base += c) {
            double mean = mean(x, base, c);
            double rstd = 1 / Math.sqrt(variance(x, base, c, mean) + eps);
            for (int i = 0; i < c; i++) {
                y[base + i] =
                        (x[base + i] - mean) * rstd * (gamma == null ? 1 : gamma[i]) + (beta == null ? 0 : beta[i]);
            }
        }
        return y;
    }

    @ParameterizedTest
    @ValueSource(strings = {"auto", "onednn", "java", "java-scalar"})
    void normalizeMatchesTheDefinition(String backend) throws IOException {
        int c = 100;
        float[] x = random(2 * 5 * c, 1, 3);
        float[] gamma = random(c, 2, 1);
        float[] beta = random(c, 3, 0);
        Path in = save("x.npy", x, 2, 5, c);
        Path out = temp.resolve("y.npy");
        // Chunks of 3 rows: the last one is short, and chunks cross the first axis.
        Run run = run(
                "normalize",
                in.toString(),
                out.toString(),
                "--gamma",
                save("g.npy", gamma, c).toString(),
                "--beta",
                save("b.npy", beta, c).toString(),
                "--eps",
                "1e-3",
                "--backend",
                backend,
                "--chunk-rows",
                "3");
        assertEquals(0, run.exit(), run.err());
        assertTrue(run.out().startsWith("normalized 10 rows of 100 with " + backend), run.out());
        assertTrue(run.out().contains(", 8000 bytes read and written, "), run.out());
        double[] want = expected(x, c, gamma, beta, 1e-3);
        float[] got = load(out);
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i], got[i], 1e-5, "element " + i);
        }
        try (Arena arena = Arena.ofConfined()) {
            assertEquals(3, Npy.mapFloat32(out, arena).rank(), "the output keeps the input's shape");
        }
    }

    /** dLoss/dx, dgamma, dbeta of a layer norm in double: the oracle for the CLI's backward. */
    private static double[][] expectedBackward(float[] x, float[] dy, int c, float[] gamma, double eps) {
        double[] dx = new double[x.length];
        double[] dgamma = new double[c];
        double[] dbeta = new double[c];
        for (int base = 0; base < x.length; base += c) {
            double mean = mean(x, base, c);
            double rstd = 1 / Math.sqrt(variance(x, base, c, mean) + eps);
            double meanG = 0;
            double meanGXhat = 0;
            for (int i = 0; i < c; i++) {
                double xhat = (x[base + i] - mean) * rstd;
                double g = dy[base + i] * (gamma == null ? 1 : gamma[i]);
                meanG += g / c;
                meanGXhat += g * xhat / c;
                dgamma[i] += dy[base + i] * xhat;
                dbeta[i] += dy[base + i];
            }
            for (int i = 0; i < c; i++) {
                double xhat = (x[base + i] - mean) * rstd;
                double g = dy[base + i] * (gamma == null ? 1 : gamma[i]);
                dx[base + i] = rstd * (g - meanG - xhat * meanGXhat);
            }
        }
        return new double[][] {dx, dgamma, dbeta};
    }

    @ParameterizedTest
    @ValueSource(strings = {"auto", "onednn", "java", "java-scalar"})
    void normalizeWritesStatisticsOnRequest(String backend) throws IOException {
        int c = 50;
        float[] x = random(4 * 3 * c, 5, 2);
        Path mean = temp.resolve("mean.npy");
        Path variance = temp.resolve("var.npy");
        Run run = run(
                "normalize",
                save("x.npy", x, 4, 3, c).toString(),
                temp.resolve("y.npy").toString(),
                "--stats",
                mean.toString(),
                variance.toString(),
                "--backend",
                backend,
                "--chunk-rows",
                "5"); // 12 rows: 5, 5, 2
        assertEquals(0, run.exit(), run.err());
        float[] means = load(mean);
        float[] variances = load(variance);
        try (Arena arena = Arena.ofConfined()) {
            assertEquals(
                    List.of(4L, 3L),
                    Arrays.stream(Npy.mapFloat32(mean, arena).shape()).boxed().toList());
        }
        for (int r = 0; r < 12; r++) {
            double m = 0;
            for (int i = 0; i < c; i++) {
                m += x[r * c + i];
            }
            m /= c;
            double v = 0;
            for (int i = 0; i < c; i++) {
                v += (x[r * c + i] - m) * (x[r * c + i] - m) / c;
            }
            assertEquals(m, means[r], 1e-5);
            assertEquals(v, variances[r], 1e-5);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"auto", "onednn", "java", "java-scalar"})
    void backwardMatchesTheDefinition(String backend) throws IOException {
        int c = 64;
        float[] x = random(6 * c, 7, 1);
        float[] dy = random(6 * c, 8, 0);
        float[] gamma = random(c, 9, 1);
        Path dx = temp.resolve("dx.npy");
        Path dgamma = temp.resolve("dgamma.npy");
        Path dbeta = temp.resolve("dbeta.npy");
        Run run = run(
                "backward",
                save("x.npy", x, 6, c).toString(),
                save("dy.npy", dy, 6, c).toString(),
                dx.toString(),
                "--gamma",
                save("g.npy", gamma, c).toString(),
                "--out-dgamma",
                dgamma.toString(),
                "--out-dbeta",
                dbeta.toString(),
                "--eps",
                "1e-4",
                "--backend",
                backend);
        assertEquals(0, run.exit(), run.err());
        double[][] want = expectedBackward(x, dy, c, gamma, 1e-4);
        float[][] got = {load(dx), load(dgamma), load(dbeta)};
        for (int k = 0; k < 3; k++) {
            for (int i = 0; i < want[k].length; i++) {
                assertEquals(want[k][i], got[k][i], 2e-5 * (1 + Math.abs(want[k][i])), "output " + k + " element " + i);
            }
        }
        // Input gradient only: no scale gradient asked for, so the cheaper data-only pass runs.
        Path dxOnly = temp.resolve("dx-only.npy");
        assertEquals(
                0,
                run(
                                "backward",
                                temp.resolve("x.npy").toString(),
                                temp.resolve("dy.npy").toString(),
                                dxOnly.toString(),
                                "--gamma",
                                temp.resolve("g.npy").toString(),
                                "--backend",
                                backend)
                        .exit());
        float[] onlyDx = load(dxOnly);
        for (int i = 0; i < onlyDx.length; i++) {
            assertEquals(expectedBackward(x, dy, c, gamma, 1e-5)[0][i], onlyDx[i], 2e-5, "dx " + i);
        }
    }

    /** Row-wise layer (or RMS) normalization in double over rows of c, for the CLI's variants. */
    private static double[] expected(float[] x, int c, float[] gamma, boolean rms, double eps) {
        double[] y = new double[x.length];
        for (int base = 0; base < x.length; base += c) {
            double mean = 0;
            double square = 0;
            for (int i = 0; i < c; i++) {
                mean += x[base + i];
                square += (double) x[base + i] * x[base + i];
            }
            mean = rms ? 0 : mean / c;
            double variance = 0;
            for (int i = 0; i < c; i++) {
                variance += (x[base + i] - mean) * (x[base + i] - mean) / c;
            }
            double rstd = 1 / Math.sqrt(variance + eps);
            for (int i = 0; i < c; i++) {
                y[base + i] = (x[base + i] - mean) * rstd * (gamma == null ? 1 : gamma[i]);
            }
        }
        return y;
    }

    private Path saveHalf(String name, float[] values, long... shape) throws IOException {
        Path file = temp.resolve(name);
        try (Arena arena = Arena.ofConfined()) {
            Tensor half = Tensor.allocate(arena, dev.panorm.DataType.F16, shape);
            for (int i = 0; i < values.length; i++) {
                half.segment().setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, Float.floatToFloat16(values[i]));
            }
            Npy.write(file, half);
        }
        return file;
    }

    @Test
    void rmsOnFloat16TakesPyTorchsEpsForFloat16() throws IOException {
        // torch.nn.RMSNorm(C) on a float16 tensor adds torch.finfo(torch.float16).eps = 2^-10; on rows this small
        // (mean square about 3e-4) float32's 2^-23 gives visibly other results.
        int c = 16;
        float[] x = new float[2 * c];
        SplittableRandom random = new SplittableRandom(16);
        for (int i = 0; i < x.length; i++) {
            x[i] = Float.float16ToFloat(Float.floatToFloat16((float) random.nextDouble(-0.03, 0.03)));
        }
        Path out = temp.resolve("y.npy");
        Run run = run("normalize", saveHalf("x16.npy", x, 2, c).toString(), out.toString(), "--rms");
        assertEquals(0, run.exit(), run.err());
        double[] want = expected(x, c, null, true, 0x1p-10);
        double[] float32Eps = expected(x, c, null, true, 0x1p-23);
        float[] got = load(out);
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i], got[i], 1e-5 + 1e-6 * Math.abs(want[i]), "element " + i);
            assertTrue(Math.abs(float32Eps[i] - want[i]) > 1e-3 || Math.abs(want[i]) < 0.05, "eps must matter here");
        }
    }

    @Test
    void normalizeReadsFloat16AndWritesEveryType() throws IOException {
        int c = 40;
        float[] x = random(3 * c, 11, 1);
        float[] halfX = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            halfX[i] = Float.float16ToFloat(Float.floatToFloat16(x[i]));
        }
        String in = saveHalf("x16.npy", x, 3, c).toString();
        double[] want = expected(halfX, c, null, false, 1e-5);
        for (String type : new String[] {"f32", "f16", "bf16"}) {
            Path out = temp.resolve("y-" + type + ".npy");
            Run run = run("normalize", in, out.toString(), "--out-dtype", type);
            assertEquals(0, run.exit(), run.err());
            float[] got;
            try (Arena arena = Arena.ofConfined()) {
                Tensor y = Npy.map(out, arena);
                got = new float[want.length];
                for (int i = 0; i < got.length; i++) {
                    short bits = y.segment().getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i);
                    got[i] = switch (type) {
                        case "f32" -> y.segment().getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i);
                        case "f16" -> Float.float16ToFloat(bits);
                        default -> Float.intBitsToFloat((bits & 0xffff) << 16);
                    };
                }
            } catch (dev.panorm.io.NpyFormatException e) {
                // bf16 is written as uint16 bit patterns, which panorm does not read back as data.
                assertEquals("bf16", type, e.getMessage());
                assertEquals("<u2", Npy.readHeader(out).descr());
                byte[] bytes = Files.readAllBytes(out);
                int offset = bytes.length - 2 * want.length;
                got = new float[want.length];
                for (int i = 0; i < got.length; i++) {
                    int bits = (bytes[offset + 2 * i] & 0xff) | (bytes[offset + 2 * i + 1] & 0xff) << 8;
                    got[i] = Float.intBitsToFloat(bits << 16);
                }
            }
            double roundoff = switch (type) {
                case "f32" -> 0x1p-24;
                case "f16" -> 0x1p-11;
                default -> 0x1p-8;
            };
            for (int i = 0; i < want.length; i++) {
                assertEquals(want[i], got[i], 1e-5 + roundoff * Math.abs(want[i]), type + " element " + i);
            }
        }
    }

    @Test
    void normalizeRmsOverSeveralAxesWithStatistics() throws IOException {
        float[] x = random(2 * 3 * 4 * 5, 12, 0.5);
        float[] gamma = random(20, 13, 1);
        Path out = temp.resolve("y.npy");
        Path mean = temp.resolve("mean.npy");
        Path variance = temp.resolve("var.npy");
        Run run = run(
                "normalize",
                save("x.npy", x, 2, 3, 4, 5).toString(),
                out.toString(),
                "--rms",
                "--axes",
                "2",
                "--gamma",
                save("g.npy", gamma, 4, 5).toString(),
                "--stats",
                mean.toString(),
                variance.toString());
        assertEquals(0, run.exit(), run.err());
        double[] want = expected(x, 20, gamma, true, 0x1p-23);
        float[] got = load(out);
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i], got[i], 1e-5, "element " + i);
        }
        assertEquals(6, load(mean).length);
        for (float m : load(mean)) {
            assertEquals(0f, m, "RMS normalization's mean is 0");
        }
        float[] squares = load(variance);
        for (int r = 0; r < 6; r++) {
            double square = 0;
            for (int i = 0; i < 20; i++) {
                square += (double) x[r * 20 + i] * x[r * 20 + i] / 20;
            }
            assertEquals(square, squares[r], 1e-5 * square);
        }
    }

    @Test
    void normalizePreciseOnIllConditionedRows() throws IOException {
        int c = 256;
        SplittableRandom random = new SplittableRandom(14);
        float[] x = new float[4 * c];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) (1e4 + 0.01 * random.nextDouble(-1.7, 1.7));
        }
        String in = save("x.npy", x, 4, c).toString();
        double[] want = expected(x, c, null, false, 1e-5);
        Path precise = temp.resolve("precise.npy");
        assertEquals(0, run("normalize", in, precise.toString(), "--precise").exit());
        float[] got = load(precise);
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i], got[i], 1e-5, "element " + i);
        }
    }

    @Test
    void badVariantOptions() throws IOException {
        String in = save("x.npy", random(8, 1, 0), 2, 4).toString();
        String out = temp.resolve("y.npy").toString();
        assertFails(
                2,
                "invalid value for option '--axes': must be a whole number >= 1, got '0'",
                "normalize",
                in,
                out,
                "--axes",
                "0");
        assertFails(
                2,
                "invalid value for option '--chunk-rows': must be a whole number >= 1, got 'many'",
                "normalize",
                in,
                out,
                "--chunk-rows",
                "many");
        assertFails(
                2,
                "invalid value for option '--out-dtype': must be f32, f16, bf16 or i8, got 'f64'",
                "normalize",
                in,
                out,
                "--out-dtype",
                "f64");
        assertFails(1, "rank 2, fewer than the 3 axes to normalize over", "normalize", in, out, "--axes", "3");
        assertFails(
                1,
                "has shape [4] but must have shape [2, 4]",
                "normalize",
                in,
                out,
                "--axes",
                "2",
                "--gamma",
                save("g.npy", random(4, 2, 1), 4).toString());
    }

    @Test
    void badBackwardInputsWriteNothing() throws IOException {
        String x = save("x.npy", random(8, 1, 0), 2, 4).toString();
        String dy = save("dy.npy", random(12, 2, 0), 3, 4).toString();
        assertFails(
                1,
                "DY " + dy + " has shape [3, 4] but must have the shape of X, [2, 4]",
                "backward",
                x,
                dy,
                temp.resolve("dx.npy").toString());
    }

    @Test
    void normalizeWithoutAffineParametersAndOnAnEmptyBatch() throws IOException {
        Path out = temp.resolve("y.npy");
        assertEquals(
                0,
                run("normalize", save("x.npy", new float[] {1, 3}, 1, 2).toString(), out.toString())
                        .exit());
        float[] y = load(out);
        assertEquals(-1, y[0], 1e-5);
        assertEquals(1, y[1], 1e-5);

        Path empty = temp.resolve("empty-out.npy");
        Run run = run("normalize", save("empty.npy", new float[0], 0, 8).toString(), empty.toString());
        assertEquals(0, run.exit(), run.err());
        assertEquals(0, load(empty).length);
    }

    @Test
    void infoReportsTheBundledOneDnn() {
        Run run = run("info");
        assertEquals(0, run.exit(), run.err());
        assertTrue(run.out().contains("oneDNN       3.8.1"), run.out());
        assertTrue(run.out().contains("CPU ISA      "), run.out());
        // oneDNN's own implementation (a jit or ref kernel), then what AUTO runs, which may be Java's.
        assertTrue(
                run.out()
                        .matches(
                                "(?s).*forward inference -> (jit|ref|simple)[^\n]* \\(oneDNN's\\), auto: [^\n]* \\(what"
                                        + " AUTO runs\\)\n.*"),
                run.out());
        assertTrue(run.out().contains("libdnnl.so.3"), run.out());
        // The tests run with PANORM_AUTO_PROFILE=none (pom.xml), whatever the user's cache holds.
        assertTrue(run.out().contains("auto model   built-in (measured on Intel Xeon"), run.out());
    }

    @Test
    void infoListsTheImplementationForEveryDataType() {
        Run run = run("info", "--types");
        assertEquals(0, run.exit(), run.err());
        assertTrue(run.out().contains("bf16  f16   f32          "), run.out());
        assertEquals(
                27,
                run.out()
                        .lines()
                        .filter(l -> l.matches("^(f32|bf16|f16) +(f32|bf16|f16) +(f32|bf16|f16) +.*"))
                        .count());
    }

    @Test
    void demoComparesBothBackends() {
        Run run = run("demo");
        assertEquals(0, run.exit(), run.err());
        assertTrue(run.out().contains("onednn"), run.out());
        assertTrue(run.out().contains("java"), run.out());
        assertTrue(run.out().contains("java-scalar"), run.out());
        assertTrue(run.out().contains("\nagreement: the last column is each backend's largest error"), run.out());
        assertTrue(run.out().contains("\nauto's model: "), run.out()); // whose crossovers AUTO used
        // Each backend's line ends with its largest error as a share of the bound: at most 100%.
        long rows = run.out()
                .lines()
                .filter(line -> line.matches("(onednn|java|java-scalar|auto) .* ([0-9]|[1-9][0-9]|100)%"))
                .count();
        assertEquals(4, rows, run.out());
    }

    @Test
    void benchPrintsATableAndJson() {
        Run table = run("bench", "--shapes", "2x64,1x100", "--seconds", "0.01");
        assertEquals(0, table.exit(), table.err());
        assertTrue(
                table.out().contains("2x64")
                        && table.out().contains("1x100")
                        && table.out().contains("auto")
                        && table.out().contains("copy-1t")
                        && table.out().contains("java-scalar"),
                table.out());
        Run json = run("bench", "--shapes", "2x64", "--seconds", "0.01", "--json");
        assertEquals(0, json.exit(), json.err());
        assertTrue(
                json.out().strip().startsWith("[")
                        && json.out().strip().endsWith("]")
                        && json.out().contains("\"shape\": \"2x64\"")
                        && json.out().contains("\"backend\": \"auto\""),
                json.out());
    }

    @Test
    void benchDrawsAChartAsPngOrSvg() throws IOException {
        Path png = temp.resolve("chart.png");
        Path svg = temp.resolve("chart.svg");
        assertEquals(
                0,
                run("bench", "--shapes", "2x64,4x64", "--seconds", "0.01", "--chart", png.toString())
                        .exit());
        assertEquals(
                0,
                run("bench", "--shapes", "2x64,4x64", "--seconds", "0.01", "--chart", svg.toString())
                        .exit());
        byte[] header = Arrays.copyOf(Files.readAllBytes(png), 4);
        assertArrayEquals(new byte[] {(byte) 0x89, 'P', 'N', 'G'}, header);
        String text = Files.readString(svg);
        assertTrue(
                text.contains("<svg") && text.contains("<path") && text.strip().endsWith("</svg>"),
                text.substring(0, Math.min(200, text.length())));
        try (Stream<Path> files = Files.list(temp)) {
            assertEquals(2, files.count(), "no temporary file left behind");
        }
    }

    @Test
    void tuneWritesThisMachinesProfile() throws IOException {
        Assumptions.assumeTrue(dev.panorm.OneDnn.isAvailable());
        Path folder = temp.resolve("profiles");
        Run run = run(
                "tune",
                "--seconds",
                "0.05",
                "--widths",
                "16,32," + AutoProfile.WIDE_ROWS, // the wide one: single rows
                "--max-elements",
                "64",
                "--dir",
                folder.toString());
        assertEquals(0, run.exit(), run.err());
        AutoProfile.Key here = AutoProfile.Key.thisMachine();
        Path file = AutoProfile.fileFor(folder, here);
        try (Stream<Path> files = Files.list(folder)) {
            assertEquals(List.of(file), files.toList(), "one profile, no temporary file");
        }
        AutoProfile profile = AutoProfile.read(file);
        assertEquals(here, profile.key());
        // Every kind of every type is in the profile, or named as one that oneDNN cannot run on this CPU (float16 on
        // AMD's Zen 5, where oneDNN has only reference code for it); float32 always in the profile.
        List<String> measured = new ArrayList<>();
        for (String type : List.of("f32", "bf16", "f16")) {
            for (String kind : List.of("forward", "forward_global", "backward", "backward_data")) {
                String name = type + "." + kind;
                boolean javaOnly = run.out()
                        .lines()
                        .anyMatch(line ->
                                line.matches(name + " +oneDNN has only reference code .*AUTO runs them in Java"));
                assertFalse(javaOnly && type.equals("f32"), run.out());
                if (!javaOnly) {
                    measured.add(name);
                }
            }
        }
        assertEquals(measured, List.copyOf(profile.javaUpTo().keySet()), run.out());
        List<Long> sizes = List.of(16L, 32L, 64L, AutoProfile.WIDE_ROWS);
        for (long crossover : profile.javaUpTo().values()) { // 0 or one of the sizes measured, whichever was faster
            assertTrue(crossover == 0 || sizes.contains(crossover), profile.toString());
        }
        profile.javaFrom()
                .forEach((kind, from) -> assertTrue( // second crossovers, where Java won again: sizes too
                        sizes.contains(from) && from > profile.javaUpTo().get(kind), profile.toString()));
        assertEquals(profile.javaUpTo().keySet(), profile.oneDnnThreadsFrom().keySet());
        for (long threadsFrom : profile.oneDnnThreadsFrom().values()) { // a size measured, or one thread always
            assertTrue(threadsFrom == Long.MAX_VALUE || sizes.contains(threadsFrom), profile.toString());
        }
        // The sweep had wide rows, so every kind has a crossover for them.
        assertEquals(profile.javaUpTo().keySet(), profile.wideRowsJavaUpTo().keySet());
        for (long crossover : profile.wideRowsJavaUpTo().values()) {
            assertTrue(crossover == 0 || sizes.contains(crossover), profile.toString());
        }
        assertTrue(run.out().contains("profile  " + file), run.out());
        assertTrue(run.out().contains("machine  " + here), run.out());
    }

    /** Points on rows 1, 2, 4, ... of 64 with these Java and oneDNN times. */
    private static List<TuneCommand.Point> points(double[] java, double[] oneDnn) {
        List<TuneCommand.Point> points = new ArrayList<>();
        for (int i = 0; i < java.length; i++) {
            points.add(new TuneCommand.Point("inference", "forward", 1L << i, 64, java[i], oneDnn[i], oneDnn[i]));
        }
        return points;
    }

    /** The first crossover the sweep's points give, with no second one. */
    private static long crossover(double[] java, double[] oneDnn) {
        TuneCommand.Crossovers found = TuneCommand.crossovers(points(java, oneDnn));
        assertEquals(TuneCommand.Crossovers.NEVER, found.javaFrom(), found.toString());
        return found.javaUpTo();
    }

    @Test
    void tuneTakesTheCrossoverThatCostsAutoTheLeast() {
        double[] oneDnn = {10, 10, 10, 10, 10};
        assertEquals(4 * 64, crossover(new double[] {1, 2, 4, 16, 32}, oneDnn));
        assertEquals(0, crossover(new double[] {11, 12, 14, 16, 32}, oneDnn));
        assertEquals(16 * 64, crossover(new double[] {1, 2, 4, 8, 9}, oneDnn));
        // One point a little the other way does not move the crossover: a whole kind's cost decides.
        assertEquals(4 * 64, crossover(new double[] {1, 10.5, 4, 16, 32}, oneDnn));
        // A single row runs in Java whenever the crossover is not 0, as AUTO routes it...
        assertEquals(4 * 64, crossover(new double[] {10.1, 2, 4, 16, 32}, oneDnn));
        // ... of any length, except in a half-precision forward call (as AutoModel routes them).
        for (String kind : List.of(
                "forward", "f32.forward", "bf16.backward", "f16.backward_data", "bf16.forward", "f16.forward")) {
            TuneCommand.Point longRow = new TuneCommand.Point("inference", kind, 1, 4096, 20, 10, 10);
            boolean java = !kind.endsWith("16.forward");
            TuneCommand.Crossovers crossovers =
                    new TuneCommand.Crossovers(256, TuneCommand.Crossovers.NEVER, TuneCommand.Crossovers.NEVER);
            assertEquals(java ? 2.0 : 1.0, TuneCommand.slowdowns(List.of(longRow), crossovers)[0], kind);
        }
    }

    @Test
    void tuneGivesWideRowsTheirOwnCrossoverWhereThatCostsAutoLess() {
        // Rows of 64: Java faster up to 4 rows. Rows of 2048: up to 8 (256 and 16,384 elements).
        double[] oneDnn = {10, 10, 10, 10, 10, 10};
        List<TuneCommand.Point> points = new ArrayList<>(points(new double[] {1, 2, 4, 16, 32, 64}, oneDnn));
        long wide = AutoProfile.WIDE_ROWS;
        double[] wideJava = {1, 2, 4, 8, 16, 32};
        for (int i = 0; i < wideJava.length; i++) {
            points.add(new TuneCommand.Point("inference", "forward", 1L << i, wide, wideJava[i], 10, 10));
        }
        TuneCommand.Crossovers found = TuneCommand.crossovers(points);
        assertEquals(
                new TuneCommand.Crossovers(
                        4 * 64, TuneCommand.Crossovers.NEVER, TuneCommand.Crossovers.NEVER, 8 * wide),
                found);
        assertArrayEquals(
                new double[points.size()],
                Arrays.stream(TuneCommand.slowdowns(points, found))
                        .map(ratio -> ratio - 1)
                        .toArray());
        // Wide rows like the others, Java faster on a single row only: one crossover (a tie with 2048, which routes
        // them alike, keeps the same one for both).
        points.subList(6, 12).clear();
        for (int i = 0; i < 6; i++) {
            points.add(new TuneCommand.Point("inference", "forward", 1L << i, wide, i == 0 ? 1 : 20, 10, 10));
        }
        found = TuneCommand.crossovers(points);
        assertEquals(found.javaUpTo(), 4 * 64);
        assertEquals(found.javaUpTo(), found.wideRowsJavaUpTo(), found.toString());
        // Rows of 2047 and 2048, both in Java up to 4 rows: one crossover for both classes, not 8188 and 8192.
        List<TuneCommand.Point> aside = new ArrayList<>();
        for (long c : new long[] {wide - 1, wide}) {
            for (int i = 0; i < 4; i++) {
                aside.add(new TuneCommand.Point("inference", "forward", 1L << i, c, i < 3 ? 1 : 20, 10, 10));
            }
        }
        found = TuneCommand.crossovers(aside);
        assertEquals(4 * wide, found.javaUpTo(), found.toString());
        assertEquals(4 * wide, found.wideRowsJavaUpTo(), found.toString());
        // A sweep of wide rows only says nothing about narrow ones: they take the wide rows' crossover, not 0.
        List<TuneCommand.Point> wideOnly = new ArrayList<>();
        for (int i = 0; i < wideJava.length; i++) {
            wideOnly.add(new TuneCommand.Point("inference", "forward", 1L << i, wide, wideJava[i], 10, 10));
        }
        assertEquals(
                new TuneCommand.Crossovers(8 * wide, TuneCommand.Crossovers.NEVER, TuneCommand.Crossovers.NEVER),
                TuneCommand.crossovers(wideOnly));
    }

    @Test
    void tuneFindsWhereJavaOvertakesOneDnnAgain() {
        // Java faster on small calls and again on the largest two (its split on all cores beats oneDNN's there).
        double[] oneDnn = {10, 10, 10, 10, 10, 10};
        TuneCommand.Crossovers found = TuneCommand.crossovers(points(new double[] {1, 2, 14, 16, 9, 8}, oneDnn));
        assertEquals(new TuneCommand.Crossovers(2 * 64, 16 * 64, TuneCommand.Crossovers.NEVER), found);
        assertArrayEquals(
                new double[] {1, 1, 1, 1, 1, 1},
                TuneCommand.slowdowns(points(new double[] {1, 2, 14, 16, 9, 8}, oneDnn), found));
        // Java faster only at the top: no first crossover, single rows on oneDNN too.
        assertEquals(
                new TuneCommand.Crossovers(0, 16 * 64, TuneCommand.Crossovers.NEVER),
                TuneCommand.crossovers(points(new double[] {11, 12, 14, 16, 9, 8}, oneDnn)));
    }

    /** Points on rows 1, 2, 4, ... of 64, Java slower than oneDNN throughout, with these oneDNN times. */
    private static List<TuneCommand.Point> threadPoints(String kind, double[] oneThread, double[] allThreads) {
        List<TuneCommand.Point> points = new ArrayList<>();
        for (int i = 0; i < oneThread.length; i++) {
            points.add(new TuneCommand.Point("inference", kind, 1L << i, 64, 100, oneThread[i], allThreads[i]));
        }
        return points;
    }

    @Test
    void tuneFindsWhereOneDnnsSecondThreadPaysOff() {
        double[] oneThread = {1, 2, 4, 8, 16, 32};
        double[] allThreads = {3, 3.5, 4.5, 6, 10, 18}; // faster from 8 rows of 64 on
        List<TuneCommand.Point> points = threadPoints("f32.backward", oneThread, allThreads);
        assertEquals(8 * 64, TuneCommand.oneDnnThreadsFrom(points));
        TuneCommand.Crossovers found = TuneCommand.crossovers(points);
        assertEquals(new TuneCommand.Crossovers(0, TuneCommand.Crossovers.NEVER, 8 * 64), found);
        assertArrayEquals(new double[] {1, 1, 1, 1, 1, 1}, TuneCommand.slowdowns(points, found));
        // One thread at every size; all cores at every size, but for a forward call's single row (one thread there).
        assertEquals(
                TuneCommand.Crossovers.NEVER,
                TuneCommand.oneDnnThreadsFrom(
                        threadPoints("f32.backward", oneThread, new double[] {9, 9, 9, 9, 99, 99})));
        double[] slow = {1, 9, 9, 9, 9, 9};
        double[] fast = {0.5, 2, 2, 2, 2, 2};
        assertEquals(64, TuneCommand.oneDnnThreadsFrom(threadPoints("f32.backward", slow, fast)));
        assertEquals(2 * 64, TuneCommand.oneDnnThreadsFrom(threadPoints("f32.forward", slow, fast)));
        // Equal times everywhere: one thread, which costs the machine less.
        assertEquals(
                TuneCommand.Crossovers.NEVER,
                TuneCommand.oneDnnThreadsFrom(threadPoints("f32.forward", oneThread, oneThread)));
    }

    @Test
    void tuneRejectsBadOptions() throws IOException {
        Run seconds = run("tune", "--seconds", "0");
        assertEquals(2, seconds.exit());
        assertTrue(seconds.err().contains("--seconds"), seconds.err());
        Run widths = run("tune", "--widths", "768,x");
        assertEquals(2, widths.exit());
        assertTrue(widths.err().contains("--widths takes C"), widths.err());
        Run elements = run("tune", "--max-elements", "0");
        assertEquals(2, elements.exit());
        assertTrue(elements.err().contains("--max-elements"), elements.err());
        Run types = run("tune", "--types", "f32,i8");
        assertEquals(2, types.exit());
        assertTrue(types.err().contains("--types takes T"), types.err());
        // Empty items are refused, not dropped: "--types ," would write a profile of nothing. So are repeated ones.
        for (String[] empty : List.of(
                new String[] {"--types", ","}, new String[] {"--widths", "8,,"}, new String[] {"--widths", "768,768"
                })) {
            Run run = run("tune", empty[0], empty[1], "--dir", temp + "/"); // a folder may end with a slash
            assertEquals(2, run.exit(), run.err());
            assertTrue(run.err().contains(empty[0] + " takes"), run.err());
        }
        Run file =
                run("tune", "--dir", Files.writeString(temp.resolve("file"), "").toString());
        assertEquals(2, file.exit());
        assertTrue(file.err().contains("--dir " + temp.resolve("file") + " is not a directory"), file.err());
        try (Stream<Path> files = Files.list(temp)) {
            assertEquals(List.of(temp.resolve("file")), files.toList(), "no profile written");
        }
    }

    @Test
    void benchRejectsBadOptions() {
        Run shapes = run("bench", "--shapes", "2x", "--seconds", "0.01");
        assertEquals(2, shapes.exit());
        assertTrue(shapes.err().contains("--shapes takes ROWSxC"), shapes.err());
        Run seconds = run("bench", "--seconds", "-1");
        assertEquals(2, seconds.exit());
        assertTrue(seconds.err().contains("--seconds"), seconds.err());
        for (String bad : List.of(",", "2x64,", "4294967296x4294967296", "2x64x")) {
            Run run = run("bench", "--shapes", bad, "--seconds", "0.01");
            assertEquals(2, run.exit(), bad + ": " + run.err());
            assertTrue(run.err().contains("--shapes takes ROWSxC"), run.err());
        }
    }

    @Test
    void benchRefusesABadChartBeforeMeasuring() throws Exception {
        // Refused at once: with a long --seconds, a check after the measurements would take minutes.
        Run jpeg = run(
                "bench",
                "--shapes",
                "2x64",
                "--seconds",
                "60",
                "--chart",
                temp.resolve("c.jpg").toString());
        assertEquals(2, jpeg.exit());
        assertTrue(jpeg.err().contains("--chart writes .png or .svg"), jpeg.err());
        Path fifo = temp.resolve("pipe.png");
        assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor());
        Run pipe = run("bench", "--shapes", "2x64", "--seconds", "60", "--chart", fifo.toString());
        assertEquals(1, pipe.exit());
        assertTrue(pipe.err().contains("cannot write " + fifo + ": it is a FIFO"), pipe.err());
        assertTrue(Files.readAttributes(fifo, BasicFileAttributes.class).isOther(), "the FIFO is still there");
        Path folder = Files.createDirectory(temp.resolve("folder.png"));
        Run directory = run("bench", "--shapes", "2x64", "--seconds", "60", "--chart", folder.toString());
        assertEquals(1, directory.exit());
        assertTrue(directory.err().contains("cannot write " + folder + ": it is a directory"), directory.err());
        assertEquals("", directory.out(), "nothing measured");
    }

    /** Runs a failing command; asserts the exit status, the message, and that no output file or temporary appeared. */
    private void assertFails(int exit, String message, String... args) throws IOException {
        List<Path> before;
        try (Stream<Path> files = Files.list(temp)) {
            before = files.toList();
        }
        Run run = run(args);
        assertEquals(exit, run.exit(), run.err());
        assertTrue(run.err().contains(message), () -> "stderr '" + run.err() + "' should contain '" + message + "'");
        if (args.length > 0) {
            assertEquals(1, run.err().lines().count(), () -> "one line per error, got '" + run.err() + "'");
        }
        List<Path> after;
        try (Stream<Path> files = Files.list(temp)) {
            after = new ArrayList<>(files.toList());
        }
        after.removeAll(before);
        assertEquals(List.of(), after, "nothing written");
    }

    /** {@code --eps=0.5} works as {@code --eps 0.5} does, for options with a value. */
    @Test
    void anOptionsValueMayBeAttachedWithEquals() throws IOException {
        float[] x = random(2 * 4, 1, 0);
        Path in = save("x.npy", x, 2, 4);
        Path apart = temp.resolve("apart.npy");
        Path attached = temp.resolve("attached.npy");
        Run first = run(
                "normalize",
                in.toString(),
                apart.toString(),
                "--eps",
                "0.5",
                "--stats",
                temp.resolve("m.npy").toString(),
                temp.resolve("v.npy").toString());
        assertEquals(0, first.exit(), first.err());
        Run second = run(
                "normalize",
                "--eps=0.5",
                "--stats=" + temp.resolve("m2.npy"),
                temp.resolve("v2.npy").toString(),
                "--backend=java",
                in.toString(),
                attached.toString());
        assertEquals(0, second.exit(), second.err());
        assertArrayEquals(load(apart), load(attached));
        double[] want = expected(x, 4, null, null, 0.5);
        float[] got = load(attached);
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i], got[i], 1e-5, "element " + i);
        }
        assertArrayEquals(load(temp.resolve("v.npy")), load(temp.resolve("v2.npy")));
        assertFails(2, "unknown option '--rms=true'", "normalize", in.toString(), attached.toString(), "--rms=true");
    }

    @Test
    void usageErrorsExitWithTwo() throws IOException {
        String in = save("x.npy", random(8, 1, 0), 2, 4).toString();
        String out = temp.resolve("y.npy").toString();
        assertFails(2, "Usage: panorm");
        assertFails(
                2,
                "panorm: unknown command 'normalise'; did you mean normalize? (see 'panorm --help')\n",
                "normalise",
                in,
                out);
        assertFails(
                2, "panorm: missing required parameter: 'OUT.npy' (see 'panorm normalize --help')\n", "normalize", in);
        assertFails(2, "unknown option '--gama'; did you mean --gamma?", "normalize", in, out, "--gama", in);
        assertFails(
                2,
                "invalid value for option '--backend': must be auto, onednn, java or java-scalar, got 'cuda'",
                "normalize",
                in,
                out,
                "--backend",
                "cuda");
        assertFails(
                2,
                "invalid value for option '--eps': must be a number, got 'tiny'",
                "normalize",
                in,
                out,
                "--eps",
                "tiny");
        assertFails(2, "missing required parameter for option '--eps' (E)", "normalize", in, out, "--eps");
        // Every bad eps is a usage error, with a message that is true of it.
        assertFails(
                2,
                "invalid value for option '--eps': must be a positive finite number, got -1.0",
                "normalize",
                in,
                out,
                "--eps",
                "-1");
        assertFails(
                2,
                "invalid value for option '--eps': must be a positive finite number, got 0.0",
                "normalize",
                in,
                out,
                "--eps",
                "0");
        assertFails(
                2,
                "invalid value for option '--eps': must be a positive finite number, got NaN",
                "normalize",
                in,
                out,
                "--eps",
                "nan");
        assertFails(
                2,
                "invalid value for option '--eps': must lie within float32's normal range",
                "normalize",
                in,
                out,
                "--eps",
                "1e-50");
        assertFails(2, "output " + in + " is the same file as input " + in, "normalize", in, in);
        assertFails(
                2,
                "two outputs are the same file",
                "normalize",
                in,
                out,
                "--stats",
                out,
                temp.resolve("v.npy").toString());
        assertFails(
                2,
                "option '--stats' at index 0 (MEAN.npy VAR.npy) requires at least 2 values",
                "normalize",
                in,
                out,
                "--stats",
                out);
        assertFails(
                2,
                "option '--eps' (E) should be specified only once",
                "normalize",
                in,
                out,
                "--eps",
                "1",
                "--eps",
                "2");
        assertFails(
                2,
                "--stats is given twice",
                "normalize",
                in,
                out,
                "--stats",
                "a.npy",
                "b.npy",
                "--stats",
                "c.npy",
                "d.npy");
        assertFails(
                2,
                "--out-dgamma needs --gamma",
                "backward",
                in,
                in,
                out,
                "--out-dgamma",
                temp.resolve("dg.npy").toString());
        assertFails(2, "missing required parameter: 'OUT_DX.npy'", "backward", in, out);
        assertFails(2, "is a directory", "normalize", in, temp.toString());
        assertFails(2, "unexpected argument 'now'", "info", "now");
        // The limit is on the chunk held, which a file of 2 rows keeps to 2 rows; one of 2^23 rows does not.
        assertEquals(0, run("normalize", in, out, "--chunk-rows", "100000000").exit());
        String huge = sparseNpy(temp.resolve("huge.npy"), 1L << 23, 4).toString();
        assertFails(
                2,
                "--chunk-rows 100000000 makes chunks of 128.0 MiB of " + huge + "; at most 64 MiB (4194304 rows here)",
                "normalize",
                huge,
                out,
                "--chunk-rows",
                "100000000");
    }

    @Test
    void badInputsExitWithOneAndWriteNothing() throws IOException {
        String in = save("x.npy", random(8, 1, 0), 2, 4).toString();
        String out = temp.resolve("y.npy").toString();
        Path notNpy = Files.writeString(temp.resolve("notes.npy"), "hello");
        Path truncated = temp.resolve("truncated.npy");
        byte[] whole = Files.readAllBytes(Path.of(in));
        Files.write(truncated, Arrays.copyOf(whole, whole.length - 3));
        String gamma5 = save("g5.npy", random(5, 2, 1), 5).toString();
        String scalar = save("scalar.npy", new float[] {1}).toString();
        String noChannels = save("empty-rows.npy", new float[0], 3, 0).toString();

        assertFails(
                1,
                "no such file: " + temp.resolve("missing.npy"),
                "normalize",
                temp.resolve("missing.npy").toString(),
                out);
        assertFails(1, "is not a .npy file", "normalize", notNpy.toString(), out);
        assertFails(
                1,
                "is truncated: shape [2, 4] of F32 needs 32 bytes of data, the file holds 29",
                "normalize",
                truncated.toString(),
                out);
        assertFails(
                1,
                "--gamma " + gamma5 + " has shape [5] but must have shape [4]",
                "normalize",
                in,
                out,
                "--gamma",
                gamma5);
        assertFails(1, "has shape []: rank 0, fewer than the 1 axes to normalize over", "normalize", scalar, out);
        assertFails(1, "the axes to normalize over must not be empty", "normalize", noChannels, out);
        assertFalse(Files.exists(Path.of(out)));
    }

    @Test
    void aFailedRunLeavesAnExistingOutputAlone() throws IOException {
        Path out = Files.writeString(temp.resolve("y.npy"), "keep me");
        String gamma5 = save("g5.npy", random(5, 2, 1), 5).toString();
        Run run = run("normalize", save("x.npy", random(8, 1, 0), 2, 4).toString(), out.toString(), "--gamma", gamma5);
        assertEquals(1, run.exit());
        assertEquals("keep me", Files.readString(out));
    }

    @ParameterizedTest
    @ValueSource(strings = {"info", "normalize", "backward", "demo", "bench", "tune", "help"})
    void everyCommandHasHelpAndVersion(String command) {
        Run help = run(command, "--help");
        assertEquals(0, help.exit(), help.err());
        assertTrue(help.out().startsWith("Usage: panorm " + command + " [-hV]"), help.out());
        assertTrue(run("help", command).out().startsWith("Usage: panorm " + command), "panorm help " + command);
        Run version = run(command, "--version");
        assertEquals(0, version.exit(), version.err());
        assertTrue(version.out().matches("(?s)panorm \\S+ \\(bundles oneDNN 3\\.8\\.1\\)\njava .*"), version.out());
    }

    @Test
    void helpTakesOneCommandAndNothingElse() throws IOException {
        assertTrue(run("help").out().startsWith("Usage: panorm [-hV] [COMMAND]"));
        assertFails(2, "panorm: unknown command 'nosuch' (see 'panorm help --help')", "help", "nosuch");
        assertFails(2, "panorm: unknown option '--bogus' (see 'panorm help --help')", "help", "--bogus");
        assertFails(
                2, "panorm: unexpected argument 'normalize' (see 'panorm help --help')", "help", "info", "normalize");
    }

    /** Output that never arrived ({@code panorm info > /dev/full}, a closed pipe) is a failure, not a success. */
    @ParameterizedTest
    @ValueSource(strings = {"info", "--help", "--version", "normalize --help"})
    void aFailedWriteToStandardOutputIsAFailure(String args) {
        OutputStream full = new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                throw new IOException("No space left on device");
            }
        };
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int exit = Main.run(
                args.split(" "),
                new PrintStream(full, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        assertEquals(1, exit);
        assertEquals(
                "panorm: error: could not write to standard output (a full disk or a closed pipe?)\n",
                err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void helpListsTheCommandsAndOptions() {
        Run run = run("--help");
        assertEquals(0, run.exit());
        for (String command : List.of("info", "normalize", "backward", "demo", "bench", "tune", "help")) {
            assertTrue(run.out().contains("\n  " + command + " "), command + " in\n" + run.out());
        }
        String normalize = run("normalize", "--help").out();
        for (String option : List.of(
                "--gamma G.npy",
                "--beta B.npy",
                "--eps E",
                "--backend auto|onednn|java|java-scalar",
                "--stats MEAN.npy VAR.npy",
                "--axes K",
                "--rms",
                "--precise",
                "--out-dtype f32|f16|bf16",
                "--chunk-rows N")) {
            assertTrue(normalize.contains(option), option + " in\n" + normalize);
        }
        assertFalse(normalize.matches("(?s).*VAR\\.\\s*npy]\\.\\.\\..*"), "--stats is not repeatable:\n" + normalize);
    }

    @Test
    void reportsOneRowAndSmallRatesReadably() throws IOException {
        Run run = run(
                "normalize",
                save("x.npy", new float[] {1, 2, 3, 4}, 1, 4).toString(),
                temp.resolve("y.npy").toString());
        assertEquals(0, run.exit(), run.err());
        assertTrue(
                run.out()
                        .matches("normalized 1 row of 4 with auto \\(.*\\) in [0-9.]+ (s|ms|us), 32 bytes read and"
                                + " written, [1-9][0-9.]* (GB|MB|kB|B)/s -> .*\n"),
                run.out());
        Run backward = run(
                "backward",
                temp.resolve("x.npy").toString(),
                temp.resolve("y.npy").toString(),
                temp.resolve("dx.npy").toString());
        assertTrue(
                backward.out().matches("backward over 1 row of 4 with auto in [0-9.]+ (s|ms|us) -> .*\n"),
                backward.out());
    }

    @Test
    void writesThroughASymbolicLinkAndLeavesTheLink() throws IOException {
        Path in = save("x.npy", random(8, 1, 0), 2, 4);
        Path target =
                Files.writeString(Files.createDirectory(temp.resolve("data")).resolve("y.npy"), "old");
        Path link = Files.createSymbolicLink(temp.resolve("link.npy"), Path.of("data", "y.npy"));
        Files.setPosixFilePermissions(target, PosixFilePermissions.fromString("rw-r-----"));
        assertEquals(0, run("normalize", in.toString(), link.toString()).exit());
        assertTrue(Files.isSymbolicLink(link), "the link stays a link");
        assertEquals(Path.of("data", "y.npy"), Files.readSymbolicLink(link));
        assertEquals(8, load(target).length, "the target holds the result");
        assertEquals(
                "rw-r-----",
                PosixFilePermissions.toString(Files.getPosixFilePermissions(target)),
                "a replaced file keeps its mode");
        try (Stream<Path> files = Files.list(target.getParent())) {
            assertEquals(List.of(target), files.toList(), "no temporary file left");
        }
        // A dangling link: its target is created, as a shell's > would.
        Path dangling = Files.createSymbolicLink(temp.resolve("dangling.npy"), Path.of("data", "new.npy"));
        assertEquals(0, run("normalize", in.toString(), dangling.toString()).exit());
        assertEquals(8, load(temp.resolve("data").resolve("new.npy")).length);
        assertTrue(Files.isSymbolicLink(dangling));
    }

    @Test
    void neverReplacesAFileThatIsNotRegular() throws Exception {
        String in = save("x.npy", random(8, 1, 0), 2, 4).toString();
        Path fifo = temp.resolve("pipe.npy");
        assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor());
        assertFails(
                1,
                "cannot write " + fifo + ": it is a FIFO (named pipe), not a regular file",
                "normalize",
                in,
                fifo.toString());
        assertTrue(Files.readAttributes(fifo, BasicFileAttributes.class).isOther(), "the FIFO is still there");
        Run run = run("normalize", in, "/dev/null");
        assertEquals(1, run.exit());
        assertEquals(
                "panorm: error: cannot write /dev/null: it is a character device, not a regular file; panorm writes"
                        + " a new file and renames it into place, so it never replaces one that is not regular\n",
                run.err());
        assertTrue(
                Files.readAttributes(Path.of("/dev/null"), BasicFileAttributes.class)
                        .isOther(),
                "/dev/null is still a device");
        Path link = Files.createSymbolicLink(temp.resolve("null.npy"), Path.of("/dev/null"));
        assertFails(1, "cannot write " + link + ": /dev/null is a character device", "normalize", in, link.toString());
    }

    @Test
    void errorsAboutTheOutputNameItAsGivenAndTheReason() throws IOException {
        String in = save("x.npy", random(8, 1, 0), 2, 4).toString();
        String missing = temp.resolve("nodir").resolve("y.npy").toString();
        assertFails(
                1,
                "panorm: error: cannot write " + missing + ": directory " + temp.resolve("nodir") + " does not exist\n",
                "normalize",
                in,
                missing);
        assertFails(1, "cannot write " + missing + ": directory", "backward", in, in, missing);
        // /proc exists but takes no new file: not "does not exist".
        assertFails(
                1,
                "cannot write /proc/version: no new file can be made in directory /proc",
                "normalize",
                in,
                "/proc/version");
        assertFails(
                1,
                "cannot write " + missing + ": directory",
                "normalize",
                in,
                temp.resolve("y.npy").toString(),
                "--stats",
                missing,
                temp.resolve("v.npy").toString());
    }

    @Test
    void aDirectoryThatRefusesWritesIsPermissionDenied() throws IOException {
        // /sys refuses new files even to root (as root, an ordinary read-only directory would not).
        Path refusing = Path.of("/sys");
        try {
            Files.delete(Files.createFile(refusing.resolve("panorm-probe")));
            Assumptions.abort("this machine lets us create files in /sys");
        } catch (AccessDeniedException expected) {
            // what the test needs
        } catch (IOException other) {
            Assumptions.abort("/sys refuses files with " + other);
        }
        String in = save("x.npy", random(8, 1, 0), 2, 4).toString();
        assertFails(
                1,
                "panorm: error: cannot write /sys/y.npy: permission denied (directory /sys)\n",
                "normalize",
                in,
                "/sys/y.npy");
        // tune finds out before it measures for a minute, not after.
        Run tune = assertTimeoutPreemptively(
                Duration.ofSeconds(40), () -> run("tune", "--dir", "/sys", "--seconds", "60"));
        assertEquals(1, tune.exit(), tune.err());
        assertTrue(
                tune.err().startsWith("panorm: error: cannot write /sys/")
                        && tune.err().endsWith(": permission denied (directory /sys)\n"),
                tune.err());
    }

    @Test
    void outputsGetTheUmasksModeLikeAnyNewFile() throws IOException {
        // Compared with what this process's umask gives any new file; UmaskTest checks 022 and 027 in child processes.
        Path plain = Files.createFile(temp.resolve("plain"));
        Path out = temp.resolve("y.npy");
        assertEquals(
                0,
                run("normalize", save("x.npy", random(8, 1, 0), 2, 4).toString(), out.toString())
                        .exit());
        assertEquals(Files.getPosixFilePermissions(plain), Files.getPosixFilePermissions(out));
    }

    /** The header and the data of a {@code .npy} file of version 1, as bytes. */
    private static String npyHeader(byte[] file) {
        int length = (file[8] & 0xff) | (file[9] & 0xff) << 8;
        return new String(file, 10, length, StandardCharsets.US_ASCII);
    }

    private static byte[] npyData(byte[] file) {
        int length = (file[8] & 0xff) | (file[9] & 0xff) << 8;
        return Arrays.copyOfRange(file, 10 + length, file.length);
    }

    @ParameterizedTest
    @ValueSource(strings = {"auto", "onednn", "java", "java-scalar"})
    void normalizeWithResidualWritesTheSumAndTheNormOfIt(String backend) throws IOException {
        int c = 100;
        float[] x = random(7 * c, 1, 3);
        float[] r = random(7 * c, 4, -1);
        float[] gamma = random(c, 2, 1);
        float[] s = new float[x.length];
        for (int i = 0; i < s.length; i++) {
            s[i] = x[i] + r[i];
        }
        Path out = temp.resolve("y.npy");
        Path sum = temp.resolve("s.npy");
        Run run = run(
                "normalize",
                save("x.npy", x, 7, c).toString(),
                out.toString(),
                "--residual",
                save("r.npy", r, 7, c).toString(),
                "--out-sum",
                sum.toString(),
                "--gamma",
                save("g.npy", gamma, c).toString(),
                "--backend",
                backend,
                "--chunk-rows",
                "3");
        assertEquals(0, run.exit(), run.err());
        assertTrue(
                run.out().startsWith("normalized 7 rows of 100 with " + backend + " (residual add fused)"), run.out());
        assertArrayEquals(s, load(sum), 0f);
        double[] want = expected(s, c, gamma, null, 1e-5);
        float[] got = load(out);
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i], got[i], 1e-5, "element " + i);
        }
    }

    @Test
    void normalizeToInt8WithPerRowOrStaticScales() throws IOException {
        int c = 64;
        int rows = 5;
        float[] x = random(rows * c, 1, 3);
        float[] r = random(rows * c, 4, -1);
        Path in = save("x.npy", x, rows, c);
        Path q = temp.resolve("q.npy");
        Path scales = temp.resolve("scales.npy");
        Run run = run(
                "normalize",
                in.toString(),
                q.toString(),
                "--residual",
                save("r.npy", r, rows, c).toString(),
                "--out-dtype",
                "i8",
                "--out-scales",
                scales.toString(),
                "--chunk-rows",
                "2");
        assertEquals(0, run.exit(), run.err());
        byte[] file = Files.readAllBytes(q);
        assertTrue(npyHeader(file).contains("'descr': '|i1'"), npyHeader(file));
        assertTrue(npyHeader(file).contains("'shape': (5, 64)"), npyHeader(file));
        byte[] values = npyData(file);
        float[] rowScales = load(scales);
        assertEquals(rows, rowScales.length);
        float[] s = new float[x.length];
        for (int i = 0; i < s.length; i++) {
            s[i] = x[i] + r[i];
        }
        double[] want = expected(s, c, null, null, 1e-5);
        for (int row = 0; row < rows; row++) {
            double max = 0;
            for (int i = 0; i < c; i++) {
                max = Math.max(max, Math.abs(want[row * c + i]));
            }
            assertEquals(max / 127, rowScales[row], 1e-6 * max, "scale of row " + row);
            for (int i = 0; i < c; i++) {
                int at = row * c + i;
                assertEquals(want[at], values[at] * rowScales[row], 0.5 * rowScales[row] + 1e-5, "element " + at);
            }
        }
        Run fixed = run("normalize", in.toString(), q.toString(), "--out-dtype", "i8", "--scale", "0.5");
        assertEquals(0, fixed.exit(), fixed.err());
        values = npyData(Files.readAllBytes(q));
        want = expected(x, c, null, null, 1e-5);
        for (int at = 0; at < want.length; at++) {
            assertEquals(Math.rint(want[at] / 0.5), values[at], 1e-9, "element " + at);
        }
    }

    /** With --axes K a row is the last K axes: one scale per row, applied to all of them (as --help says). */
    @Test
    void int8ScalesOverSeveralAxesCoverWholeRows() throws IOException {
        int rows = 3;
        int c = 4 * 16;
        float[] x = random(rows * c, 2, 5);
        Path in = save("x3.npy", x, rows, 4, 16);
        Path q = temp.resolve("q3.npy");
        Path scales = temp.resolve("scales3.npy");
        Run run = run(
                "normalize",
                in.toString(),
                q.toString(),
                "--axes",
                "2",
                "--out-dtype",
                "i8",
                "--out-scales",
                scales.toString());
        assertEquals(0, run.exit(), run.err());
        assertTrue(npyHeader(Files.readAllBytes(scales)).contains("'shape': (3,)"));
        byte[] values = npyData(Files.readAllBytes(q));
        float[] rowScales = load(scales);
        double[] want = expected(x, c, null, null, 1e-5);
        for (int at = 0; at < want.length; at++) {
            float scale = rowScales[at / c]; // SCALES.reshape(SCALES.shape + (1, 1))
            assertEquals(want[at], values[at] * scale, 0.5 * scale + 1e-5, "element " + at);
        }
    }

    @Test
    void badResidualAndInt8Options() throws IOException {
        String in = save("x.npy", random(8, 1, 0), 2, 4).toString();
        String out = temp.resolve("y.npy").toString();
        String scales = temp.resolve("scales.npy").toString();
        assertFails(2, "--out-dtype i8 needs either --out-scales", "normalize", in, out, "--out-dtype", "i8");
        assertFails(
                2,
                "--out-dtype i8 takes --out-scales SCALES.npy (a scale per row) or --scale S (one scale), not both",
                "normalize",
                in,
                out,
                "--out-dtype",
                "i8",
                "--out-scales",
                scales,
                "--scale",
                "0.1");
        assertFails(2, "--out-scales needs --out-dtype i8", "normalize", in, out, "--out-scales", scales);
        assertFails(2, "--scale needs --out-dtype i8", "normalize", in, out, "--scale", "0.1");
        assertFails(2, "--out-sum needs --residual", "normalize", in, out, "--out-sum", scales);
        assertFails(
                2,
                "--stats is not available with --out-dtype i8",
                "normalize",
                in,
                out,
                "--out-dtype",
                "i8",
                "--scale",
                "1",
                "--stats",
                scales,
                temp.resolve("v.npy").toString());
        String wrong = save("r.npy", random(12, 2, 0), 3, 4).toString();
        assertFails(
                1,
                "--residual " + wrong + " is f32[3, 4] but must have IN's shape and type, f32[2, 4]",
                "normalize",
                in,
                out,
                "--residual",
                wrong);
        // Checked before any output is made: an output that cannot be made must not hide it (as a full disk did).
        assertFails(
                1,
                "--residual " + wrong + " is f32[3, 4]",
                "normalize",
                in,
                temp.resolve("no-such-folder").resolve("y.npy").toString(),
                "--residual",
                wrong);
        for (String bad : List.of("-1", "0", "1e39", "1e-50", "2e-39", "NaN", "nan", "inf")) {
            assertFails(
                    2,
                    "invalid value for option '--scale': must be finite and positive as a float32, with a float32"
                            + " reciprocal (above 2^-128), got '" + bad + "'",
                    "normalize",
                    in,
                    out,
                    "--out-dtype",
                    "i8",
                    "--scale",
                    bad);
        }
    }

    @Test
    void rmsWithResidualWritesTheMeanFileAsZeros() throws IOException {
        float[] x = random(3 * 8, 21, 0.5);
        float[] r = random(3 * 8, 22, -0.5);
        Path mean = Files.writeString(temp.resolve("mean.npy"), "stale");
        Path variance = temp.resolve("var.npy");
        Run run = run(
                "normalize",
                save("x.npy", x, 3, 8).toString(),
                temp.resolve("y.npy").toString(),
                "--rms",
                "--residual",
                save("r.npy", r, 3, 8).toString(),
                "--out-sum",
                temp.resolve("s.npy").toString(),
                "--stats",
                mean.toString(),
                variance.toString());
        assertEquals(0, run.exit(), run.err());
        assertTrue(run.out().contains(mean + ", " + variance), run.out());
        assertArrayEquals(new float[3], load(mean), "RMS normalization's mean is 0, as without --residual");
        float[] squares = load(variance);
        for (int row = 0; row < 3; row++) {
            double square = 0;
            for (int i = 0; i < 8; i++) {
                float s = x[row * 8 + i] + r[row * 8 + i];
                square += (double) s * s / 8;
            }
            assertEquals(square, squares[row], 1e-5 * square, "row " + row);
        }
    }

    @Test
    void outputsThatAreOneFileThroughLinksAreRefused() throws IOException {
        String in = save("x.npy", random(8, 1, 0), 2, 4).toString();
        // A link to an output that does not exist yet: both would be written to m.npy.
        Path links = Files.createDirectory(temp.resolve("links"));
        Files.createSymbolicLink(links.resolve("v.npy"), Path.of("m.npy"));
        assertFails(
                2,
                "two outputs are the same file: " + links.resolve("v.npy"),
                "normalize",
                in,
                links.resolve("y.npy").toString(),
                "--stats",
                links.resolve("m.npy").toString(),
                links.resolve("v.npy").toString());
        // A link to a folder: b/y.npy is a/y.npy.
        Path a = Files.createDirectory(temp.resolve("a"));
        Path b = Files.createSymbolicLink(temp.resolve("b"), Path.of("a"));
        assertFails(
                2,
                "two outputs are the same file: " + b.resolve("y.npy"),
                "normalize",
                in,
                a.resolve("y.npy").toString(),
                "--stats",
                b.resolve("y.npy").toString(),
                temp.resolve("v.npy").toString());
        assertFails(
                2,
                "is the same file as input",
                "normalize",
                in,
                b.resolve("..").resolve("x.npy").toString());
    }

    @Test
    void inputsThatAreNotRegularFilesAreRefusedNotWaitedOn() throws Exception {
        String in = save("x.npy", random(8, 1, 0), 2, 4).toString();
        String out = temp.resolve("y.npy").toString();
        Path fifo = temp.resolve("pipe.npy");
        assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor());
        assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
            assertFails(
                    1,
                    "cannot read " + fifo + ": it is a FIFO (named pipe), not a regular file",
                    "normalize",
                    fifo.toString(),
                    out);
            assertFails(1, "cannot read " + fifo + ": it is a FIFO", "normalize", in, out, "--gamma", fifo.toString());
        });
        Path folder = Files.createDirectory(temp.resolve("folder.npy"));
        assertFails(1, "cannot read " + folder + ": it is a directory", "normalize", folder.toString(), out);
        assertFails(1, "cannot read " + folder + ": it is a directory", "backward", in, folder.toString(), out);
        // Path.of drops a trailing slash, which would read x.npy for x.npy/ and replace y.npy for y.npy/.
        assertFails(2, "must name a file, not a folder, got '" + in + "/'", "normalize", in + "/", out);
        assertFails(2, "must name a file, not a folder, got '" + out + "/'", "normalize", in, out + "/");
        // Path.of("") is the current folder: an unset shell variable must not read or name it.
        assertFails(2, "must name a file, got an empty path", "normalize", "", out);
        assertFails(2, "must name a file, got an empty path", "normalize", in, "");
        assertFails(2, "must name a file, got an empty path", "normalize", in, out, "--residual", "");
        assertFails(2, "must name a file, got an empty path", "backward", in, "", out);
        assertFails(2, "must name a folder, got an empty path", "tune", "--dir", "");
        assertFalse(Files.exists(Path.of(out)));
    }

    /** A float32 {@code .npy} file of this 2-D shape over a sparse file: its header, and no data on disk. */
    private static Path sparseNpy(Path file, long rows, long columns) throws IOException {
        String dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + rows + ", " + columns + "), }";
        String text = dict + " ".repeat((10 + dict.length() + 1 + 63) / 64 * 64 - 10 - dict.length() - 1) + "\n";
        ByteBuffer header = ByteBuffer.allocate(10 + text.length()).order(ByteOrder.LITTLE_ENDIAN);
        header.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0}).putShort((short) text.length());
        header.put(text.getBytes(StandardCharsets.US_ASCII));
        Files.write(file, header.array());
        try (RandomAccessFile sparse = new RandomAccessFile(file.toFile(), "rw")) {
            sparse.setLength(header.capacity() + rows * columns * Float.BYTES);
        }
        return file;
    }

    @Test
    void runningOutOfMemoryIsOneLine() throws IOException {
        // 2^36 x 16 floats: backward reads its inputs whole, which cannot be allocated.
        Path x = sparseNpy(temp.resolve("huge-x.npy"), 1L << 36, 16);
        Path dy = sparseNpy(temp.resolve("huge-dy.npy"), 1L << 36, 16);
        assertFails(
                1,
                "panorm: error: out of memory (",
                "backward",
                x.toString(),
                dy.toString(),
                temp.resolve("dx.npy").toString());
    }

    @Test
    void aNameAsLongAsTheFileSystemTakesCanBeAnOutput() throws IOException {
        Path out = temp.resolve("a".repeat(251) + ".npy");
        Run run = run("normalize", save("x.npy", random(8, 1, 0), 2, 4).toString(), out.toString());
        assertEquals(0, run.exit(), run.err());
        assertEquals(8, load(out).length);
        try (Stream<Path> files = Files.list(temp)) {
            assertEquals(2, files.count(), "no temporary file left behind");
        }
    }
}
