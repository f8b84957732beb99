package dev.panorm;

import dev.panorm.internal.cache.AutoProfile;
import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import java.util.function.ToLongBiFunction;

/**
 * {@link Backend#AUTO}'s cost model: for each kind of call and data type, the most elements a call may
 * have to run in the Java kernels; larger calls run on oneDNN, up to a second crossover from which Java takes
 * them again (where there is one). Both backends choose their own threads by size (oneDNN: one below {@link
 * OneDnnKernel#singleThreadBelow} elements, all above; Java: {@link RowSplitter}, from 2^19 elements), so
 * the first number says where oneDNN's path overtakes Java's, and the second where Java's split overtakes it
 * back: Java's float32 backward is faster than oneDNN's on equal threads at every size, but it splits a call
 * only from 2^19 elements, since a pool thread takes tens of microseconds to wake, while oneDNN's OpenMP
 * threads wait spinning.
 *
 * <p>The kinds differ in what oneDNN has to do. Where it runs one primitive (layer normalization's
 * forward and backward, and both directions with given statistics), its fixed cost per call makes Java
 * faster on small calls and its threads make it faster on large ones. Where it needs panorm's scalar
 * statistics first (RMS and precise forward) or three primitives (RMS backward), the Java kernel is
 * faster at every size measured, so those calls never go to oneDNN. The crossovers are measured
 * ({@code docs/benchmarks.md}, "AUTO's cost model") on an Intel Xeon (Sapphire Rapids class, AVX-512 with
 * AMX, 2 cores) and are the model built into panorm; on AMD CPUs oneDNN's thread counts, and the backward and bf16
 * forward crossovers, are those measured on an AMD EPYC (Zen 5, 2 cores), where a second thread costs more ({@link
 * OneDnnKernel#COSTLY_SECOND_THREAD}), and on AMD CPUs without AVX-512 (an EPYC Zen 3 measured) the float32 full
 * backward runs in Java at every size. On AMD's Zen 4 (an EPYC measured), where the second thread costs as on the Intel
 * machine, the Intel machine's thread counts and crossovers hold, but for backward for the input only, which runs in
 * Java at every size there as on every AMD CPU measured, and float32 backward and forward with given statistics on
 * rows narrower than {@link AutoProfile#WIDE_ROWS}, which go to oneDNN from 2^16 and 3 x 2^14 elements there.
 *
 * <p>The first crossover may differ for wide rows ({@link AutoProfile#WIDE_ROWS} elements or more): the Java kernel
 * pays a fixed cost per row and oneDNN one per call, so where rows are wide Java stays faster to larger calls. A call's
 * row length is its operation's, so the row class is chosen once per operation, off the hot path.
 *
 * <p>{@code panorm tune} measures them on the machine it runs on and writes an {@link AutoProfile}; AUTO uses the
 * profile that matches the machine, if there is one, in place of the built-in crossovers it names ({@link
 * #current()}), and in place of oneDNN's built-in thread counts ({@link OneDnnKernel#singleThreadBelow}) those it
 * names: from how many elements on the calls AUTO sends to oneDNN run on all cores.
 */
final class AutoModel {
    /** Kinds of call, by what oneDNN runs for them. */
    enum Kind {
        /** Layer normalization forward that computes the statistics (inference, training): one primitive. */
        FORWARD,
        /** Forward with the caller's statistics, layer or RMS: one primitive; one pass over the data in Java. */
        FORWARD_GLOBAL,
        /** RMS forward, and forward with precise statistics: panorm's scalar statistics, then a primitive. */
        FORWARD_COMPOSED,
        /**
         * Backward with gradients for scale and shift (statistics computed or given), layer normalization and RMS with
         * given statistics: one primitive.
         */
        BACKWARD,
        /**
         * The same for the input only (frozen parameters): one primitive, which costs oneDNN about what {@link
         * #BACKWARD} does while the Java kernel skips the parameters' sums, so Java wins more of these calls.
         */
        BACKWARD_DATA,
        /** RMS backward through the statistics: a row sum, layer-normalization backward, and a correction. */
        BACKWARD_COMPOSED;

        /** {@return this kind's name in a profile} */
        String profileName() {
            return name().toLowerCase(Locale.ROOT);
        }

