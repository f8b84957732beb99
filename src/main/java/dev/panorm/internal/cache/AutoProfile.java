package dev.panorm.internal.cache;

import dev.panorm.OneDnn;
import dev.panorm.internal.io.ReplacedFile;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.time.temporal.ChronoUnit;
import java.util.Collections;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.function.Consumer;

/**
 * One machine's crossovers for {@code Backend.AUTO}, as {@code panorm tune} measures them: per data type and
 * kind of call, the most elements a call may have to run in the Java kernels, and from how many elements on
 * oneDNN runs it on all cores rather than one. A profile records the machine
 * it was measured on ({@link Key}); AUTO uses it only on a machine with the same key, and its built-in model
 * otherwise. Public for the module's own packages (AUTO's model, the command line) only: this package is not
 * exported.
 *
 * <p>The file is a properties file written in a fixed order, e.g.
 *
 * <pre>{@code
 * format=4
 * cpu=Intel(R) Xeon(R) Platinum 8488C
 * cores=2
 * java=25+36-LTS
 * onednn=3.8.1
 * tuned=2026-11-30T20:41:07Z
 * f32.forward=12288
 * f32.forward.wide_rows=65536
 * f32.forward.onednn_threads_from=32768
 * f32.backward=98304
 * f32.backward.java_from=1048576
 * f32.backward.onednn_threads_from=32768
 * }</pre>
 *
 * <p>Format 1, from before second crossovers, is read as a profile without them; formats 1 and 2, from before
 * oneDNN's thread counts, as a profile without those; formats 1 to 3, from before crossovers for wide rows, as a
 * profile without those.
 *
 * @param key the machine the crossovers were measured on
 * @param tuned when
 * @param javaUpTo crossovers by {@code <data type>.<kind>} (names from {@link #DATA_TYPES} and {@link #KINDS}):
 *     calls of up to this many elements run in Java; {@link Long#MAX_VALUE} for all of them
 * @param javaFrom second crossovers, named as in {@code javaUpTo} (kinds without one are absent): calls of at least
 *     this many elements run in Java again; in the file as {@code <data type>.<kind>.java_from}
 * @param oneDnnThreadsFrom named as in {@code javaUpTo} (kinds not measured are absent): calls that AUTO sends to
 *     oneDNN run on all cores from this many elements on, on one thread below ({@link Long#MAX_VALUE}: always one);
 *     in the file as {@code <data type>.<kind>.onednn_threads_from}
 * @param wideRowsJavaUpTo named as in {@code javaUpTo} (kinds whose sweep had no rows of {@link #WIDE_ROWS} elements
 *     or more are absent): calls on rows of at least {@link #WIDE_ROWS} elements run in Java up to this many elements,
 *     in place of the kind's {@code javaUpTo}; in the file as {@code <data type>.<kind>.wide_rows}
 */
