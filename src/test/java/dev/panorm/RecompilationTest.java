package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * C2's recompilation loop stays away from panorm's own memory. Once confined memory has passed the JDK's session
 * check, C2 compiles vector loops with a profiled loop predicate that fails on memory without an owner thread, and
 * then recompiles them every few hundred milliseconds, the loop running up to a hundred times slower meanwhile
 * (docs/performance.md). panorm's scratch rows therefore reach the loops through views of the kind of memory the call
 * stores into: owned by the running thread for confined outputs, without an owner for others. When they had no owner
 * (before bc5578d), 108 compilations of {@link RecompilationProbe}'s loops on confined tensors failed their predicate;
 * when they were always owned (before the tenth session of 2026-12-01), 117 on shared tensors, where 4 fail now (methods
 * compiled before they first met memory of the other kind, once each). Counted in the JIT's own log, each arena kind in
 * a fresh JVM.
 */
class RecompilationTest {
    private static final Pattern TRAP =
            Pattern.compile("cid=\\s*(\\d+).* (dev\\.panorm\\.[\\w.$]+)\\(.*profile_predicate");

    @ParameterizedTest
    @ValueSource(strings = {"confined", "shared"})
    void panormsScratchRowsDoNotSetOffTheRecompilationLoop(String arena) throws Exception {
        Process process = new ProcessBuilder(List.of(
                        TestJvm.java(),
                        "--enable-native-access=ALL-UNNAMED",
                        "--add-modules=jdk.incubator.vector",
                        "-Xlog:deoptimization=debug:stdout",
                        "-cp",
                        TestJvm.classPath(),
                        RecompilationProbe.class.getName(),
                        arena))
                .redirectErrorStream(true)
                .start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(120, TimeUnit.SECONDS), "probe JVM did not finish");
        assertEquals(0, process.exitValue(), output);
        assertTrue(output.contains("done"), output);
        Set<String> compilations = new TreeSet<>(); // each failing compilation, once, however often it trapped
        Matcher trap = TRAP.matcher(output);
        while (trap.find()) {
            if (!trap.group(2).startsWith("dev.panorm.Tensors.")) { // the test's own helper
                compilations.add(trap.group(2) + " cid " + trap.group(1));
            }
        }
        assertTrue(
                compilations.size() <= 12,
                compilations.size() + " compilations failed their loop predicate: " + compilations);
    }
}
