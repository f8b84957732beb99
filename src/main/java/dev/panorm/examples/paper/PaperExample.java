package dev.panorm.examples.paper;

import dev.panorm.Backend;
import dev.panorm.internal.io.ReplacedFile;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Reproduces the claims of Ba, Kiros and Hinton, "Layer Normalization" (2016), with panorm on the UCI
 * handwritten digits: run by {@code scripts/paper.sh}, which fetches the data; {@code docs/paper.md} has the
 * setup and the measured results. Not part of panorm's API.
 */
public final class PaperExample {
    private PaperExample() {}

    /** Timed epochs per variant in the profile; the fastest counts. */
    private static final int PROFILE_REPETITIONS = 3;
    /** Fresh JVMs per variant in the cold-start profile; the fastest counts. */
    private static final int COLD_REPETITIONS = 2;

    private static final String USAGE = """
            Usage: scripts/paper.sh [options]
                   (or: java ... dev.panorm.examples.paper.PaperExample --data FILE [options])
              --data FILE          scikit-learn's digits.csv.gz (scripts/paper.sh fetches and passes it)
              --synthetic N        N random examples instead of the digits (a dry run; needs no data)
              --out DIR            where results.md, curves.csv and the charts go (default target/paper)
              --seeds N            runs per configuration, seeds 0..N-1 (default 5)
              --mlp-epochs N       (default 20)      --gru-epochs N    (default 12)
              --mlp-batches LIST   (default 128,4)   --gru-batches LIST (default 1,16)
              --mlp-hidden N       (default 256)     --gru-hidden N    (default 64)
              --mlp-lr X           (default 0.001)   --gru-lr X        (default 0.003)
              --train N            training examples; the rest of the 1,797 are the test set (default 1280;
                                   with --synthetic N, the same share of N)
              --backend B          panorm backend for training: AUTO, ONEDNN, JAVA, JAVA_SCALAR (default AUTO)
              --threads N          runs trained at once (default: the number of cores)
              --only mlp|gru       one of the two studies
              --no-profile         skip the timing of panorm calls per backend
              --cold-start-epochs N  epochs of each fresh-JVM run in the timing (default 3)
            Internal, for the child JVMs of the timing:
              --cold-start NONE|AUTO|ONEDNN|JAVA|JAVA_SCALAR  [--cold-start-batch N]
            """;