public record AutoProfile(
        Key key,
        Instant tuned,
        Map<String, Long> javaUpTo,
        Map<String, Long> javaFrom,
        Map<String, Long> oneDnnThreadsFrom,
        Map<String, Long> wideRowsJavaUpTo) {
    /** The system property: {@code none} for the built-in model, or a profile file to use instead of the cached one. */
    public static final String PROPERTY = "panorm.auto.profile";
    /** The environment variable read when {@link #PROPERTY} is not set. */
    public static final String ENV = "PANORM_AUTO_PROFILE";
    /** The CPU the built-in model was measured on (docs/benchmarks.md, "AUTO's cost model"). */
    public static final String BUILT_IN_MEASURED_ON =
            "Intel Xeon (Sapphire Rapids class, AVX-512 with AMX), and for oneDNN's thread counts and some crossovers"
                    + " on AMD CPUs AMD EPYC (Zen 5), for float32 backward on AMD CPUs without AVX-512 AMD EPYC (Zen 3),"
                    + " for AMD's Zen 4 (Intel's thread counts and crossovers, backward for the input only in Java,"
                    + " float32 backward and forward with given statistics on rows narrower than 2048 sooner on"
                    + " oneDNN) AMD EPYC (Zen 4); 2 cores, JDK 25, oneDNN 3.8.1";
    /** The kinds of call AUTO's model has, by the names a profile uses (the model's kinds, lower case). */
    public static final List<String> KINDS =
            List.of("forward", "forward_global", "forward_composed", "backward", "backward_data", "backward_composed");
    /** The data types a profile may name (panorm's floating-point types, lower case). */
    public static final List<String> DATA_TYPES = List.of("f32", "bf16", "f16");
    /**
     * Rows of at least this many elements are wide: a profile may give them a crossover of their own. The Java kernel
     * pays a fixed cost per row (its reductions), oneDNN one per call, so on wide rows Java stays faster to larger
     * calls: on the AMD EPYC (Zen 5) measured, float32 forward on rows of 2048 and 4096 up to about three times the
     * elements it is faster on with rows of 768 (docs/benchmarks.md, "Wide rows").
     */
    public static final long WIDE_ROWS = 2048;

    /** {@return whether rows of {@code rowLength} elements are wide ({@link #WIDE_ROWS})} */
    public static boolean isWide(long rowLength) {
        return rowLength >= WIDE_ROWS;
    }

    private static final String FORMAT = "4";
    /** The most bytes a profile may have: panorm writes a few kilobytes. */
    static final int MAX_BYTES = 1 << 20;

    private static final String SECOND_CROSSOVER = ".java_from";
    private static final String THREADS_FROM = ".onednn_threads_from";
    private static final String WIDE = ".wide_rows";
    /** The suffixes that formats 2, 3 and 4 added, in that order. */
    private static final List<String> SUFFIXES = List.of(SECOND_CROSSOVER, THREADS_FROM, WIDE);

    private static final List<String> HEADER = List.of("format", "cpu", "cores", "java", "onednn", "tuned");
    private static final System.Logger LOG = System.getLogger("dev.panorm");

    /**
     * What a profile is valid for: the same CPU model, core count, JDK and oneDNN.
     *
     * @param cpu the CPU model, as /proc/cpuinfo names it
     * @param cores {@link Runtime#availableProcessors()}
     * @param java {@link Runtime#version()}
     * @param onednn oneDNN's version, or {@code unavailable}
     */
    public record Key(String cpu, int cores, String java, String onednn) {
        /** {@return the key of the running machine and JVM} Loads oneDNN if it is not loaded yet. */
        public static Key thisMachine() {
            return new Key(
                    cpuModel(),
                    Runtime.getRuntime().availableProcessors(),
                    Runtime.version().toString(),
                    OneDnn.isAvailable() ? OneDnn.version() : "unavailable");
        }

        /** {@return the CPU's vendor, as /proc/cpuinfo names it (e.g. {@code AuthenticAMD}), or an empty string} */
        public static String cpuVendor() {
            String vendor = cpuInfo("vendor_id");
            return vendor != null ? vendor : "";
        }

        /** {@return whether the first CPU's flags in /proc/cpuinfo name {@code flag} (e.g. {@code avx512f})} */
        public static boolean cpuHasFlag(String flag) {
            String flags = cpuInfo("flags");
            return flags != null && (" " + flags + " ").contains(" " + flag + " ");
        }

        /** {@return the first CPU's family number in /proc/cpuinfo (e.g. 25 for AMD's Zen 3 and Zen 4), or -1} */
        public static int cpuFamily() {
            String family = cpuInfo("cpu family");
            try {
                return family != null ? Integer.parseInt(family) : -1;
            } catch (NumberFormatException e) {
                return -1;
            }
        }

        private static String cpuModel() {
            String model = cpuInfo("model name");
            return model != null ? model : unknownCpu();
        }

        /**
         * {@return the first CPU's {@code field} in /proc/cpuinfo, or null where there is none} A plain loop: the first
         * oneDNN kernel of a process asks for the vendor, and a stream with lambdas cost that first call 10 to 15 ms of
         * class loading and linking.
         */
        private static String cpuInfo(String field) {
            try (BufferedReader lines = Files.newBufferedReader(Path.of("/proc/cpuinfo"))) {
                for (String line = lines.readLine(); line != null; line = lines.readLine()) {
                    int colon = line.indexOf(':');
                    if (colon > 0 && line.startsWith(field)) {
                        return line.substring(colon + 1).strip();
                    }
                }
                return null;
            } catch (IOException e) {
                return null;
            }
        }

        private static String unknownCpu() {
            return "unknown " + System.getProperty("os.arch") + " CPU";
        }

        /** {@return e.g. {@code Intel(R) Xeon(R) Platinum 8488C, 2 cores, JDK 25+36-LTS, oneDNN 3.8.1}} */
        @Override
        public String toString() {
            return cpu + ", " + cores + " cores, JDK " + java + ", oneDNN " + onednn;
        }
    }

    /** A profile without second crossovers or thread counts. */
    public AutoProfile(Key key, Instant tuned, Map<String, Long> javaUpTo) {
        this(key, tuned, javaUpTo, Map.of());
    }

    /** A profile without thread counts. */
    public AutoProfile(Key key, Instant tuned, Map<String, Long> javaUpTo, Map<String, Long> javaFrom) {
        this(key, tuned, javaUpTo, javaFrom, Map.of());
    }

    /** A profile without crossovers for wide rows. */
    public AutoProfile(
            Key key,
            Instant tuned,
            Map<String, Long> javaUpTo,
            Map<String, Long> javaFrom,
            Map<String, Long> oneDnnThreadsFrom) {
        this(key, tuned, javaUpTo, javaFrom, oneDnnThreadsFrom, Map.of());
    }

    /**
     * Checks the crossovers' names and values (a second crossover above its kind's first), and keeps them in a fixed
     * order (by data type, then kind).
     */
    public AutoProfile {
        for (Map.Entry<String, Long> entry : javaUpTo.entrySet()) {
            check(entry.getKey(), entry.getValue(), "crossover");
        }
        for (Map.Entry<String, Long> entry : javaFrom.entrySet()) {
            String name = entry.getKey();
            check(name, entry.getValue(), "second crossover");
            Long first = javaUpTo.get(name);
            if (first == null || entry.getValue() <= first) {
                throw new IllegalArgumentException("second crossover " + name + " must be above its first ("
                        + (first == null ? "none given" : first) + "), got " + entry.getValue());
            }
        }
        for (Map.Entry<String, Long> entry : oneDnnThreadsFrom.entrySet()) {
            check(entry.getKey(), entry.getValue(), "oneDNN thread crossover");
        }
        for (Map.Entry<String, Long> entry : wideRowsJavaUpTo.entrySet()) {
            String name = entry.getKey();
            check(name, entry.getValue(), "wide-row crossover");
            if (!javaUpTo.containsKey(name)) {
                throw new IllegalArgumentException("wide-row crossover " + name + " needs its kind's crossover");
            }
        }
        javaUpTo = ordered(javaUpTo);
        javaFrom = ordered(javaFrom);
        oneDnnThreadsFrom = ordered(oneDnnThreadsFrom);
        wideRowsJavaUpTo = ordered(wideRowsJavaUpTo);
        tuned = tuned.truncatedTo(ChronoUnit.SECONDS);
    }

    private static void check(String name, long elements, String what) {
        if (order(name) < 0) {
            throw new IllegalArgumentException("unknown " + what + " '" + name + "'; expected <type>.<kind>"
                    + " with a type of " + DATA_TYPES + " and a kind of " + KINDS);
        }
        if (elements < 0) {
            throw new IllegalArgumentException(what + " " + name + " must not be negative, got " + elements);
        }
    }

    private static Map<String, Long> ordered(Map<String, Long> crossovers) {
        Map<String, Long> ordered = new LinkedHashMap<>();
        crossovers.entrySet().stream()
                .sorted(Comparator.comparingInt(entry -> order(entry.getKey())))
                .forEach(entry -> ordered.put(entry.getKey(), entry.getValue()));
        return Collections.unmodifiableMap(ordered);
    }

    /** The position of a crossover's name in the file, or -1 if it names no data type and kind. */
    private static int order(String name) {
        int dot = name.indexOf('.');
        int type = dot < 0 ? -1 : DATA_TYPES.indexOf(name.substring(0, dot));
        int kind = dot < 0 ? -1 : KINDS.indexOf(name.substring(dot + 1));
        return type < 0 || kind < 0 ? -1 : type * KINDS.size() + kind;
    }

    /** {@return where the profile for {@code key} lives in {@code folder}: one file per key, so machines can share a home} */
    public static Path fileFor(Path folder, Key key) {
        try {
            byte[] digest =
                    MessageDigest.getInstance("SHA-256").digest(key.toString().getBytes(StandardCharsets.UTF_8));
            return folder.resolve("auto-" + HexFormat.of().formatHex(digest, 0, 8) + ".properties");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JDK", e);
        }
    }

    /**
     * Writes this profile to {@code file}, creating its folder: to a temporary file first, renamed into place,
     * so that a reader never sees half a profile.
     *
     * @throws IOException if it cannot be written
     */
    public void write(Path file) throws IOException {
        StringBuilder text = new StringBuilder(
                "# panorm AUTO profile, written by panorm tune: calls of up to this many elements run in Java, and"
                        + " from java_from on again (on rows of " + WIDE_ROWS + " elements or more up to wide_rows);"
                        + " oneDNN runs all cores from onednn_threads_from on\n");
        line(text, "format", FORMAT);
        line(text, "cpu", key.cpu());
        line(text, "cores", Integer.toString(key.cores()));
        line(text, "java", key.java());
        line(text, "onednn", key.onednn());
        line(text, "tuned", tuned.toString());
        javaUpTo.forEach((name, elements) -> {
            line(text, name, Long.toString(elements));
            if (wideRowsJavaUpTo.containsKey(name)) {
                line(text, name + WIDE, Long.toString(wideRowsJavaUpTo.get(name)));
            }
            if (javaFrom.containsKey(name)) {
                line(text, name + SECOND_CROSSOVER, Long.toString(javaFrom.get(name)));
            }
            if (oneDnnThreadsFrom.containsKey(name)) {
                line(text, name + THREADS_FROM, Long.toString(oneDnnThreadsFrom.get(name)));
            }
        });
        oneDnnThreadsFrom.forEach((name, elements) -> { // those of kinds without crossovers
            if (!javaUpTo.containsKey(name)) {
                line(text, name + THREADS_FROM, Long.toString(elements));
            }
        });
        Path folder = file.toAbsolutePath().getParent();
        Files.createDirectories(folder);
        ReplacedFile.write(file, text.toString().getBytes(StandardCharsets.UTF_8));
    }

    private static void line(StringBuilder text, String name, String value) {
        // Properties escapes: a backslash, and a leading space that load would strip; no line breaks.
        String escaped = value.replace("\\", "\\\\").replaceAll("[\\r\\n]", " ");
        text.append(name)
                .append('=')
                .append(escaped.startsWith(" ") ? "\\" + escaped : escaped)
                .append('\n');
    }

    /**
     * Reads a profile.
     *
     * @throws IOException if it cannot be read, or is not a profile of this format (the message says why)
     */
    public static AutoProfile read(Path file) throws IOException {
        Properties properties = new Properties() {
            @Override
            public synchronized Object put(Object name, Object value) { // load() puts each line: the last would win
                if (containsKey(name)) {
                    throw new IllegalArgumentException(name + " is given twice");
                }
                return super.put(name, value);
            }
        };
        try {
            String text = readBounded(file);
            properties.load(new StringReader(text.startsWith("\uFEFF") ? text.substring(1) : text)); // an editor's BOM
        } catch (IOException e) {
            throw new IOException("cannot read the profile " + file + ": " + e, e);
        } catch (IllegalArgumentException e) { // a malformed Unicode escape, a name given twice
            throw new IOException(file + " is not a panorm profile: " + e.getMessage(), e);
        }
        try {
            String format = required(properties, "format");
            int version = List.of("1", "2", "3", FORMAT).indexOf(format) + 1;
            if (version == 0) {
                throw new IllegalArgumentException("format must be 1, 2, 3 or " + FORMAT + ", got '" + format + "'");
            }
            Key key = new Key(
                    required(properties, "cpu"),
                    Math.toIntExact(number(properties, "cores")),
                    required(properties, "java"),
                    required(properties, "onednn"));
            Instant tuned = instant(properties, "tuned");
            Map<String, Long> javaUpTo = new LinkedHashMap<>();
            Map<String, Long> javaFrom = new LinkedHashMap<>();
            Map<String, Long> threadsFrom = new LinkedHashMap<>();
            Map<String, Long> wide = new LinkedHashMap<>();
            for (String name : properties.stringPropertyNames()) {
                if (HEADER.contains(name)) {
                    continue;
                }
                long elements = number(properties, name);
                Map<String, Long> into = javaUpTo;
                String kind = name;
                for (int i = 0; i < SUFFIXES.size(); i++) {
                    String suffix = SUFFIXES.get(i);
                    if (name.endsWith(suffix)) {
                        if (version < i + 2) {
                            throw new IllegalArgumentException(
                                    name + " needs format " + (i + 2) + " or later; the file is format " + version);
                        }
                        into = List.of(javaFrom, threadsFrom, wide).get(i);
                        kind = name.substring(0, name.length() - suffix.length());
                    }
                }
                into.put(kind, elements);
            }
            return new AutoProfile(key, tuned, javaUpTo, javaFrom, threadsFrom, wide);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + " is not a panorm profile: " + e.getMessage(), e);
        }
    }

    /**
     * The file's text, read only where it is a regular file of at most {@link #MAX_BYTES}: a FIFO would block the
     * process's first AUTO operation, and {@code /dev/zero} or a huge file fill its heap.
     */
    private static String readBounded(Path file) throws IOException {
        if (Files.exists(file) && !Files.isRegularFile(file)) {
            throw new IOException("not a regular file");
        }
        try (InputStream in = Files.newInputStream(file)) {
            byte[] bytes = in.readNBytes(MAX_BYTES + 1);
            if (bytes.length > MAX_BYTES) {
                throw new IOException("larger than " + MAX_BYTES / 1024 + " KiB, which no profile is");
            }
            return new String(bytes, StandardCharsets.UTF_8);
        }
    }

    /** {@code name}'s value, an instant as {@link Instant#toString()} writes it. */
    private static Instant instant(Properties properties, String name) {
        String value = required(properties, name);
        try {
            return Instant.parse(value);
        } catch (DateTimeParseException e) {
            throw new IllegalArgumentException(
                    name + " must be an instant such as 2026-12-04T05:00:00Z, got '" + value + "'");
        }
    }

    /** {@code name}'s value, a whole number. */
    private static long number(Properties properties, String name) {
        String value = required(properties, name);
        try {
            return Long.parseLong(value);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " must be a whole number, got '" + value + "'");
        }
    }

    private static String required(Properties properties, String name) {
        String value = properties.getProperty(name);
        if (value == null || value.isBlank()) {
            throw new IllegalArgumentException("no " + name);
        }
        return value.strip();
    }

    /**
     * Where AUTO's crossovers come from in this process.
     *
     * @param file the profile's file
     * @param profile the profile
     */
    public record InUse(Path file, AutoProfile profile) {}

    private static final class Holder {
        static final Optional<InUse> IN_USE = lookUp();

        private static Optional<InUse> lookUp() {
            try {
                return AutoProfile.lookUp(setting(), CacheFolder.root(), Key.thisMachine(), AutoProfile::warn);
            } catch (RuntimeException e) { // no cache folder (no user.home), an odd /proc: never the caller's problem
                warn("cannot look for a profile: " + e);
                return Optional.empty();
            }
        }
    }

    private static String setting() {
        String setting = System.getProperty(PROPERTY);
        return setting == null || setting.isBlank() ? System.getenv(ENV) : setting;
    }

    /**
     * {@return the profile AUTO uses in this process, if any} Looked up once, on first use: {@link #PROPERTY}
     * ({@code none}, or a file), else the file for this machine's key in {@link CacheFolder#root()}. A profile
     * that cannot be read, is malformed, or was measured on another machine is ignored with one warning.
     */
    public static Optional<InUse> inUse() {
        return Holder.IN_USE;
    }

    /** {@return what {@link #inUse()} says, for {@code panorm info}} */
    public static String describeInUse() {
        return inUse().map(used ->
                        "profile " + used.file() + " (tuned " + used.profile().tuned() + ")")
                .orElse("built-in (measured on " + BUILT_IN_MEASURED_ON + ")");
    }

    /**
     * The lookup behind {@link #inUse()}: {@code setting} is {@link #PROPERTY}'s value (null: unset); without
     * one, a missing file in {@code folder} means the built-in model, silently. Says why it ignores a profile
     * to {@code warn}, once.
     */
    static Optional<InUse> lookUp(String setting, Path folder, Key here, Consumer<String> warn) {
        if (setting != null && setting.strip().toLowerCase(Locale.ROOT).equals("none")) {
            return Optional.empty();
        }
        boolean named = setting != null && !setting.isBlank();
        Path file = named ? Path.of(setting.strip()).toAbsolutePath() : fileFor(folder, here);
        if (!named && !Files.exists(file)) {
            return Optional.empty();
        }
        try {
            AutoProfile profile = read(file);
            if (!profile.key().equals(here)) {
                warn.accept("the profile " + file + " was measured on " + profile.key() + ", not on this machine ("
                        + here + ")");
                return Optional.empty();
            }
            return Optional.of(new InUse(file, profile));
        } catch (IOException | RuntimeException e) {
            warn.accept(e instanceof IOException ? e.getMessage() : "cannot use the profile " + file + ": " + e);
            return Optional.empty();
        }
    }

    private static void warn(String why) {
        LOG.log(System.Logger.Level.WARNING, "panorm: " + why + "; AUTO uses its built-in model");
    }
}
