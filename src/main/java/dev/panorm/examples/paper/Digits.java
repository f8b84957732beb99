package dev.panorm.examples.paper;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.SplittableRandom;
import java.util.zip.GZIPInputStream;

/**
 * Labelled 8x8 images of handwritten digits, pixels scaled from 0..16 to 0..1: {@code images} holds
 * {@code size() x 64} floats in row-major order (image row by image row, so the recurrent network can read
 * one image row of 8 pixels per time step).
 */
record Digits(float[] images, int[] labels) {
    static final int PIXELS = 64;
    static final int CLASSES = 10;

    /**
     * SHA-256 of the {@code digits.csv.gz} the committed results were measured with (scikit-learn 1.2.1,
     * Debian's python3-sklearn 1.2.1+dfsg-1). Another copy is used, but with a warning, since the
     * numbers in docs/paper.md then need not reproduce.
     */
    static final String MEASURED_SHA256 = "46abec6b12486ad9e51943373abcf22bbea1b5a51a1619b361570d8893f1464a";

    int size() {
        return labels.length;
    }

    /** The pixels of example {@code n}, a copy. */
    float[] image(int n) {
        float[] image = new float[PIXELS];
        System.arraycopy(images, n * PIXELS, image, 0, PIXELS);
        return image;
    }

    /**
     * Reads scikit-learn's {@code digits.csv.gz}: 1,797 lines of 64 pixel counts (0..16) and the label.
     *
     * @throws IOException if the file cannot be read or is not in that format (the message says which line)
     */
    static Digits read(Path file) throws IOException {
        try (InputStream in = new GZIPInputStream(Files.newInputStream(file));
                BufferedReader reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.US_ASCII))) {
            List<float[]> images = new ArrayList<>();
            List<Integer> labels = new ArrayList<>();
            String line;
            while ((line = reader.readLine()) != null) {
                if (line.isBlank()) {
                    continue;
                }
                String[] fields = line.split(",");
                if (fields.length != PIXELS + 1) {
                    throw new IOException(
                            file + " line " + (labels.size() + 1) + ": expected 65 values, got " + fields.length);
                }
                float[] image = new float[PIXELS];
                for (int i = 0; i < PIXELS; i++) {
                    double v = Double.parseDouble(fields[i]);
                    if (v < 0 || v > 16) {
                        throw new IOException(
                                file + " line " + (labels.size() + 1) + ": pixel " + v + " outside 0..16");
                    }
                    image[i] = (float) (v / 16);
                }
                int label = (int) Double.parseDouble(fields[PIXELS]);
                if (label < 0 || label >= CLASSES) {
                    throw new IOException(file + " line " + (labels.size() + 1) + ": label " + fields[PIXELS]);
                }
                images.add(image);
                labels.add(label);
            }
            return of(images, labels);
        } catch (NumberFormatException e) {
            throw new IOException(file + ": not scikit-learn's digits.csv.gz (" + e.getMessage() + ")", e);
        }
    }

    /** SHA-256 of a file, in hex. */
    static String sha256(Path file) throws IOException {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError("every JDK has SHA-256", e);
        }
    }

    /**
     * Random images for tests and dry runs, no download needed: each class is a fixed random prototype
     * plus noise, so a network can learn them but not perfectly.
     */
    static Digits synthetic(int size, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        float[][] prototypes = new float[CLASSES][PIXELS];
        for (float[] prototype : prototypes) {
            for (int i = 0; i < PIXELS; i++) {
                prototype[i] = random.nextDouble() < 0.4 ? (float) random.nextDouble() : 0;
            }
        }
        List<float[]> images = new ArrayList<>();
        List<Integer> labels = new ArrayList<>();
        for (int n = 0; n < size; n++) {
            int label = random.nextInt(CLASSES);
            float[] image = new float[PIXELS];
            for (int i = 0; i < PIXELS; i++) {
                image[i] = (float) Math.clamp(prototypes[label][i] + 0.35 * random.nextGaussian(), 0, 1);
            }
            images.add(image);
            labels.add(label);
        }
        return of(images, labels);
    }

    /** A random split (fixed by {@code seed}) into {@code trainSize} training examples and the rest for testing. */
    Digits[] split(int trainSize, long seed) {
        if (trainSize <= 0 || trainSize >= size()) {
            throw new IllegalArgumentException("training set of " + trainSize + " out of " + size() + " examples");
        }
        int[] order = Rng.permutation(size(), new SplittableRandom(seed));
        return new Digits[] {subset(order, 0, trainSize), subset(order, trainSize, size())};
    }

    private Digits subset(int[] order, int from, int to) {
        float[] x = new float[(to - from) * PIXELS];
        int[] y = new int[to - from];
        for (int i = from; i < to; i++) {
            System.arraycopy(images, order[i] * PIXELS, x, (i - from) * PIXELS, PIXELS);
            y[i - from] = labels[order[i]];
        }
        return new Digits(x, y);
    }

    private static Digits of(List<float[]> images, List<Integer> labels) {
        float[] x = new float[images.size() * PIXELS];
        for (int n = 0; n < images.size(); n++) {
            System.arraycopy(images.get(n), 0, x, n * PIXELS, PIXELS);
        }
        return new Digits(x, labels.stream().mapToInt(Integer::intValue).toArray());
    }
}