    /** The command line's settings. */
    record Options(
            Path data,
            int synthetic,
            Path out,
            int seeds,
            int mlpEpochs,
            int gruEpochs,
            List<Integer> mlpBatches,
            List<Integer> gruBatches,
            Training.Shape shape,
            int train,
            Backend backend,
            int threads,
            String only,
            boolean profile,
            int coldEpochs,
            String coldStart,
            int coldBatch) {
        static Options parse(String[] args) {
            Path data = null;
            int synthetic = 0;
            Path out = Path.of("target", "paper");
            int seeds = 5;
            int mlpEpochs = 20;
            int gruEpochs = 12;
            List<Integer> mlpBatches = List.of(128, 4);
            List<Integer> gruBatches = List.of(1, 16);
            int mlpHidden = 256;
            int gruHidden = 64;
            double mlpLr = 1e-3;
            double gruLr = 3e-3;
            int train = 0; // 0: the default, below
            Backend backend = Backend.AUTO;
            int threads = Runtime.getRuntime().availableProcessors();
            String only = null;
            boolean profile = true;
            int coldEpochs = 3;
            String coldStart = null;
            int coldBatch = 1;
            for (int i = 0; i < args.length; i++) {
                String option = args[i];
                if (option.equals("--no-profile")) {
                    profile = false;
                    continue;
                }
                if (option.equals("--help") || option.equals("-h")) {
                    throw new Usage(null);
                }
                if (i + 1 >= args.length) {
                    throw new Usage(VALUED.contains(option) ? option + " needs a value" : "unknown option " + option);
                }
                String value = args[++i];
                try {
                    switch (option) {
                        case "--data" -> data = Path.of(value);
                        case "--synthetic" -> synthetic = positive(option, value);
                        case "--out" -> out = Path.of(value);
                        case "--seeds" -> seeds = positive(option, value);
                        case "--mlp-epochs" -> mlpEpochs = positive(option, value);
                        case "--gru-epochs" -> gruEpochs = positive(option, value);
                        case "--mlp-batches" -> mlpBatches = batches(option, value, 2);
                        case "--gru-batches" -> gruBatches = batches(option, value, 1);
                        case "--mlp-hidden" -> mlpHidden = positive(option, value);
                        case "--gru-hidden" -> gruHidden = positive(option, value);
                        case "--mlp-lr" -> mlpLr = Double.parseDouble(value);
                        case "--gru-lr" -> gruLr = Double.parseDouble(value);
                        case "--train" -> train = positive(option, value);
                        case "--backend" -> backend = Backend.valueOf(value.toUpperCase(Locale.ROOT));
                        case "--threads" -> threads = positive(option, value);
                        case "--only" -> {
                            if (!value.equals("mlp") && !value.equals("gru")) {
                                throw new Usage("--only takes mlp or gru, got " + value);
                            }
                            only = value;
                        }
                        case "--cold-start-epochs" -> coldEpochs = positive(option, value);
                        case "--cold-start-batch" -> coldBatch = positive(option, value);
                        case "--cold-start" -> {
                            if (!value.equals("NONE")) {
                                Backend.valueOf(value);
                            }
                            coldStart = value;
                        }
                        default -> throw new Usage("unknown option " + option);
                    }
                } catch (IllegalArgumentException e) {
                    throw e instanceof Usage u ? u : new Usage(option + ": bad value " + value);
                }
            }
            if ((data == null) == (synthetic == 0)) {
                throw new Usage("give --data FILE (scripts/paper.sh does) or --synthetic N");
            }
            if (!(mlpLr > 0) || !(gruLr > 0) || !Double.isFinite(mlpLr) || !Double.isFinite(gruLr)) {
                throw new Usage("learning rates must be positive and finite");
            }
            if (train == 0) { // the digits' share, 1280 of 1797, of a synthetic set too
                train = synthetic == 0 ? DIGITS_TRAIN : (int) Math.max(1, (long) synthetic * DIGITS_TRAIN / 1797);
            }
            return new Options(
                    data,
                    synthetic,
                    out,
                    seeds,
                    mlpEpochs,
                    gruEpochs,
                    mlpBatches,
                    gruBatches,
                    new Training.Shape(mlpHidden, gruHidden, mlpLr, gruLr),
                    train,
                    backend,
                    threads,
                    only,
                    profile,
                    coldEpochs,
                    coldStart,
                    coldBatch);
        }

        /** The options that take a value. */
        private static final Set<String> VALUED = Set.of(
                "--data",
                "--synthetic",
                "--out",
                "--seeds",
                "--mlp-epochs",
                "--gru-epochs",
                "--mlp-batches",
                "--gru-batches",
                "--mlp-hidden",
                "--gru-hidden",
                "--mlp-lr",
                "--gru-lr",
                "--train",
                "--backend",
                "--threads",
                "--only",
                "--cold-start-epochs",
                "--cold-start-batch",
                "--cold-start");

        /** The digits' training examples by default; the rest of the 1,797 are the test set. */
        private static final int DIGITS_TRAIN = 1280;

        private static int positive(String option, String value) {
            int n = Integer.parseInt(value);
            if (n <= 0) {
                throw new Usage(option + " must be positive, got " + value);
            }
            return n;
        }

        /** Batch sizes; batch normalization needs at least 2 rows, hence {@code min}. */
        private static List<Integer> batches(String option, String value, int min) {
            List<Integer> list = new ArrayList<>();
            for (String part : value.split(",")) {
                int n = Integer.parseInt(part.trim());
                if (n < min) {
                    throw new Usage(option + ": batch sizes must be at least " + min + ", got " + n);
                }
                list.add(n);
            }
            return List.copyOf(list);
        }
    }

    /** A problem with the command line: exit status 2. */
    static final class Usage extends IllegalArgumentException {
        private static final long serialVersionUID = 1L;

        Usage(String message) {
            super(message);
        }
    }

