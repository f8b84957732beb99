package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panorm.internal.cache.AutoProfile;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** AUTO's model with a profile from {@code panorm tune}: the crossovers it names, and the calls they route. */
class AutoModelTest {
    private static final int C = 64;
    /** The profile's forward crossover: 8 rows of 64 run in Java, 9 on oneDNN (the built-in model: both in Java). */
    private static final long CROSSOVER = 8 * C;

    @TempDir
    Path temp;

    private static AutoProfile profile(AutoProfile.Key key) {
        return new AutoProfile(key, Instant.parse("2026-11-30T20:00:00Z"), Map.of("f32.forward", CROSSOVER));
    }

    @Test
    void aProfileNamesTheModelsKindsAndTypes() {
        assertEquals(
                AutoProfile.KINDS,
                Arrays.stream(AutoModel.Kind.values())
                        .map(AutoModel.Kind::profileName)
                        .toList());
        for (String type : AutoProfile.DATA_TYPES) {
            assertTrue(DataType.valueOf(type.toUpperCase(java.util.Locale.ROOT)).isFloatingPoint(), type);
        }
    }

    @Test
    void aProfileReplacesTheCrossoversItNamesOnly() {
        AutoModel model = AutoModel.of(profile(AutoProfile.Key.thisMachine()), null);
        for (AutoModel.Kind kind : AutoModel.Kind.values()) {
            for (DataType type : DataType.values()) {
                long expected = kind == AutoModel.Kind.FORWARD && type == DataType.F32
                        ? CROSSOVER
                        : AutoModel.BUILT_IN.javaUpTo(kind, type);
                assertEquals(expected, model.javaUpTo(kind, type), kind + " " + type);
            }
        }
        AutoModel overridden = AutoModel.of(profile(AutoProfile.Key.thisMachine()), 5L); // -Dpanorm.auto.javaUpTo wins
        for (AutoModel.Kind kind : AutoModel.Kind.values()) {
            assertEquals(5, overridden.javaUpTo(kind, DataType.F32), kind.name());
            assertEquals(5, overridden.wideRowsJavaUpTo(kind, DataType.F32), kind.name());
        }
    }

    /**
     * Wide rows take the kind's crossover unless a profile names theirs, or, built in, on AMD CPUs other than Zen 4 for
     * float32 forward calls and on Zen 4 for float32 backward and forward with given statistics, where the Java kernel
     * was measured faster to larger calls on wide rows than on rows of 768.
     */
    @Test
    void wideRowsHaveACrossoverOfTheirOwn() {
        for (AutoModel.Kind kind : AutoModel.Kind.values()) {
            for (DataType type : DataType.values()) {
                boolean amdWide = OneDnnKernel.COSTLY_SECOND_THREAD
                                && type == DataType.F32
                                && (kind == AutoModel.Kind.FORWARD || kind == AutoModel.Kind.FORWARD_GLOBAL)
                        || OneDnnKernel.AMD
                                && !OneDnnKernel.COSTLY_SECOND_THREAD
                                && type == DataType.F32
                                && (kind == AutoModel.Kind.BACKWARD || kind == AutoModel.Kind.FORWARD_GLOBAL);
                long narrow = AutoModel.BUILT_IN.javaUpTo(kind, type);
                long wide = AutoModel.BUILT_IN.wideRowsJavaUpTo(kind, type);
                assertTrue(amdWide ? wide > narrow : wide == narrow, kind + " " + type + ": " + narrow + ", " + wide);
            }
        }
        AutoProfile.Key here = AutoProfile.Key.thisMachine();
        Instant tuned = Instant.parse("2026-12-02T12:00:00Z");
        long wide = AutoProfile.WIDE_ROWS;
        AutoModel model = AutoModel.of(
                new AutoProfile(
                        here,
                        tuned,
                        Map.of("f32.forward", CROSSOVER, "f32.forward_global", 4 * wide),
                        Map.of(),
                        Map.of(),
                        Map.of("f32.forward", 4 * wide)),
                null);
        assertEquals(CROSSOVER, model.javaUpTo(AutoModel.Kind.FORWARD, DataType.F32));
        assertEquals(4 * wide, model.wideRowsJavaUpTo(AutoModel.Kind.FORWARD, DataType.F32));
        // Named without wide rows (a sweep of narrow rows only): the kind's crossover for every row length.
        assertEquals(4 * wide, model.wideRowsJavaUpTo(AutoModel.Kind.FORWARD_GLOBAL, DataType.F32));
        int forward = Pass.FORWARD_INFERENCE.ordinal();
        int f32 = DataType.F32.ordinal();
        assertEquals(CROSSOVER, model.byPass(LayerNormConfig.of(wide - 1))[f32][forward]);
        assertEquals(4 * wide, model.byPass(LayerNormConfig.of(wide))[f32][forward]);
        assertEquals(4 * wide, model.byPass(LayerNormConfig.of(wide / 2, 2))[f32][forward]); // rows of both axes
        // A wide crossover of 0 sends wide single rows to oneDNN too.
        AutoModel none = AutoModel.of(
                new AutoProfile(
                        here, tuned, Map.of("f32.forward", CROSSOVER), Map.of(), Map.of(), Map.of("f32.forward", 0L)),
                null);
        assertTrue(none.singleRowsByPass(LayerNormConfig.of(C))[f32][forward]);
        assertTrue(!none.singleRowsByPass(LayerNormConfig.of(wide))[f32][forward]);
    }