        static Kind of(LayerNormConfig config, Pass pass) {
            if (pass.forward) {
                if (pass.globalStatistics) {
                    return FORWARD_GLOBAL;
                }
                return config.rms() || config.preciseStatistics() ? FORWARD_COMPOSED : FORWARD;
            }
            if (config.rms() && !pass.globalStatistics) {
                return BACKWARD_COMPOSED;
            }
            return pass.parameterGradients ? BACKWARD : BACKWARD_DATA;
        }
    }

    /** Sends every call of a kind to Java. */
    static final long ALWAYS_JAVA = Long.MAX_VALUE;
    /** Sends every call of a kind that oneDNN can take to oneDNN. */
    static final long NEVER_JAVA = 0;
    /** A second crossover ({@link #javaFrom}) that no call reaches. */
    static final long NEVER = Long.MAX_VALUE;
    /** {@code -Dpanorm.auto.javaUpTo}: every float32 crossover, or null. */
    private static final Long JAVA_UP_TO = Settings.wholeNumber("panorm.auto.javaUpTo");

    /**
     * The built-in model. float32: Java up to 2^15 elements for forward (one thread each; from there oneDNN
     * runs two, {@link OneDnnKernel#SINGLE_THREAD_BELOW}, and its JIT kernel is faster per element), up to 64 rows
     * of 768 with given statistics (16x4096 took 7.9 us in Java, 6.6 on oneDNN's two threads) and 128 rows of 768
     * for backward (Java is faster on one thread at every
     * size; oneDNN's second thread pays off from there), always
     * for the composed kinds, and backward for the input only again from 2^20 elements. Java's split on two
     * threads beats oneDNN's from about 2^20 (alone, 2048x1024: 575 against 756 us for the full backward, 461
     * against 810 for the input only), but a split that follows a oneDNN call finds oneDNN's OpenMP worker still
     * spinning on the other core, for milliseconds: in mixed order the full backward in Java again from 2^22 took
     * 8192x1024 after 2048x768 on oneDNN in 5.28 ms against 3.63, while backward for the input only, whose Java
     * kernel skips the parameters' sums, gained in every order measured (docs/benchmarks.md, "Java's split takes
     * parts as threads come");
     * single rows of any length in Java wherever Java takes some calls (oneDNN
     * splits work by rows, so one row gets one thread either way). bfloat16 and float16, which the Java
     * kernels compute in float32 and round (bf16 read in place, {@link Bf16Pairs}; f16 converted on the way,
     * {@link HeapRows}): always Java for the composed kinds, forward up to 32 rows of 768 and with given
     * statistics up to 16 (oneDNN's fixed cost per call; per element its half-precision kernel is faster, so no
     * long single rows), backward up to 2^16 elements and single rows of any length (Java's backward is faster per element
     * up to there), as {@code panorm tune} measured them on the machine named in docs/benchmarks.md. Wide rows
     * take the same crossovers, except on AMD (below). The system property {@code panorm.auto.javaUpTo} replaces
     * every float32 crossover, wide rows' too, with no second one (0: oneDNN whenever it can).
     */
    static final AutoModel BUILT_IN = builtIn(JAVA_UP_TO);

    /** Indexed by data type, then kind: for calls on rows shorter than {@link AutoProfile#WIDE_ROWS}. */
    private final long[][] javaUpTo;
    /** The same for calls on wide rows, indexed as {@link #javaUpTo}. */
    private final long[][] wideRowsJavaUpTo;
    /** Calls of at least this many elements run in Java again, indexed as {@link #javaUpTo}; {@link #NEVER}: none. */
    private final long[][] javaFrom;
    /**
     * oneDNN runs calls of at least this many elements on all cores, indexed as {@link #javaUpTo}; {@link
     * #BUILT_IN_THREADS}: as {@link OneDnnKernel#singleThreadBelow} says.
     */
    private final long[][] oneDnnThreadsFrom;

    private static final long BUILT_IN_THREADS = -1;

    private AutoModel(long[][] javaUpTo, long[][] wideRowsJavaUpTo, long[][] javaFrom, long[][] oneDnnThreadsFrom) {
        this.javaUpTo = javaUpTo;
        this.wideRowsJavaUpTo = wideRowsJavaUpTo;
        this.javaFrom = javaFrom;
        this.oneDnnThreadsFrom = oneDnnThreadsFrom;
    }