    /**
     * Runs the study and writes its results; exit status 0 on success, 1 on failure, 2 for a bad command line.
     *
     * @param args the options ({@code --help} lists them)
     */
    public static void main(String[] args) {
        try {
            run(Options.parse(args), System.out, System.err);
        } catch (Usage e) {
            if (e.getMessage() != null) {
                System.err.println("paper: " + e.getMessage());
            }
            System.err.print(USAGE);
            System.exit(e.getMessage() == null ? 0 : 2);
        } catch (IOException | UncheckedIOException e) {
            System.err.println("paper: " + e.getMessage());
            System.exit(1);
        }
    }

    /** Everything the study produced, for the caller (and the tests) to inspect. */
    record Outcome(
            List<Training.Result> results,
            List<Consistency.LayerNormCheck> layerNormChecks,
            List<Consistency.BatchNormCheck> batchNormChecks,
            List<Profile.Row> profile,
            List<Profile.Cold> cold,
            Path report) {}

    /** Fails now, not after hours of training, where the report cannot be written: with the reason. */
    private static void writableOrFail(Path folder) throws IOException {
        try {
            Files.createDirectories(folder);
        } catch (FileSystemException e) {
            String reason = switch (e) {
                case AccessDeniedException denied -> "permission denied";
                case NoSuchFileException missing -> "no such file or folder";
                default -> e.getReason() == null ? e.getClass().getSimpleName() : e.getReason();
            };
            throw new IOException("cannot make the folder " + folder + ": " + reason, e);
        }
        ReplacedFile.create(folder.resolve("results.md")).close(); // a new file there, removed again
    }

