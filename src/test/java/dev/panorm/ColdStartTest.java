package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** AUTO in a fresh JVM ({@link ColdStartProbe}): oneDNN while the vector kernels are cold, Java once compiled. */
class ColdStartTest {
    private static String probe(String... options) throws Exception {
        List<String> command = new java.util.ArrayList<>(
                List.of(TestJvm.java(), "--enable-native-access=ALL-UNNAMED", "--add-modules=jdk.incubator.vector"));
        command.addAll(List.of(options));
        command.addAll(List.of("-cp", TestJvm.classPath(), ColdStartProbe.class.getName()));
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(90, TimeUnit.SECONDS), "probe JVM did not finish");
        assertTrue(process.exitValue() == 0, output);
        return output;
    }

    @Test
    void coldKernelsLeaveSmallCallsToOneDnnUntilCompiled() throws Exception {
        assumeTrue(OneDnn.isAvailable());
        String output = probe();
        assertTrue(output.contains("first=ONEDNN"), output);
        assertTrue(output.contains("warm=true"), output);
        assertTrue(output.contains("warmed=JAVA"), output);
    }

    /**
     * Each cold call counts its elements and 1024 more (oneDNN's fixed cost of a call) towards 2^26: 63,551 calls on
     * 1 x 32 (2^26 / 1056, rounded up) start the warm-up, where elements alone took 2,097,152.
     */
    @Test
    void smallCallsStartTheWarmUpAfterAboutAsMuchOneDnnTimeAsLargeOnes() throws Exception {
        assumeTrue(OneDnn.isAvailable());
        String output = probe();
        assertTrue(
                output.contains("callsBeforeWarmup=63551\n") || output.contains("callsBeforeWarmup=63551\r"), output);
    }

    @Test
    void withoutAdaptationTheModelDecidesFromTheFirstCall() throws Exception {
        assumeTrue(OneDnn.isAvailable());
        String output = probe("-Dpanorm.auto.adaptive=false");
        assertTrue(output.contains("first=JAVA"), output);
        assertTrue(output.contains("warmed=JAVA"), output);
    }
}