    /** The model AUTO uses: the built-in one, with the crossovers of this machine's profile if there is one. */
    static AutoModel current() {
        return Current.MODEL;
    }

    /** Looks the profile up once, when the first AUTO operation is created: never on a call's path. */
    private static final class Current {
        static final AutoModel MODEL =
                AutoProfile.inUse().map(used -> of(used.profile(), JAVA_UP_TO)).orElse(BUILT_IN);
    }

    static AutoModel builtIn(Long override) {
        return of(null, override);
    }

    /**
     * The built-in model with {@code profile}'s crossovers (null: none) in place of its own, then {@code override}
     * (null: none) for every float32 one, without second crossovers.
     */
    static AutoModel of(AutoProfile profile, Long override) {
        int types = DataType.values().length;
        int kinds = Kind.values().length;
        long[][] table = new long[types][kinds];
        long[][] from = new long[types][kinds];
        long[][] threadsFrom = new long[types][kinds];
        for (int type = 0; type < types; type++) {
            Arrays.fill(table[type], NEVER_JAVA);
            Arrays.fill(from[type], NEVER);
            Arrays.fill(threadsFrom[type], BUILT_IN_THREADS);
        }
        long[] f32 = table[DataType.F32.ordinal()];
        f32[Kind.FORWARD.ordinal()] = 1 << 15;
        f32[Kind.FORWARD_GLOBAL.ordinal()] = 3 << 14;
        f32[Kind.FORWARD_COMPOSED.ordinal()] = ALWAYS_JAVA;
        f32[Kind.BACKWARD.ordinal()] = 128 * 768;
        f32[Kind.BACKWARD_DATA.ordinal()] = 128 * 768;
        f32[Kind.BACKWARD_COMPOSED.ordinal()] = ALWAYS_JAVA;
        from[DataType.F32.ordinal()][Kind.BACKWARD_DATA.ordinal()] = 1 << 20;
        for (DataType half : new DataType[] {DataType.BF16, DataType.F16}) {
            long[] row = table[half.ordinal()];
            row[Kind.FORWARD.ordinal()] = 32 * 768;
            row[Kind.FORWARD_GLOBAL.ordinal()] = 16 * 768;
            row[Kind.FORWARD_COMPOSED.ordinal()] = ALWAYS_JAVA;
            row[Kind.BACKWARD.ordinal()] = 1 << 16;
            row[Kind.BACKWARD_DATA.ordinal()] = 1 << 16;
            row[Kind.BACKWARD_COMPOSED.ordinal()] = ALWAYS_JAVA;
        }
        if (OneDnnKernel.AMD) {
            // Backward for the input only in Java at every size, float32 and half precision alike: on the AMD EPYC
            // (Zen 5) measured Java on one thread beat oneDNN's two from 2^17 to 2^19 elements, its split beyond
            // (bf16 from 96 x 4096 to 1024 x 4096 alone: oneDNN 1.16 to 1.91 times Java's time; float16 has no
            // oneDNN code on that CPU); on the Zen 4 measured it took bf16's mean time over two panorm tune sweeps
            // from 1.07 and 1.09 of the best to 1.03 and 1.02 (docs/benchmarks.md, "Float32 backward on AMD: full up
            // to 2^17 elements in Java, for the input only always", "A fourth machine kind").
            for (DataType type : new DataType[] {DataType.F32, DataType.BF16, DataType.F16}) {
                table[type.ordinal()][Kind.BACKWARD_DATA.ordinal()] = ALWAYS_JAVA;
            }
        }
        if (OneDnnKernel.COSTLY_SECOND_THREAD) {
            // Where oneDNN's backward is slower than Java's on the AMD EPYC (Zen 5) measured, as AutoVsBest measured it
            // alone and in a transformer's cycle of shapes: the full backward up to 2^17 elements (32 x 4096 in Java:
            // 12 to 23% faster alone); half precision as panorm tune chose it.
            f32[Kind.BACKWARD.ordinal()] = 1 << 17;
            for (DataType half : new DataType[] {DataType.BF16, DataType.F16}) {
                table[half.ordinal()][Kind.BACKWARD.ordinal()] = 1 << 17;
            }
            // bf16 forward, since its rows are stored straight into y: Java beats oneDNN's one thread there up to
            // 64 rows of 768, and with given statistics up to 32 (docs/benchmarks.md, "bf16 forward stores its rows
            // directly").
            table[DataType.BF16.ordinal()][Kind.FORWARD.ordinal()] = 3 << 14;
            table[DataType.BF16.ordinal()][Kind.FORWARD_GLOBAL.ordinal()] = 3 << 13;
            if (!OneDnnKernel.Avx512.PRESENT) {
                // Without AVX-512 (Zen 3 measured) oneDNN's AVX2 backward loses to Java's beyond 2^17 elements too:
                // Java took 0.63 to 0.82 of oneDNN's best time on rows of 4096 and on 8192 x 1024, 0.99 to 1.13 on
                // 256 x 1024 and 2048 x 768 (docs/benchmarks.md, "Float32 backward on AMD without AVX-512").
                f32[Kind.BACKWARD.ordinal()] = ALWAYS_JAVA;
            }
        }
        long[][] wide = new long[types][];
        for (int type = 0; type < types; type++) {
            wide[type] = table[type].clone();
        }
        if (OneDnnKernel.COSTLY_SECOND_THREAD) {
            // float32 forward on wide rows: Java's one thread beats oneDNN's one up to where oneDNN starts its second
            // (16 x 4096 and 40 x 2048: 7 to 19% faster), while on rows of 768 oneDNN's one thread wins from 64 rows
            // (docs/benchmarks.md, "Wide rows").
            long[] f32Wide = wide[DataType.F32.ordinal()];
            f32Wide[Kind.FORWARD.ordinal()] = OneDnnKernel.singleThreadBelow(Pass.FORWARD_INFERENCE, DataType.F32) - 1;
            f32Wide[Kind.FORWARD_GLOBAL.ordinal()] =
                    OneDnnKernel.singleThreadBelow(Pass.FORWARD_GLOBAL, DataType.F32) - 1;
        } else if (OneDnnKernel.AMD) {
            // Zen 4, float32 on rows narrower than WIDE_ROWS: oneDNN overtakes Java earlier than on the Intel machine.
            // Counted over every AutoVsBest run of the shape in one session, oneDNN's two threads against Java's one:
            // backward 96 x 768 faster in 6 of 6 runs (by 15 to 30%), 128 x 768 in 10 of 14, 64 x 1024 in 5 of 7,
            // 80 x 768 in 4 of 7; with given statistics oneDNN took 64 x 768 in 6 of 6 (by 12 to 33%) and Java 32 x 768
            // in 6 of 6 (docs/benchmarks.md, "Zen 4's narrow rows").
            f32[Kind.BACKWARD.ordinal()] = (1 << 16) - 1;
            f32[Kind.FORWARD_GLOBAL.ordinal()] = (3 << 14) - 1;
        }
        if (profile != null) {
            // A profile names both crossovers of each kind it measured (NEVER: no second one), and the wide rows'
            // where its sweep had some (else they take the kind's).
            for (Map.Entry<String, Long> entry : profile.javaUpTo().entrySet()) {
                int[] at = typeAndKind(entry.getKey());
                table[at[0]][at[1]] = entry.getValue();
                wide[at[0]][at[1]] = profile.wideRowsJavaUpTo().getOrDefault(entry.getKey(), entry.getValue());
                from[at[0]][at[1]] = profile.javaFrom().getOrDefault(entry.getKey(), NEVER);
            }
            for (Map.Entry<String, Long> entry : profile.oneDnnThreadsFrom().entrySet()) {
                int[] at = typeAndKind(entry.getKey());
                threadsFrom[at[0]][at[1]] = entry.getValue();
            }
        }
        if (override != null) {
            Arrays.fill(f32, override);
            Arrays.fill(wide[DataType.F32.ordinal()], override);
            Arrays.fill(from[DataType.F32.ordinal()], NEVER);
        }
        return new AutoModel(table, wide, from, threadsFrom);
    }