    /** Runs the study; returns null for a {@code --cold-start} child, which only prints its epochs. */
    static Outcome run(Options options, PrintStream out, PrintStream err) throws IOException {
        long start = System.nanoTime();
        String loadBefore = loadAverage();
        Digits all;
        String source;
        if (options.data() != null) {
            all = Digits.read(options.data());
            String sha = Digits.sha256(options.data());
            source = "`" + options.data().getFileName() + "` (SHA-256 " + sha + ")";
            if (!sha.equals(Digits.MEASURED_SHA256)) {
                err.println("paper: warning: " + options.data()
                        + " is not the copy docs/paper.md was measured with (SHA-256 " + sha
                        + "); the numbers may differ");
            }
        } else {
            all = Digits.synthetic(options.synthetic(), 17);
            source = options.synthetic() + " synthetic examples";
        }
        if (options.train() >= all.size()) {
            throw new Usage("--train " + options.train() + " leaves no test examples out of " + all.size());
        }
        Digits[] split = all.split(options.train(), 2016);
        Digits train = split[0];
        Digits test = split[1];
        if (options.coldStart() != null) {
            Backend backend = options.coldStart().equals("NONE") ? null : Backend.valueOf(options.coldStart());
            Profile.coldStart(
                    backend,
                    options.shape(),
                    train,
                    options.coldBatch(),
                    options.shape().gruLearningRate(),
                    options.coldEpochs(),
                    out);
            return null;
        }
        writableOrFail(options.out());

        List<Training.Spec> specs = new ArrayList<>();
        if (!"mlp".equals(options.only())) {
            for (int batch : options.gruBatches()) {
                for (Training.Method method : List.of(Training.Method.NONE, Training.Method.LAYER)) {
                    for (int seed = 0; seed < options.seeds(); seed++) {
                        specs.add(new Training.Spec(Training.Network.GRU, method, batch, seed));
                    }
                }
            }
        }
        if (!"gru".equals(options.only())) {
            for (int batch : options.mlpBatches()) {
                for (Training.Method method : Training.Method.values()) {
                    for (int seed = 0; seed < options.seeds(); seed++) {
                        specs.add(new Training.Spec(Training.Network.MLP, method, batch, seed));
                    }
                }
            }
        }
        for (Training.Spec spec : specs) {
            if (spec.batch() > train.size()) {
                throw new Usage("batch " + spec.batch() + " is larger than the " + train.size() + " training examples");
            }
        }
        // The progress line's work: epochs of each network (trained on all threads), then the profile's
        // epochs and fresh JVMs (one at a time).
        Map<String, Long> work = new HashMap<>();
        for (Training.Spec spec : specs) {
            work.merge(spec.network().name(), (long) epochs(options, spec), Long::sum);
        }
        boolean profiling = options.profile() && !"mlp".equals(options.only());
        int variants = Backend.values().length + 1;
        if (profiling) {
            work.put("profile", (long) PROFILE_REPETITIONS * variants);
            work.put("cold", (long) COLD_REPETITIONS * variants);
        }
        Progress progress = new Progress(err, work, Map.of("MLP", options.threads(), "GRU", options.threads()));
        progress.message(String.format(
                Locale.ROOT,
                "%d training and %d test examples from %s; %d runs on %d threads",
                train.size(),
                test.size(),
                source,
                specs.size(),
                options.threads()));

        List<Consistency.LayerNormCheck> lnChecks = Collections.synchronizedList(new ArrayList<>());
        List<Consistency.BatchNormCheck> bnChecks = Collections.synchronizedList(new ArrayList<>());
        List<Training.Result> results = new ArrayList<>();
        ExecutorService pool = Executors.newFixedThreadPool(options.threads());
        try {
            List<Future<Training.Result>> futures = new ArrayList<>();
            for (Training.Spec spec : specs) {
                futures.add(pool.submit(() -> {
                    // Everything native of a run (arena, LayerNorms) lives and dies on this thread.
                    try (Training.Built built = new Training.Built(spec, options.shape(), options.backend())) {
                        int epochs = epochs(options, spec);
                        double lr = spec.network() == Training.Network.MLP
                                ? options.shape().mlpLearningRate()
                                : options.shape().gruLearningRate();
                        Training.Result result = Training.train(
                                built,
                                train,
                                test,
                                epochs,
                                lr,
                                (s, epoch, seconds) ->
                                        progress.epochDone(s.network().name(), seconds, s.label(), epoch, epochs));
                        List<Integer> batches =
                                spec.network() == Training.Network.MLP ? options.mlpBatches() : options.gruBatches();
                        if (spec.seed() == 0
                                && spec.method() == Training.Method.LAYER
                                && spec.batch() == batches.getFirst()) {
                            lnChecks.addAll(Consistency.layerNorm(built, options.shape(), test));
                        }
                        if (spec.seed() == 0 && spec.method() == Training.Method.BATCH) {
                            bnChecks.add(Consistency.batchNorm(built, test));
                        }
                        return result;
                    }
                }));
            }
            for (Future<Training.Result> future : futures) {
                results.add(future.get());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        } catch (ExecutionException e) {
            throw e.getCause() instanceof RuntimeException r ? r : new IllegalStateException(e.getCause());
        } finally {
            pool.shutdownNow();
        }
        lnChecks.sort(java.util.Comparator.comparing(
                        (Consistency.LayerNormCheck c) -> c.spec().network())
                .thenComparing(Consistency.LayerNormCheck::backend));
        bnChecks.sort(java.util.Comparator.comparingInt(
                (Consistency.BatchNormCheck c) -> -c.spec().batch()));

        List<Profile.Row> profile = List.of();
        List<Profile.Cold> cold = List.of();
        int profileBatch = options.gruBatches().getFirst();
        if (profiling) {
            profile = Profile.run(
                    options.shape(),
                    train,
                    profileBatch,
                    options.shape().gruLearningRate(),
                    PROFILE_REPETITIONS,
                    seconds -> progress.epochDone("profile", seconds, "timing panorm per backend", 1, 1));
            List<String> data = options.data() != null
                    ? List.of("--data", options.data().toString())
                    : List.of("--synthetic", Integer.toString(options.synthetic()));
            cold = Profile.coldStarts(
                    options.shape(),
                    data,
                    options.train(),
                    profileBatch,
                    options.shape().gruLearningRate(),
                    options.coldEpochs(),
                    COLD_REPETITIONS,
                    seconds -> progress.epochDone("cold", seconds, "timing panorm in fresh JVMs", 1, 1));
        }
        double seconds = (System.nanoTime() - start) / 1e9;

        List<Report.Group> groups = Report.groups(results);
        List<Report.Group> mlp =
                groups.stream().filter(g -> g.network() == Training.Network.MLP).toList();
        List<Report.Group> gru =
                groups.stream().filter(g -> g.network() == Training.Network.GRU).toList();
        StringBuilder md = new StringBuilder("# Layer normalization study: measured results\n\n");
        md.append(String.format(
                Locale.ROOT,
                """
                        Written by `scripts/paper.sh` (`dev.panorm.examples.paper.PaperExample`) in %s on %d cores \
                        (Java %s, %s); `docs/paper.md` explains the setup and reads the results.

                        - Data: %s, %d training and %d test examples (a fixed random split).
                        - %d seeds per configuration (seeds 0 to %d: initial weights and order of the examples); \
                        mean ± standard deviation [min, max] over seeds.
                        - panorm backend for training: %s; %d runs trained at once.
                        - Load average of the machine (1, 5, 15 minutes) before and after: %s; %s. Timings depend on it.

                        """,
                Progress.clock(seconds),
                Runtime.getRuntime().availableProcessors(),
                System.getProperty("java.version"),
                System.getProperty("os.arch"),
                source,
                train.size(),
                test.size(),
                options.seeds(),
                options.seeds() - 1,
                options.backend(),
                options.threads(),
                loadBefore,
                loadAverage()));
        if (!mlp.isEmpty()) {
            md.append(String.format(
                    Locale.ROOT,
                    "## Claim 1: MLP %d-%d-%d-%d, Adam (learning rate %s), %d epochs%n%n",
                    Digits.PIXELS,
                    options.shape().mlpHidden(),
                    options.shape().mlpHidden(),
                    Digits.CLASSES,
                    options.shape().mlpLearningRate(),
                    options.mlpEpochs()));
            md.append(Report.summary(mlp))
                    .append("\nPer epoch, mean over seeds (test error / training loss):\n\n")
                    .append(Report.perEpoch(mlp))
                    .append('\n');
        }
        if (!gru.isEmpty()) {
            md.append(String.format(
                    Locale.ROOT,
                    "## Claim 2: GRU (%d hidden units) reading the digits row by row, "
                            + "Adam (learning rate %s), %d epochs%n%n",
                    options.shape().gruHidden(),
                    options.shape().gruLearningRate(),
                    options.gruEpochs()));
            md.append(Report.summary(gru))
                    .append("\nPer epoch, mean over seeds (test error / training loss):\n\n")
                    .append(Report.perEpoch(gru))
                    .append('\n');
        }
        md.append("## Claim 3: the same computation in training and at test time\n\n");
        md.append("Layer norm, trained models (seed 0) re-evaluated on every backend:\n\n")
                .append(Report.layerNormChecks(lnChecks))
                .append('\n');
        if (!bnChecks.isEmpty()) {
            md.append("Batch norm, trained models (seed 0), the test set evaluated three ways:\n\n")
                    .append(Report.batchNormChecks(bnChecks))
                    .append('\n');
        }
        if (!profile.isEmpty()) {
            md.append(String.format(
                    Locale.ROOT, "## Time in panorm: one epoch of the GRU, batch %d, one thread%n%n", profileBatch));
            md.append(Report.profile(profile, train.size() / profileBatch * profileBatch));
            md.append(String.format(
                    Locale.ROOT,
                    "%n### The same from a cold start: %d epochs in a fresh JVM%n%n",
                    options.coldEpochs()));
            md.append(Report.coldStarts(cold, COLD_REPETITIONS));
        }

        Files.createDirectories(options.out());
        Path report = options.out().resolve("results.md");
        Files.writeString(report, md);
        Files.writeString(options.out().resolve("curves.csv"), Report.csv(results));
        List<Path> charts = Charts.write(groups, options.out());
        progress.message("done in " + Progress.clock(seconds) + ": " + report + ", curves.csv and " + charts.size()
                + " charts in " + options.out());
        out.print(md);
        out.flush();
        return new Outcome(results, List.copyOf(lnChecks), List.copyOf(bnChecks), profile, cold, report);
    }

    /** The first three fields of /proc/loadavg, or "unknown" where there is none. */
    private static String loadAverage() {
        try {
            String[] fields = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return fields[0] + " " + fields[1] + " " + fields[2];
        } catch (IOException | RuntimeException e) {
            return "unknown";
        }
    }

    private static int epochs(Options options, Training.Spec spec) {
        return spec.network() == Training.Network.MLP ? options.mlpEpochs() : options.gruEpochs();
    }
}