    @Test
    void aProfileGivesBothCrossoversOfTheKindsItNames() {
        assertEquals(AutoModel.NEVER, AutoModel.BUILT_IN.javaFrom(AutoModel.Kind.BACKWARD, DataType.F32));
        assertEquals(1 << 20, AutoModel.BUILT_IN.javaFrom(AutoModel.Kind.BACKWARD_DATA, DataType.F32));
        assertEquals(AutoModel.NEVER, AutoModel.BUILT_IN.javaFrom(AutoModel.Kind.FORWARD, DataType.F32));
        AutoProfile.Key here = AutoProfile.Key.thisMachine();
        Instant tuned = Instant.parse("2026-12-01T08:00:00Z");
        AutoModel withSecond = AutoModel.of(
                new AutoProfile(
                        here,
                        tuned,
                        Map.of("f32.backward", 64L * C, "bf16.backward", 8L * C),
                        Map.of("f32.backward", 1024L * C)),
                null);
        assertEquals(64 * C, withSecond.javaUpTo(AutoModel.Kind.BACKWARD, DataType.F32));
        assertEquals(1024 * C, withSecond.javaFrom(AutoModel.Kind.BACKWARD, DataType.F32));
        assertEquals(AutoModel.NEVER, withSecond.javaFrom(AutoModel.Kind.BACKWARD, DataType.BF16));
        // A profile that names a kind without a second crossover measured none: the built-in one goes too.
        AutoModel withoutSecond = AutoModel.of(new AutoProfile(here, tuned, Map.of("f32.backward", 64L * C)), null);
        assertEquals(AutoModel.NEVER, withoutSecond.javaFrom(AutoModel.Kind.BACKWARD, DataType.F32));
        // -Dpanorm.auto.javaUpTo makes one crossover of each float32 kind.
        AutoModel overridden = AutoModel.builtIn(5L);
        assertEquals(AutoModel.NEVER, overridden.javaFrom(AutoModel.Kind.BACKWARD, DataType.F32));
    }

    @Test
    void autoSendsCallsUpToTheProfilesCrossoverToJavaAndLargerOnesToOneDnn() {
        assumeTrue(OneDnn.isAvailable() && JavaKernels.vectorized());
        AutoModel model = AutoModel.of(profile(AutoProfile.Key.thisMachine()), null);
        LayerNormConfig config = LayerNormConfig.of(C);
        AutoKernel auto = new AutoKernel(config, 1, new CallCounter(), model);
        try (Arena arena = Arena.ofConfined()) {
            Tensor below = Tensor.allocate(arena, DataType.F32, CROSSOVER / C, C);
            Tensor above = Tensor.allocate(arena, DataType.F32, CROSSOVER / C + 1, C);
            Tensor parameter = Tensor.allocate(arena, DataType.F32, C);
            String java = auto.implementation(below, below, parameter, parameter, CROSSOVER / C);
            String oneDnn = auto.implementation(above, above, parameter, parameter, CROSSOVER / C + 1);
            assertTrue(java.startsWith("auto: java:vector"), java);
            assertTrue(oneDnn.startsWith("auto: ") && !oneDnn.contains("java"), oneDnn);
        } finally {
            auto.close();
        }
    }

    @Test
    void autoRoutesWideRowsByTheirOwnCrossover() {
        assumeTrue(OneDnn.isAvailable() && JavaKernels.vectorized());
        long wide = AutoProfile.WIDE_ROWS;
        AutoModel model = AutoModel.of(
                new AutoProfile(
                        AutoProfile.Key.thisMachine(),
                        Instant.parse("2026-12-02T12:00:00Z"),
                        Map.of("f32.forward", 2 * wide),
                        Map.of(),
                        Map.of(),
                        Map.of("f32.forward", 8 * wide)),
                null);
        // The same 4 x 2048 elements: in Java on wide rows, on oneDNN on rows of 1024.
        for (long c : new long[] {wide, wide / 2}) {
            long rows = 4 * wide / c;
            AutoKernel auto = new AutoKernel(LayerNormConfig.of(c), 1, new CallCounter(), model);
            try (Arena arena = Arena.ofConfined()) {
                Tensor x = Tensor.allocate(arena, DataType.F32, rows, c);
                Tensor parameter = Tensor.allocate(arena, DataType.F32, c);
                String path = auto.implementation(x, x, parameter, parameter, rows);
                assertEquals(c == wide, path.startsWith("auto: java:vector"), path);
            } finally {
                auto.close();
            }
        }
    }