    /** The data type's and the kind's ordinals that a profile's {@code <type>.<kind>} names. */
    private static int[] typeAndKind(String name) {
        String[] parts = name.split("\\.");
        return new int[] {
            DataType.valueOf(parts[0].toUpperCase(Locale.ROOT)).ordinal(),
            Kind.valueOf(parts[1].toUpperCase(Locale.ROOT)).ordinal()
        };
    }

    /**
     * Calls of {@code kind} whose data is of {@code type}, on rows shorter than {@link AutoProfile#WIDE_ROWS}, run in
     * Java up to this many elements.
     */
    long javaUpTo(Kind kind, DataType type) {
        return javaUpTo[type.ordinal()][kind.ordinal()];
    }

    /** The same on rows of at least {@link AutoProfile#WIDE_ROWS} elements. */
    long wideRowsJavaUpTo(Kind kind, DataType type) {
        return wideRowsJavaUpTo[type.ordinal()][kind.ordinal()];
    }

    /** {@link #javaUpTo} or {@link #wideRowsJavaUpTo}, as {@code rowLength} says. */
    private long javaUpTo(Kind kind, DataType type, long rowLength) {
        return AutoProfile.isWide(rowLength) ? wideRowsJavaUpTo(kind, type) : javaUpTo(kind, type);
    }

