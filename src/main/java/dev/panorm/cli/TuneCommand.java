package dev.panorm.cli;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.OneDnn;
import dev.panorm.Tensor;
import dev.panorm.cli.Main.UsageException;
import dev.panorm.internal.cache.AutoProfile;
import dev.panorm.internal.cache.CacheFolder;
import dev.panorm.internal.io.ReplacedFile;
import dev.panorm.pipeline.Pipeline;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;

/**
 * {@code panorm tune}: measures where oneDNN overtakes the Java kernels on this machine, and where the Java
 * kernels overtake it back, per kind of call and data type that AUTO routes by size, and writes the crossovers
 * as this machine's profile ({@link AutoProfile}), which AUTO then uses in place of its built-in ones.
 *
 * <p>For each kind, width and row count of a geometric sweep it times the Java vector kernel on all cores (it
 * splits a call from 2^19 elements, as AUTO runs it) against oneDNN on one thread and on all cores, in turn in
 * the same process (median of batches, each point twice, the faster median kept), after warming the Java
 * kernels up until C2 has compiled them. Per kind it takes first the size from which oneDNN should run all
 * cores rather than one, then the sizes up to which, and from which on, AUTO should send calls to Java, each
 * the choice that makes the sum over the sweep of (AUTO's time / the best time) least, routing as AUTO does (a
 * single row goes to Java whenever the first crossover is not 0, except in half-precision forward calls; a
 * forward call on one row runs oneDNN on one thread). Rows of {@link AutoProfile#WIDE_ROWS} elements or more get a
 * first crossover of their own, chosen the same way, where the sweep has such rows.
 */
@Command(
        name = "tune",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        separator = " ",
        sortOptions = false,
        description = {
            "Measures this machine's crossovers between the Java kernels and oneDNN for AUTO (layer-norm forward"
                    + " inference and training, forward with given statistics, backward, backward for the input only; float32, bf16 and float16;"
                    + " rows of fewer than " + AutoProfile.WIDE_ROWS + " elements and of " + AutoProfile.WIDE_ROWS
                    + " or more apart),"
                    + " and from which size oneDNN should run all cores, and writes them as a profile that AUTO uses on this machine (same CPU model, core count, JDK and oneDNN).",
            "Run it on an otherwise idle machine: it times the candidates against each other."
        },
        footer = {
            "",
            "AUTO reads the profile once per process. -Dpanorm.auto.profile=none (or PANORM_AUTO_PROFILE=none) makes"
                    + " it ignore profiles, -Dpanorm.auto.profile=FILE names one; 'panorm info' says which model"
                    + " AUTO uses."
        })
final class TuneCommand implements Callable<Integer> {
    private static final String DEFAULT_WIDTHS = "768,1024,3072,4096";
    private static final String DEFAULT_TYPES = "f32,bf16,f16";
    /** The Java kernels are compiled by C2 once their fastest call takes at most this per element (KernelWarmup's). */
    private static final double COMPILED_NS_PER_ELEMENT = 2;
    /** And a few microseconds per call (a single row's backward takes about 2), a hundredth of interpreted time. */
    private static final double COMPILED_NS_FIXED = 3000;
    /** Batches of about this long, so that a small call's time is not the clock's. */
    private static final long BATCH_NANOS = 100_000;

    @ParentCommand
    private Main main;

    @Option(
            names = "--seconds",
            paramLabel = "S",
            defaultValue = "60",
            description = "about how long to measure, JIT warm-up included, beyond the five rounds every point"
                    + " takes at least (about 45 s of the default sweep on 2 cores); in (0, 3600], default 60")
    private double seconds;

    @Option(
            names = "--widths",
            paramLabel = "C,...",
            defaultValue = DEFAULT_WIDTHS,
            description = "row lengths to sweep; default " + DEFAULT_WIDTHS)
    private String widths;

    @Option(
            names = "--max-elements",
            paramLabel = "N",
            defaultValue = "4194304",
            description = "the sweep doubles the rows, from 1, up to this many elements per call; default 2^22")
    private long maxElements;

