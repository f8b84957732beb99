package dev.panorm.examples.paper;

import dev.panorm.Backend;
import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * How much of the recurrent network's training time goes to panorm, per backend, measured two ways.
 *
 * <p>Steady state ({@link #run}): epochs of the layer-normalized GRU with every panorm call timed, next to
 * the same epochs without layer normalization, in this JVM after the study has warmed it up, on one thread.
 * The machine may be shared, so each variant runs {@code repetitions} epochs, interleaved with the other
 * variants', and keeps its fastest epoch, and calls are summarized by their median duration.
 *
 * <p>Cold start ({@link #coldStarts}): what a program that trains this GRU and exits pays, JIT compilation
 * included. Each variant trains for a few epochs in a fresh JVM of its own (a child process running
 * {@link #coldStart}), and reports every epoch's time and the time inside panorm calls. Every variant runs
 * a few times, interleaved with the others, and its fastest run counts: a busy machine stretches a cold start
 * several times over.
 */
final class Profile {
    private Profile() {}

    /**
     * The fastest epoch of a variant, and its calls.
     *
     * @param backend null for the GRU without layer normalization
     * @param seconds the epoch's wall time (forward, backward and optimizer steps; no evaluation)
     * @param timer the panorm calls of all its timed epochs
     */
    record Row(Backend backend, int batch, double seconds, CallTimer timer, int epochs) {
        /** Calls per epoch times their median durations: panorm's time in an epoch, robust to preemption. */
        double panormSeconds() {
            double nanos = 0;
            for (CallTimer.Kind kind : CallTimer.Kind.values()) {
                if (timer.calls[kind.ordinal()] > 0) {
                    nanos += timer.calls[kind.ordinal()] / (double) epochs * timer.median(kind);
                }
            }
            return nanos / 1e9;
        }

        double copySeconds() {
            return timer.totalCalls() == 0 ? 0 : timer.totalCalls() / (double) epochs * timer.medianCopy() / 1e9;
        }
    }

    static List<Row> run(
            Training.Shape shape,
            Digits train,
            int batch,
            double learningRate,
            int repetitions,
            java.util.function.DoubleConsumer progress) {
        List<Backend> variants = new ArrayList<>();
        variants.add(null);
        variants.addAll(List.of(Backend.values()));
        List<Training.Built> built = new ArrayList<>();
        List<Adam> adams = new ArrayList<>();
        double[] best = new double[variants.size()];
        try {
            for (Backend backend : variants) {
                Training.Method method = backend == null ? Training.Method.NONE : Training.Method.LAYER;
                Training.Built b = new Training.Built(
                        new Training.Spec(Training.Network.GRU, method, batch, 0),
                        shape,
                        backend == null ? Backend.AUTO : backend);
                built.add(b);
                Adam adam = new Adam(b.model.params(), learningRate);
                adams.add(adam);
                // Warm-up: a fifth of an epoch lets the JIT compile this variant's path before the clock starts.
                pass(b, adam, train, batch, train.size() / 5);
                b.timer.reset();
                b.timer.keepEach();
            }
            java.util.Arrays.fill(best, Double.POSITIVE_INFINITY);
            for (int rep = 0; rep < repetitions; rep++) {
                for (int v = 0; v < variants.size(); v++) {
                    long start = System.nanoTime();
                    pass(built.get(v), adams.get(v), train, batch, train.size());
                    double seconds = (System.nanoTime() - start) / 1e9;
                    best[v] = Math.min(best[v], seconds);
                    progress.accept(seconds);
                }
            }
            List<Row> rows = new ArrayList<>();
            for (int v = 0; v < variants.size(); v++) {
                rows.add(new Row(variants.get(v), batch, best[v], built.get(v).timer, repetitions));
            }
            return rows;
        } finally {
            built.forEach(Training.Built::close);
        }
    }

    /** A fresh JVM's epochs: wall time and time inside panorm calls (sums, warm-up included), per epoch. */
    record Cold(Backend backend, int batch, double[] seconds, double[] panormSeconds, long callsPerEpoch) {
        double total(double[] values) {
            return java.util.Arrays.stream(values).sum();
        }
    }

    private static final String COLD_PREFIX = "cold-start epoch ";

    /**
     * Trains the GRU (layer-normalized on {@code backend}, or without normalization if null) from scratch in
     * this JVM and prints one line per epoch for the parent process: {@code cold-start epoch E SECONDS PANORM CALLS}.
     */
    static void coldStart(
            Backend backend,
            Training.Shape shape,
            Digits train,
            int batch,
            double learningRate,
            int epochs,
            java.io.PrintStream out) {
        Training.Method method = backend == null ? Training.Method.NONE : Training.Method.LAYER;
        try (Training.Built b = new Training.Built(
                new Training.Spec(Training.Network.GRU, method, batch, 0),
                shape,
                backend == null ? Backend.AUTO : backend)) {
            Adam adam = new Adam(b.model.params(), learningRate);
            for (int e = 1; e <= epochs; e++) {
                b.timer.reset();
                long start = System.nanoTime();
                pass(b, adam, train, batch, train.size());
                out.printf(
                        Locale.ROOT,
                        "%s%d %.6f %.6f %d%n",
                        COLD_PREFIX,
                        e,
                        (System.nanoTime() - start) / 1e9,
                        b.timer.totalCallNanos() / 1e9,
                        b.timer.totalCalls());
            }
            out.flush();
        }
    }

    /**
     * Runs {@link #coldStart} in a child JVM per variant, one after the other, {@code repetitions} times, with this
     * JVM's class path and panorm's flags, and keeps each variant's fastest run; {@code dataArguments} tell the
     * child where the data is ({@code --data FILE} or {@code --synthetic N}).
     */
    static List<Cold> coldStarts(
            Training.Shape shape,
            List<String> dataArguments,
            int trainSize,
            int batch,
            double learningRate,
            int epochs,
            int repetitions,
            java.util.function.DoubleConsumer progress) {
        List<Backend> variants = new ArrayList<>();
        variants.add(null);
        variants.addAll(List.of(Backend.values()));
        Cold[] fastest = new Cold[variants.size()];
        for (int rep = 0; rep < repetitions; rep++) {
            for (int v = 0; v < variants.size(); v++) {
                Cold run = coldStart(variants.get(v), shape, dataArguments, trainSize, batch, learningRate, epochs);
                if (fastest[v] == null || run.total(run.seconds()) < fastest[v].total(fastest[v].seconds())) {
                    fastest[v] = run;
                }
                progress.accept(run.total(run.seconds()));
            }
        }
        return List.of(fastest);
    }

    /** One child JVM's run of {@link #coldStart}. */
    private static Cold coldStart(
            Backend backend,
            Training.Shape shape,
            List<String> dataArguments,
            int trainSize,
            int batch,
            double learningRate,
            int epochs) {
        List<String> command = new ArrayList<>(List.of(
                ProcessHandle.current().info().command().orElse("java"),
                "--enable-native-access=ALL-UNNAMED",
                "--add-modules",
                "jdk.incubator.vector",
                "-cp",
                classPath(),
                PaperExample.class.getName()));
        command.addAll(dataArguments);
        command.addAll(List.of(
                "--train",
                Integer.toString(trainSize),
                "--gru-hidden",
                Integer.toString(shape.gruHidden()),
                "--gru-lr",
                Double.toString(learningRate),
                "--cold-start",
                backend == null ? "NONE" : backend.name(),
                "--cold-start-batch",
                Integer.toString(batch),
                "--cold-start-epochs",
                Integer.toString(epochs)));
        double[] seconds = new double[epochs];
        double[] panorm = new double[epochs];
        long calls = 0;
        try {
            Process child = new ProcessBuilder(command)
                    .redirectError(ProcessBuilder.Redirect.DISCARD)
                    .start();
            int seen = 0;
            try (BufferedReader in =
                    new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                    if (line.startsWith(COLD_PREFIX)) {
                        String[] f = line.substring(COLD_PREFIX.length()).trim().split(" ");
                        int e = Integer.parseInt(f[0]) - 1;
                        seconds[e] = Double.parseDouble(f[1]);
                        panorm[e] = Double.parseDouble(f[2]);
                        calls = Long.parseLong(f[3]);
                        seen++;
                    }
                }
            }
            int status = child.waitFor();
            if (status != 0 || seen != epochs) {
                throw new IllegalStateException("the cold-start JVM for " + backend + " exited with " + status
                        + " after " + seen + " of " + epochs + " epochs: " + String.join(" ", command));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start a JVM for the cold-start profile: " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
        return new Cold(backend, batch, seconds, panorm, calls);
    }

    private static void pass(Training.Built built, Adam adam, Digits train, int batch, int examples) {
        float[] x = new float[batch * Digits.PIXELS];
        int[] index = new int[batch];
        for (int start = 0; start + batch <= examples; start += batch) {
            for (int r = 0; r < batch; r++) {
                index[r] = start + r;
            }
            System.arraycopy(train.images(), start * Digits.PIXELS, x, 0, batch * Digits.PIXELS);
            built.model.gradients(x, train.labels(), index, batch);
            adam.step();
        }
    }

    /**
     * This JVM's class path plus its module path: started as a module (the tests run patched into
     * dev.panorm), the class path alone lacks panorm; the child runs everything on the class path.
     */
    private static String classPath() {
        String modulePath = System.getProperty("jdk.module.path", "");
        String classPath = System.getProperty("java.class.path");
        return modulePath.isEmpty() ? classPath : classPath + File.pathSeparator + modulePath;
    }
}