    /** And again from this many elements on ({@link #NEVER}: no second crossover). */
    long javaFrom(Kind kind, DataType type) {
        return javaFrom[type.ordinal()][kind.ordinal()];
    }

    /**
     * Whether calls of {@code kind} on {@code type} that are a single row of {@code rowLength} run in Java, whatever
     * their length: float32 wherever Java takes some calls on such rows, half precision backward only.
     */
    boolean singleRowsInJava(Kind kind, DataType type, long rowLength) {
        boolean javaTakesSome = javaUpTo(kind, type, rowLength) > 0;
        return type == DataType.F32
                ? javaTakesSome
                : javaTakesSome && (kind == Kind.BACKWARD || kind == Kind.BACKWARD_DATA);
    }

    /** The first crossovers for {@code config}, indexed by data type and then pass, for the hot path. */
    long[][] byPass(LayerNormConfig config) {
        // On rows too long for oneDNN's own statistics it would add a scalar pass for them, as for precise ones,
        // which never wins: such passes run in Java.
        return byPass(
                config,
                (kind, type) -> OneDnnPlan.longRows(config)
                                && !config.rms()
                                && (kind == Kind.FORWARD || kind == Kind.FORWARD_COMPOSED)
                        ? ALWAYS_JAVA
                        : javaUpTo(kind, type, config.normalizedSize()));
    }

    /** The second crossovers ({@link #javaFrom}), indexed as {@link #byPass}. */
    long[][] javaFromByPass(LayerNormConfig config) {
        return byPass(config, this::javaFrom);
    }

    private static long[][] byPass(LayerNormConfig config, ToLongBiFunction<Kind, DataType> of) {
        long[][] table = new long[DataType.values().length][Pass.values().length];
        for (DataType type : DataType.values()) {
            for (Pass pass : Pass.values()) {
                table[type.ordinal()][pass.ordinal()] = of.applyAsLong(Kind.of(config, pass), type);
            }
        }
        return table;
    }

    /**
     * For {@code config}, indexed as {@link #byPass}: the calls AUTO sends to oneDNN run on one thread below this many
     * elements and on all cores from there (a forward call on one row always on one), as the profile says or else
     * as {@link OneDnnKernel#singleThreadBelow} does.
     */
    long[][] oneDnnSingleThreadBelowByPass(LayerNormConfig config) {
        long[][] table = new long[DataType.values().length][Pass.values().length];
        for (DataType type : DataType.values()) {
            for (Pass pass : Pass.values()) {
                long tuned =
                        oneDnnThreadsFrom[type.ordinal()][Kind.of(config, pass).ordinal()];
                table[type.ordinal()][pass.ordinal()] =
                        tuned == BUILT_IN_THREADS ? OneDnnKernel.singleThreadBelow(pass, type) : tuned;
            }
        }
        return table;
    }

    /** {@link #singleRowsInJava} for {@code config}, indexed as {@link #byPass}. */
    boolean[][] singleRowsByPass(LayerNormConfig config) {
        boolean[][] table = new boolean[DataType.values().length][Pass.values().length];
        for (DataType type : DataType.values()) {
            for (Pass pass : Pass.values()) {
                table[type.ordinal()][pass.ordinal()] =
                        singleRowsInJava(Kind.of(config, pass), type, config.normalizedSize());
            }
        }
        return table;
    }
}