    @Option(
            names = "--dir",
            paramLabel = "DIR",
            converter = Options.FolderPath.class,
            description = "where to write the profile; default the folder AUTO reads it from: -Dpanorm.cache.dir"
                    + " or $PANORM_CACHE_DIR or $XDG_CACHE_HOME/panorm or ~/.cache/panorm")
    private Path dir;

    @Option(
            names = "--types",
            paramLabel = "T,...",
            defaultValue = DEFAULT_TYPES,
            description = "data types to measure (f32, bf16, f16); default " + DEFAULT_TYPES)
    private String types;

    @Option(names = "--verbose", description = "also print every measurement")
    private boolean verbose;

    /** A call that stands for a kind of the model, as the profile names the kind. */
    private enum Op {
        INFERENCE("forward"),
        TRAINING("forward"),
        GLOBAL("forward_global"),
        BACKWARD("backward"),
        BACKWARD_DATA("backward_data");

        final String kind;

        Op(String kind) {
            this.kind = kind;
        }

        void run(LayerNorm norm, Data d) {
            switch (this) {
                case INFERENCE -> norm.forward(d.x, d.y, d.gamma, d.beta);
                case TRAINING -> norm.forwardTraining(d.x, d.y, d.gamma, d.beta, d.mean, d.variance);
                case GLOBAL -> norm.forwardWithGlobalStatistics(d.x, d.y, d.gamma, d.beta, d.mean, d.variance);
                case BACKWARD -> norm.backward(d.dy, d.x, d.mean, d.variance, d.gamma, d.dx, d.dGamma, d.dBeta);
                case BACKWARD_DATA -> norm.backwardData(d.dy, d.x, d.mean, d.variance, d.gamma, d.dx);
            }
        }
    }

