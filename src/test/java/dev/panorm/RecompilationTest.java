package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * C2's recompilation loop stays away from panorm's loops, whatever arenas the caller's tensors come from. Once the JDK's
 * session check has mostly seen memory with an owner thread, C2 compiles vector loops with a profiled loop predicate
 * that fails on memory without one, and then recompiles them every few hundred milliseconds, the loop running up to a
 * hundred times slower meanwhile (docs/performance.md). panorm's kernels therefore meet only memory the running thread
 * owns ({@link OwnedMemory}). Counted in the JIT's own log, {@link RecompilationProbe} in a fresh JVM per arena mode;
 * with the kernels taking the caller's segments as they came (before the eleventh session of 2026-12-01), 118
 * compilations failed when a confined phase was followed by a shared one (59 of them of one method,
 * {@code VectorKernel.inputGradient}) and 28 with confined data and outputs in automatic arenas; now 7 to 10 in every
 * mode, at most 2 per method (methods that meet memory of another kind once, such as a fill loop). With Java arrays
 * after a confined phase ({@code heap}), before contiguous heap tensors went through native copies: 135, 60 of them of
 * {@code ScalarKernel.normalizeF32} and 59 of {@code ScalarKernel.backwardRowF32}; now 8.
 */
class RecompilationTest {
    private static final Pattern TRAP =
            Pattern.compile("cid=\\s*(\\d+).* (dev\\.panorm\\.[\\w.$]+)\\(.*profile_predicate");

    @ParameterizedTest
    @ValueSource(strings = {"confined", "shared", "switch", "mixed", "heap"})
    void panormsLoopsDoNotFallIntoTheRecompilationLoop(String arenas) throws Exception {
        Process process = new ProcessBuilder(List.of(
                        TestJvm.java(),
                        "--enable-native-access=ALL-UNNAMED",
                        "--add-modules=jdk.incubator.vector",
                        "-Xlog:deoptimization=debug:stdout",
                        "-cp",
                        TestJvm.classPath(),
                        RecompilationProbe.class.getName(),
                        arenas))
                .redirectErrorStream(true)
                .start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(120, TimeUnit.SECONDS), "probe JVM did not finish");
        assertEquals(0, process.exitValue(), output);
        assertTrue(output.contains("done"), output);
        Set<String> compilations = new TreeSet<>(); // each failing compilation, once, however often it trapped
        Map<String, Integer> perMethod = new TreeMap<>();
        Matcher trap = TRAP.matcher(output);
        while (trap.find()) {
            if (!trap.group(2).startsWith("dev.panorm.Tensors.") // the test's own helper
                    && compilations.add(trap.group(2) + " cid " + trap.group(1))) {
                perMethod.merge(trap.group(2), 1, Integer::sum);
            }
        }
        assertTrue(
                compilations.size() <= 12,
                compilations.size() + " compilations failed their loop predicate: " + compilations);
        perMethod.forEach((method, failed) -> assertTrue(
                failed <= 3,
                method + " was compiled " + failed + " times with a failing loop predicate: " + perMethod));
    }
}