    /**
     * A profile's thread counts decide how many threads the calls AUTO sends to oneDNN run on; the kinds it does not
     * name, and {@link Backend#ONEDNN}, keep the built-in ones.
     */
    @Test
    void aProfilesThreadCountsReachOneDnn() {
        assumeTrue(OneDnn.isAvailable());
        int cores = OneDnn.maxThreads();
        assumeTrue(cores > 1, "one OpenMP thread in this process");
        long rows = 8;
        assumeTrue(rows * C < OneDnnKernel.singleThreadBelow(Pass.FORWARD_INFERENCE, DataType.F32));
        AutoProfile profile = new AutoProfile(
                AutoProfile.Key.thisMachine(),
                Instant.parse("2026-12-01T12:00:00Z"),
                Map.of("f32.forward", 0L, "bf16.forward", 0L),
                Map.of(),
                Map.of("f32.forward", 4L * C, "bf16.forward", AutoModel.NEVER));
        AutoModel model = AutoModel.of(profile, null);
        LayerNormConfig config = LayerNormConfig.of(C);
        long[][] threadsBelow = model.oneDnnSingleThreadBelowByPass(config);
        assertEquals(4 * C, threadsBelow[DataType.F32.ordinal()][Pass.FORWARD_TRAINING.ordinal()]);
        assertEquals(AutoModel.NEVER, threadsBelow[DataType.BF16.ordinal()][Pass.FORWARD_INFERENCE.ordinal()]);
        assertEquals( // not named: built in
                OneDnnKernel.singleThreadBelow(Pass.BACKWARD, DataType.F32),
                threadsBelow[DataType.F32.ordinal()][Pass.BACKWARD.ordinal()]);
        AutoKernel auto = new AutoKernel(config, 0, new CallCounter(), model);
        try (Arena arena = Arena.ofConfined();
                LayerNorm oneDnn = LayerNorm.create(config, Backend.ONEDNN)) {
            Tensor parameter = Tensor.allocate(arena, DataType.F32, C);
            Tensor x = Tensor.allocate(arena, DataType.F32, rows, C);
            String tuned = auto.implementation(x, x, parameter, parameter, rows);
            assertTrue(tuned.startsWith("auto: ") && tuned.endsWith(", " + cores + " threads"), tuned);
            String builtIn = oneDnn.implementation(x, x, parameter, parameter);
            assertTrue(!builtIn.endsWith(" threads"), builtIn);
            // All cores, built in: the size from which the built-in rule gives them (a multiple of C).
            int halfRows = (int) (OneDnnKernel.singleThreadBelow(Pass.FORWARD_INFERENCE, DataType.BF16) / C);
            Tensor half = Tensor.allocate(arena, DataType.BF16, halfRows, C);
            String oneThread = auto.implementation(half, half, parameter, parameter, halfRows);
            assertTrue(oneThread.startsWith("auto: ") && !oneThread.endsWith(" threads"), oneThread);
            String allCores = oneDnn.implementation(half, half, parameter, parameter);
            assumeFalse(allCores.contains("dnnl_unimplemented"), "oneDNN has no bf16 code on this CPU: " + allCores);
            assertTrue(allCores.endsWith(", " + cores + " threads"), allCores + " at " + halfRows + "x" + C);
        } finally {
            auto.close();
        }
    }

    /** Runs {@link ProfileProbe} in a fresh JVM with these options; its output. */
    private static String probe(String... options) throws Exception {
        List<String> command = new ArrayList<>(
                List.of(TestJvm.java(), "--enable-native-access=ALL-UNNAMED", "--add-modules=jdk.incubator.vector"));
        command.addAll(List.of(options));
        command.addAll(List.of("-cp", TestJvm.classPath(), ProfileProbe.class.getName(), Integer.toString(C)));
        command.addAll(List.of(Long.toString(CROSSOVER / C), Long.toString(CROSSOVER / C + 1)));
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(90, TimeUnit.SECONDS), "probe JVM did not finish");
        assertEquals(0, process.exitValue(), output);
        return output;
    }

    @Test
    void aFreshJvmRoutesByTheProfileThePropertyNamesIfItIsThisMachines() throws Exception {
        assumeTrue(OneDnn.isAvailable() && JavaKernels.vectorized());
        Path mine = temp.resolve("mine.properties");
        profile(AutoProfile.Key.thisMachine()).write(mine);
        String output = probe("-Dpanorm.auto.profile=" + mine, "-Dpanorm.auto.adaptive=false");
        assertTrue(output.contains("model=profile " + mine + " (tuned 2026-11-30T20:00:00Z)"), output);
        assertTrue(output.contains("rows=8 JAVA") && output.contains("rows=9 ONEDNN"), output);

        AutoProfile.Key here = AutoProfile.Key.thisMachine();
        Path other = temp.resolve("other.properties");
        profile(new AutoProfile.Key("another CPU", here.cores(), here.java(), here.onednn()))
                .write(other);
        output = probe("-Dpanorm.auto.profile=" + other, "-Dpanorm.auto.adaptive=false");
        assertTrue(output.contains("model=built-in"), output);
        assertTrue(output.contains("rows=8 JAVA") && output.contains("rows=9 JAVA"), output);
        assertTrue(output.contains("was measured on another CPU"), output); // the one warning
    }
}