    /** One call's tensors, with statistics that forwardTraining wrote. */
    private record Data(
            long rows,
            long c,
            Tensor x,
            Tensor y,
            Tensor dy,
            Tensor dx,
            Tensor gamma,
            Tensor beta,
            Tensor dGamma,
            Tensor dBeta,
            Tensor mean,
            Tensor variance) {
        /** Data of {@code type}; scale, shift, their gradients and the statistics float32, as in a mixed-precision model. */
        static Data allocate(Arena arena, DataType type, long rows, long c) {
            SplittableRandom random = new SplittableRandom(rows * 31 + c);
            Data d = new Data(
                    rows,
                    c,
                    filled(Tensor.allocate(arena, type, rows, c), random),
                    Tensor.allocate(arena, type, rows, c),
                    filled(Tensor.allocate(arena, type, rows, c), random),
                    Tensor.allocate(arena, type, rows, c),
                    filled(Tensor.allocate(arena, DataType.F32, c), random),
                    filled(Tensor.allocate(arena, DataType.F32, c), random),
                    Tensor.allocate(arena, DataType.F32, c),
                    Tensor.allocate(arena, DataType.F32, c),
                    Tensor.allocate(arena, DataType.F32, rows),
                    Tensor.allocate(arena, DataType.F32, rows));
            // the vector kernel: on the sweep's largest calls the scalar one took seconds of a short run
            try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(c), Backend.JAVA, 1)) {
                Op.TRAINING.run(norm, d);
            }
            return d;
        }

        private static Tensor filled(Tensor tensor, SplittableRandom random) {
            float[] values = new float[Math.toIntExact(tensor.elementCount())];
            for (int i = 0; i < values.length; i++) {
                values[i] = (float) random.nextDouble(-2, 2);
            }
            tensor.copyFrom(values);
            return tensor;
        }
    }

    /**
     * One point of the sweep: nanoseconds per call in Java and on oneDNN.
     *
     * @param call the call measured (inference, training, ...)
     * @param kind the model's kind it stands for, with its data type, as the profile names it ({@code f32.forward})
     * @param javaNanos the Java kernel's time on all cores (one thread below 2^19 elements)
     * @param oneThreadNanos oneDNN's time on one thread
     * @param allThreadsNanos oneDNN's time on all cores (on a machine of one core, on one thread)
     */
    record Point(
            String call,
            String kind,
            long rows,
            long c,
            double javaNanos,
            double oneThreadNanos,
            double allThreadsNanos) {
        long elements() {
            return rows * c;
        }

        /** Whether the kind is a forward one. */
        boolean forward() {
            return !kind.contains("backward");
        }

        /** oneDNN's time where it runs all cores from {@code threadsFrom} elements on, as {@code OneDnnKernel} does. */
        double oneDnnNanos(long threadsFrom) {
            return elements() >= threadsFrom && !(rows == 1 && forward()) ? allThreadsNanos : oneThreadNanos;
        }

        /** The fastest of the three. */
        double bestNanos() {
            return Math.min(javaNanos, Math.min(oneThreadNanos, allThreadsNanos));
        }

        /**
         * Whether AUTO sends a single row of any length to Java when the crossover is not 0: for every kind but
         * half-precision forward ones, whose oneDNN kernels are faster per element ({@code AutoModel}).
         */
        boolean singleRowsInJava() {
            return !(kind.startsWith("bf16.") || kind.startsWith("f16.")) || !forward();
        }
    }

    /**
     * A kind's crossovers.
     *
     * @param javaUpTo calls of up to this many elements run in Java, on rows shorter than {@link AutoProfile#WIDE_ROWS}
     * @param javaFrom and from this many on; {@link #NEVER} for none
     * @param oneDnnThreadsFrom the others run on oneDNN, on all cores from this many elements on; {@link #NEVER}: on one
     *     thread always
     * @param wideRowsJavaUpTo {@code javaUpTo} for calls on wider rows
     */
    record Crossovers(long javaUpTo, long javaFrom, long oneDnnThreadsFrom, long wideRowsJavaUpTo) {
        static final long NEVER = Long.MAX_VALUE;

        /** The same first crossover for every row length. */
        Crossovers(long javaUpTo, long javaFrom, long oneDnnThreadsFrom) {
            this(javaUpTo, javaFrom, oneDnnThreadsFrom, javaUpTo);
        }

        boolean java(Point p) {
            long upTo = AutoProfile.isWide(p.c()) ? wideRowsJavaUpTo : javaUpTo;
            return p.elements() <= upTo
                    || p.elements() >= javaFrom
                    || upTo > 0 && p.rows() == 1 && p.singleRowsInJava();
        }

        /** AUTO's time on {@code p}, routed by these crossovers. */
        double nanos(Point p) {
            return java(p) ? p.javaNanos() : p.oneDnnNanos(oneDnnThreadsFrom);
        }
    }

    @Override
    public Integer call() throws IOException {
        if (!(seconds > 0 && seconds <= 3600)) {
            throw new UsageException("--seconds takes a number of seconds in (0, 3600], got " + seconds);
        }
        long[] parsedWidths = parseWidths(widths);
        List<DataType> parsedTypes = parseTypes(types);
        if (maxElements < 1 || maxElements > 1L << 26) {
            throw new UsageException("--max-elements takes a count in [1, 2^26], got " + maxElements);
        }
        if (!OneDnn.isAvailable()) {
            throw new IllegalStateException("oneDNN cannot be loaded, so AUTO runs every call in Java and there is"
                    + " nothing to tune: " + OneDnn.loadFailure().orElseThrow().getMessage());
        }
        AutoProfile.Key key = AutoProfile.Key.thisMachine();
        Path file = AutoProfile.fileFor(dir != null ? dir : CacheFolder.root(), key);
        try { // before the sweep, not a minute later
            Files.createDirectories(file.getParent());
        } catch (FileAlreadyExistsException notAFolder) {
            throw new UsageException(
                    (dir != null ? "--dir " : "the cache folder ") + file.getParent() + " is not a directory");
        }
        ReplacedFile.create(file).close(); // a temporary file made and removed: the folder takes the profile
        long start = System.nanoTime();
        Sweep sweep = sweep(parsedWidths, parsedTypes, ProgressBar.onTerminal(main.err, "measurements"));
        List<Point> points = sweep.points();
        Map<String, Crossovers> crossovers = new LinkedHashMap<>();
        for (String kind : points.stream().map(Point::kind).distinct().toList()) {
            crossovers.put(
                    kind,
                    crossovers(
                            points.stream().filter(p -> p.kind().equals(kind)).toList()));
        }
        Map<String, Long> javaUpTo = new LinkedHashMap<>();
        Map<String, Long> javaFrom = new LinkedHashMap<>();
        Map<String, Long> threadsFrom = new LinkedHashMap<>();
        Map<String, Long> wideRows = new LinkedHashMap<>();
        boolean sweptWideRows = Arrays.stream(parsedWidths).anyMatch(AutoProfile::isWide);
        crossovers.forEach((kind, found) -> {
            javaUpTo.put(kind, found.javaUpTo());
            if (found.javaFrom() != Crossovers.NEVER) {
                javaFrom.put(kind, found.javaFrom());
            }
            threadsFrom.put(kind, found.oneDnnThreadsFrom());
            if (sweptWideRows) {
                wideRows.put(kind, found.wideRowsJavaUpTo());
            }
        });
        AutoProfile profile = new AutoProfile(key, Instant.now(), javaUpTo, javaFrom, threadsFrom, wideRows);
        profile.write(file);
        print(main.out, key, sweep, crossovers, file, (System.nanoTime() - start) / 1e9);
        return Main.OK;
    }

    private static long[] parseWidths(String text) {
        try {
            long[] parsed = Arrays.stream(text.split(",", -1)) // -1: "8,," has empty widths, refused
                    .mapToLong(w -> Long.parseLong(w.strip()))
                    .toArray();
            if (parsed.length == 0
                    || Arrays.stream(parsed).anyMatch(w -> w < 1 || w > 1 << 20)
                    || Arrays.stream(parsed).distinct().count() < parsed.length) {
                throw new NumberFormatException();
            }
            return parsed;
        } catch (NumberFormatException e) {
            throw new UsageException(
                    "--widths takes C[,C...] with row lengths in [1, 2^20], each once, got '" + text + "'");
        }
    }

    private static List<DataType> parseTypes(String text) {
        List<DataType> parsed = new ArrayList<>();
        for (String name : text.split(",", -1)) {
            DataType type = switch (name.strip()) {
                case "f32" -> DataType.F32;
                case "bf16" -> DataType.BF16;
                case "f16" -> DataType.F16;
                default -> null;
            };
            if (type == null || parsed.contains(type)) {
                throw new UsageException(
                        "--types takes T[,T...] with data types f32, bf16 or f16, each once, got '" + text + "'");
            }
            parsed.add(type);
        }
        return parsed;
    }

    /** A data type's name in a profile. */
    private static String profileName(DataType type) {
        return type.name().toLowerCase(Locale.ROOT);
    }

    /**
     * What the sweep measured: the points, and the kinds of which oneDNN could run no call on this CPU (float16 where
     * it lacks native float16, as on AMD's Zen 5), which AUTO runs in Java whatever a profile says.
     */
    private record Sweep(List<Point> points, Set<String> withoutOneDnn) {}

    /**
     * The sweep: twice over every call, width and row count (the second time in reverse order), keeping each
     * candidate's faster median of the two, so that a busy moment of the machine or a recompilation in one pass
     * does not decide; {@code progress} (may be null) counts measurements. Calls oneDNN cannot run are left out.
     */
    private Sweep sweep(long[] cs, List<DataType> dataTypes, Pipeline.Progress progress) {
        record Task(DataType type, Op op, long rows, long c) {}
        List<Task> tasks = new ArrayList<>();
        for (DataType type : dataTypes) {
            for (Op op : Op.values()) {
                for (long c : cs) {
                    for (long rows = 1; rows * c <= Math.max(maxElements, c); rows *= 2) {
                        tasks.add(new Task(type, op, rows, c));
                    }
                }
            }
        }
        int total = 2 * tasks.size();
        int cores = Runtime.getRuntime().availableProcessors();
        long start = System.nanoTime();
        long end = start + (long) (seconds * 1e9);
        if (!warmUp(cs, dataTypes, start + (long) (seconds * 0.2e9))) {
            main.err.println("panorm: warning: the Java kernels still ran interpreted after the warm-up, so this"
                    + " profile favours oneDNN; give tune more --seconds");
        }
        Map<Long, List<LayerNorm>> candidates = new LinkedHashMap<>(); // per width: Java, oneDNN 1t and all
        Map<Task, double[]> fastest = new LinkedHashMap<>();
        Set<Task> withoutOneDnn = new HashSet<>();
        try {
            for (long c : cs) {
                List<LayerNorm> norms = new ArrayList<>();
                candidates.put(c, norms);
                norms.add(LayerNorm.create(LayerNormConfig.of(c), Backend.JAVA, cores));
                norms.add(LayerNorm.create(LayerNormConfig.of(c), Backend.ONEDNN, 1));
                if (cores > 1) {
                    norms.add(LayerNorm.create(LayerNormConfig.of(c), Backend.ONEDNN, cores));
                }
            }
            int done = 0;
            for (int pass = 0; pass < 2; pass++) {
                for (Task task : pass == 0 ? tasks : tasks.reversed()) {
                    long budget = (end - System.nanoTime()) / (total - done);
                    // the second pass skips, without making its data, the calls oneDNN could not run in the first
                    try (Arena arena = Arena.ofConfined()) {
                        double[] nanos = withoutOneDnn.contains(task)
                                ? null
                                : time(
                                        task.op(),
                                        Data.allocate(arena, task.type(), task.rows(), task.c()),
                                        candidates.get(task.c()),
                                        budget);
                        if (nanos == null) {
                            withoutOneDnn.add(task);
                        } else {
                            fastest.merge(task, nanos, (a, b) -> {
                                for (int i = 0; i < a.length; i++) {
                                    a[i] = Math.min(a[i], b[i]);
                                }
                                return a;
                            });
                        }
                    }
                    done++;
                    if (progress != null) {
                        progress.update(done, total, System.nanoTime() - start);
                    }
                }
            }
        } finally {
            candidates.values().forEach(norms -> norms.forEach(LayerNorm::close));
        }
        List<Point> points = new ArrayList<>();
        fastest.forEach((task, nanos) -> points.add(new Point(
                task.op().name().toLowerCase(Locale.ROOT),
                profileName(task.type()) + "." + task.op().kind,
                task.rows(),
                task.c(),
                nanos[0],
                nanos[1],
                nanos.length > 2 ? nanos[2] : nanos[1])));
        Set<String> javaOnly = new TreeSet<>();
        withoutOneDnn.forEach(task -> javaOnly.add(profileName(task.type()) + "." + task.op().kind));
        points.forEach(p -> javaOnly.remove(p.kind()));
        return new Sweep(points, javaOnly);
    }

    /**
     * Runs the Java kernels until C2 has compiled them for every call, on 1 and 4 rows of every width (or until
     * {@code deadline}): interpreted, they are about a hundred times slower, and the first points would say
     * nothing about the compiled code AUTO runs. False if they were not compiled in time.
     */
    private static boolean warmUp(long[] cs, List<DataType> dataTypes, long deadline) {
        try (Arena arena = Arena.ofConfined()) { // the kind of memory the sweep uses: see KernelWarmup.warmUp
            List<Data> shapes = new ArrayList<>();
            for (DataType type : dataTypes) {
                for (long c : cs) {
                    shapes.add(Data.allocate(arena, type, 1, c));
                    shapes.add(Data.allocate(arena, type, 4, c));
                }
            }
            while (System.nanoTime() < deadline) {
                boolean compiled = true;
                for (Data data : shapes) {
                    try (LayerNorm java = LayerNorm.create(LayerNormConfig.of(data.c()), Backend.JAVA, 1)) {
                        for (Op op : Op.values()) {
                            long fastest = Long.MAX_VALUE;
                            for (int i = 0; i < 16; i++) {
                                long before = System.nanoTime();
                                op.run(java, data);
                                fastest = Math.min(fastest, System.nanoTime() - before);
                            }
                            compiled &= fastest <= COMPILED_NS_PER_ELEMENT * data.rows() * data.c() + COMPILED_NS_FIXED;
                        }
                    }
                }
                if (compiled) {
                    return true;
                }
            }
            return false;
        }
    }

    /**
     * The median nanoseconds per call of each candidate on {@code op}: batches of each in turn (so that a busy
     * moment of the machine falls on all of them), for about {@code budget} nanoseconds, at least 5 rounds; null
     * where oneDNN cannot run the call.
     */
    private static double[] time(Op op, Data data, List<LayerNorm> candidates, long budget) {
        int n = candidates.size();
        int[] batch = new int[n];
        for (int i = 0; i < n; i++) {
            LayerNorm norm = candidates.get(i);
            op.run(norm, data); // builds oneDNN's plan
            if (norm.lastBackend() != norm.backend()) {
                // oneDNN cannot run the call here (only its reference code): ONEDNN ran it in Java, and so will AUTO
                return null;
            }
            long before = System.nanoTime();
            op.run(norm, data);
            op.run(norm, data);
            long perCall = Math.max(1, (System.nanoTime() - before) / 2);
            batch[i] = Math.clamp(BATCH_NANOS / perCall, 1, 10_000);
        }
        List<List<Double>> samples = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            samples.add(new ArrayList<>());
        }
        long deadline = System.nanoTime() + budget;
        for (int round = 0; round < 5 || System.nanoTime() < deadline; round++) {
            for (int k = 0; k < n; k++) {
                int i = (k + round) % n;
                LayerNorm norm = candidates.get(i);
                long before = System.nanoTime();
                for (int j = 0; j < batch[i]; j++) {
                    op.run(norm, data);
                }
                samples.get(i).add((System.nanoTime() - before) / (double) batch[i]);
            }
        }
        double[] medians = new double[n];
        for (int i = 0; i < n; i++) {
            List<Double> sorted = samples.get(i).stream().sorted().toList();
            medians[i] = sorted.get(sorted.size() / 2);
        }
        return medians;
    }

    /**
     * The crossovers for one kind's points. First oneDNN's thread count ({@link #oneDnnThreadsFrom}); then, with it,
     * among 0 and the points' element counts for the first crossover (on narrow rows and on wide ones), and the larger
     * element counts for the second, the routing (as AUTO routes: Java up to the first and from the second on, and
     * single rows unless the first is 0) that makes the sum of (time / best time) over the points least. Ties go to no
     * second crossover, then to the same first crossover on both row classes, then to the smallest first and the largest
     * second. Where the points have rows of one class only, both classes get the same first crossover: the sweep says
     * nothing about the other. Deterministic for given points.
     */
    static Crossovers crossovers(List<Point> points) {
        long threadsFrom = oneDnnThreadsFrom(points);
        List<Long> sizes =
                points.stream().map(Point::elements).sorted().distinct().toList();
        List<Long> firsts = new ArrayList<>(List.of(0L));
        firsts.addAll(sizes);
        List<Long> wideSizes = new ArrayList<>(List.of(0L));
        points.stream()
                .filter(p -> AutoProfile.isWide(p.c()))
                .map(Point::elements)
                .sorted()
                .distinct()
                .forEach(wideSizes::add);
        boolean bothClasses = wideSizes.size() > 1 && points.stream().anyMatch(p -> !AutoProfile.isWide(p.c()));
        Crossovers best = null;
        double bestLoss = Double.POSITIVE_INFINITY;
        for (int pass = 0; pass < 2; pass++) { // without a second crossover first, so that ties keep none
            for (long first : firsts) {
                for (long second : pass == 0 ? List.of(Crossovers.NEVER) : sizes.reversed()) {
                    if (second <= first) {
                        continue;
                    }
                    List<Long> wides = new ArrayList<>(List.of(first)); // the same on wide rows first
                    if (bothClasses) {
                        wideSizes.stream().filter(size -> size != first).forEach(wides::add);
                    }
                    for (long wide : wides) {
                        Crossovers candidate = new Crossovers(first, second, threadsFrom, wide);
                        double loss =
                                Arrays.stream(slowdowns(points, candidate)).sum();
                        boolean unsplitTie = loss == bestLoss
                                && wide == first
                                && best.wideRowsJavaUpTo() != best.javaUpTo()
                                && second == best.javaFrom();
                        if (loss < bestLoss || unsplitTie) {
                            bestLoss = loss;
                            best = candidate;
                        }
                    }
                }
            }
        }
        return best;
    }

    /**
     * From how many elements on oneDNN should run all cores on one kind's points: among the points' element counts
     * and {@link Crossovers#NEVER}, the one that makes the sum over the points of (oneDNN's time / its time on the
     * faster thread count) least; ties go to the larger, fewer threads for the same time. Each point counts, whether
     * AUTO sends it to oneDNN or not: the thread count is oneDNN's, whatever the crossovers.
     */
    static long oneDnnThreadsFrom(List<Point> points) {
        List<Long> candidates = new ArrayList<>(
                points.stream().map(Point::elements).sorted().distinct().toList());
        candidates.add(Crossovers.NEVER);
        long best = Crossovers.NEVER;
        double bestLoss = Double.POSITIVE_INFINITY;
        for (long threadsFrom : candidates.reversed()) {
            double loss = points.stream()
                    .mapToDouble(p -> p.oneDnnNanos(threadsFrom) / Math.min(p.oneThreadNanos(), p.allThreadsNanos()))
                    .sum();
            if (loss < bestLoss) {
                bestLoss = loss;
                best = threadsFrom;
            }
        }
        return best;
    }

    /** Per point, AUTO's time over the best time if it routes with these crossovers (as AutoKernel does). */
    static double[] slowdowns(List<Point> points, Crossovers crossovers) {
        return points.stream()
                .mapToDouble(p -> crossovers.nanos(p) / p.bestNanos())
                .toArray();
    }

    private void print(
            PrintStream out,
            AutoProfile.Key key,
            Sweep sweep,
            Map<String, Crossovers> crossovers,
            Path file,
            double elapsed) {
        List<Point> points = sweep.points();
        if (verbose) {
            out.printf(
                    Locale.ROOT,
                    "%-13s %-19s %11s %12s %14s %14s %s%n",
                    "call",
                    "kind",
                    "rows x C",
                    "java us",
                    "onednn 1t us",
                    "onednn all us",
                    "fastest");
            for (Point p : points) {
                out.printf(
                        Locale.ROOT,
                        "%-13s %-19s %11s %12.2f %14.2f %14.2f %s%n",
                        p.call(),
                        p.kind(),
                        p.rows() + "x" + p.c(),
                        p.javaNanos() / 1e3,
                        p.oneThreadNanos() / 1e3,
                        p.allThreadsNanos() / 1e3,
                        p.javaNanos() == p.bestNanos()
                                ? "java"
                                : p.oneThreadNanos() == p.bestNanos() ? "onednn 1t" : "onednn all");
            }
            out.println();
        }
        out.println("machine  " + key);
        crossovers.forEach((kind, found) -> {
            double[] slowdowns =
                    slowdowns(points.stream().filter(p -> p.kind().equals(kind)).toList(), found);
            out.printf(
                    Locale.ROOT,
                    "%-19s Java up to %d elements per call%s, oneDNN above%s; oneDNN %s (time / best time over the"
                            + " sweep: mean %.3f, worst %.2f)%n",
                    kind,
                    found.javaUpTo(),
                    found.wideRowsJavaUpTo() == found.javaUpTo()
                            ? ""
                            : " (on rows of " + AutoProfile.WIDE_ROWS + " or more up to " + found.wideRowsJavaUpTo()
                                    + ")",
                    found.javaFrom() == Crossovers.NEVER ? "" : ", Java again from " + found.javaFrom(),
                    found.oneDnnThreadsFrom() == Crossovers.NEVER
                            ? "on one thread"
                            : "on all cores from " + found.oneDnnThreadsFrom() + " elements",
                    Arrays.stream(slowdowns).average().orElse(1),
                    Arrays.stream(slowdowns).max().orElse(1));
        });
        sweep.withoutOneDnn()
                .forEach(kind -> out.printf(
                        Locale.ROOT,
                        "%-19s oneDNN has only reference code for these calls on this CPU: AUTO runs them in Java%n",
                        kind));
        out.printf(
                Locale.ROOT, "profile  %s (%d points, each measured twice, in %.0f s)%n", file, points.size(), elapsed);
    }
}
