package dev.panorm.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import dev.panorm.TestAccess;
import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.io.Serial;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.launcher.JavaModuleOptions;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real standalone Spark cluster on this machine, from the Maven jars alone: a master and a worker in JVMs
 * of their own on the loopback interface, two executors launched by the worker (separate JVMs), and this
 * JVM as the driver. panorm reaches the executors as a user ships it, through {@code spark.jars} (panorm's
 * classes as a jar, and oneDNN's jars); the job normalizes with {@link Backend#ONEDNN}, which fails rather
 * than falling back if oneDNN cannot load in an executor, and a probe reports each executor's process id
 * and the backend its call ran on. Everything started here is stopped, on failure too.
 *
 * <p>No Spark distribution: a folder stands in for {@code SPARK_HOME}, its {@code jars/} links to the test
 * class path's Spark jars, and {@code SPARK_SCALA_VERSION} tells the worker not to look for a source build.
 */
class SparkClusterTest {
    private static final int C = 64;
    private static final Duration STARTUP = Duration.ofSeconds(90);

    @TempDir
    Path dir;

    private final List<Process> daemons = new ArrayList<>();

    @Test
    @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void executorsInTheirOwnJvmsNormalizeWithOneDnn() throws Exception {
        Path sparkHome = Files.createDirectories(dir.resolve("spark-home"));
        Path jars = Files.createDirectories(sparkHome.resolve("jars"));
        List<String> shipped = new ArrayList<>();
        for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
            Path path = Path.of(entry);
            String name = path.getFileName().toString();
            if (Files.isDirectory(path)) {
                // target/classes and target/test-classes: shipped as jars, as a user ships an application.
                Path jar = dir.resolve(path.getFileName() + ".jar");
                jar(path, jar);
                shipped.add(jar.toString());
            } else if (name.startsWith("dnnl-") || name.startsWith("opencl-")) {
                shipped.add(path.toString()); // panorm's runtime dependencies travel with it
            } else if (name.endsWith(".jar") && !name.startsWith("junit") && !name.startsWith("surefire")) {
                Files.createSymbolicLink(jars.resolve(name), path.toAbsolutePath());
            }
        }
        Path cache = dir.resolve("executor-cache");
        int masterPort = freePort();
        Map<String, String> environment = Map.of(
                "SPARK_HOME",
                sparkHome.toString(),
                "SPARK_SCALA_VERSION",
                "2.13",
                "SPARK_LOCAL_IP",
                "127.0.0.1",
                "JAVA_HOME",
                System.getProperty("java.home"));
        String master = "spark://127.0.0.1:" + masterPort;
        long begin = System.nanoTime();
        try {
            Path masterLog = start(
                    "master",
                    environment,
                    jars,
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    String.valueOf(masterPort),
                    "--webui-port",
                    String.valueOf(freePort()));
            // The worker starts beside the master and retries until the master listens.
            start(
                    "worker",
                    environment,
                    jars,
                    "org.apache.spark.deploy.worker.Worker",
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    "2",
                    "--memory",
                    "1200m",
                    "--webui-port",
                    String.valueOf(freePort()),
                    "--work-dir",
                    dir.resolve("work").toString(),
                    master);
            awaitLine(masterLog, "Registering worker");
            long registered = System.nanoTime();

            SparkSession spark = SparkSession.builder()
                    .master(master)
                    .appName("SparkClusterTest")
                    .config("spark.driver.host", "127.0.0.1")
                    .config("spark.driver.bindAddress", "127.0.0.1")
                    .config("spark.ui.enabled", "false")
                    .config("spark.jars", String.join(",", shipped))
                    .config("spark.executor.cores", "1")
                    .config("spark.executor.memory", "512m")
                    .config("spark.cores.max", "2")
                    .config("spark.executorEnv.PANORM_CACHE_DIR", cache.toString())
                    .config("spark.scheduler.minRegisteredResourcesRatio", "1.0")
                    .config("spark.scheduler.maxRegisteredResourcesWaitingTime", "60s")
                    .getOrCreate();
            long session = System.nanoTime();
            try {
                runJob(spark);
            } finally {
                spark.stop();
            }
            System.out.printf(
                    "SparkClusterTest: master and worker up in %.1f s, driver session %.1f s, jobs %.1f s%n",
                    (registered - begin) / 1e9, (session - registered) / 1e9, (System.nanoTime() - session) / 1e9);
            try (Stream<Path> extracted = Files.list(cache)) {
                assertTrue(
                        extracted.anyMatch(p -> p.getFileName().toString().startsWith("onednn-")),
                        "the executors extracted oneDNN into their cache folder " + cache);
            }
        } catch (Throwable e) {
            for (String name : List.of("master", "worker")) {
                System.err.println("--- " + name + " log:\n" + tail(dir.resolve(name + ".log")));
            }
            throw e;
        } finally {
            for (Process daemon : daemons) {
                daemon.descendants().forEach(ProcessHandle::destroyForcibly);
                daemon.destroyForcibly();
                daemon.waitFor(10, TimeUnit.SECONDS);
            }
        }
    }

    private void runJob(SparkSession spark) {
        int rows = 200;
        List<Row> data = new ArrayList<>();
        for (int r = 0; r < rows; r++) {
            data.add(RowFactory.create((long) r, TestAccess.gaussian(C, r % 5, 1 + r % 3, r)));
        }
        StructType schema = new StructType()
                .add("id", DataTypes.LongType)
                .add("emb", DataTypes.createArrayType(DataTypes.FloatType, false));
        // Four partitions without a shuffle, so the job is one stage over both executors.
        Dataset<Row> df = spark.createDataFrame(
                new org.apache.spark.api.java.JavaSparkContext(spark.sparkContext()).parallelize(data, 4), schema);

        List<Row> output = SparkLayerNorm.of(LayerNormConfig.of(C))
                .backend(Backend.ONEDNN)
                .apply(df, "emb", "emb")
                .collectAsList();
        assertEquals(rows, output.size());
        for (Row row : output) {
            int id = (int) row.getLong(0);
            List<Float> values = row.getList(1);
            float[] actual = new float[values.size()];
            for (int i = 0; i < actual.length; i++) {
                actual[i] = values.get(i);
            }
            TestAccess.assertForward(
                    Backend.ONEDNN,
                    TestAccess.gaussian(C, id % 5, 1 + id % 3, id),
                    1,
                    C,
                    null,
                    null,
                    LayerNormConfig.DEFAULT_EPS,
                    actual);
        }

        List<String> reports = spark.range(0, 4, 1, 4)
                .mapPartitions(new Probe(), Encoders.STRING())
                .collectAsList();
        Set<String> pids = new HashSet<>();
        for (String report : reports) {
            String[] parts = report.split(" ", 3);
            pids.add(parts[0]);
            assertEquals("ONEDNN", parts[1], report);
            assertTrue(parts[2].startsWith("jit"), "oneDNN's JIT kernel, not its reference code: " + report);
        }
        long driver = ProcessHandle.current().pid();
        assertFalse(pids.contains(String.valueOf(driver)), "executors are not the driver's JVM: " + reports);
        assertNotEquals(0, pids.size());
        System.out.println("SparkClusterTest: executor JVMs " + pids + " (driver " + driver + "): " + reports);
    }

    /** On an executor: its pid, and the backend and implementation of a call on the executor's shared norm. */
    static final class Probe implements MapPartitionsFunction<Long, String> {
        @Serial
        private static final long serialVersionUID = 1L;

        @Override
        public Iterator<String> call(Iterator<Long> input) {
            LayerNorm norm = ExecutorNorms.get(LayerNormConfig.of(C).withoutAffine(), Backend.ONEDNN, 1);
            try (Arena arena = Arena.ofConfined()) {
                Tensor x = Tensor.allocate(arena, DataType.F32, 4, C);
                norm.forward(x, x);
                return List.of(ProcessHandle.current().pid() + " " + norm.lastBackend() + " "
                                + norm.implementation(x, x, null, null))
                        .iterator();
            }
        }
    }

    private Path start(String name, Map<String, String> environment, Path jars, String mainClass, String... arguments)
            throws IOException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(List.of(JavaModuleOptions.defaultModuleOptionArray()));
        command.addAll(List.of("-Xmx256m", "-cp", jars + File.separator + "*", mainClass));
        command.addAll(List.of(arguments));
        Path log = dir.resolve(name + ".log");
        ProcessBuilder builder =
                new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile());
        builder.environment().putAll(environment);
        daemons.add(builder.start());
        return log;
    }

    private void awaitLine(Path log, String text) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + STARTUP.toNanos();
        while (System.nanoTime() < deadline) {
            if (Files.exists(log) && Files.readString(log).contains(text)) {
                return;
            }
            for (Process daemon : daemons) {
                if (!daemon.isAlive()) {
                    throw new IllegalStateException("a Spark daemon exited with status " + daemon.exitValue());
                }
            }
            Thread.sleep(200);
        }
        throw new IllegalStateException("no '" + text + "' in " + log + " within " + STARTUP);
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }

    private static void jar(Path classes, Path jar) throws IOException {
        try (OutputStream file = Files.newOutputStream(jar);
                JarOutputStream out = new JarOutputStream(file);
                Stream<Path> files = Files.walk(classes)) {
            for (Path path : files.filter(Files::isRegularFile)
                    .sorted(Comparator.naturalOrder())
                    .toList()) {
                out.putNextEntry(
                        new JarEntry(classes.relativize(path).toString().replace(File.separatorChar, '/')));
                try {
                    Files.copy(path, out);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
                out.closeEntry();
            }
        }
    }

    private static String tail(Path log) {
        try {
            List<String> lines = Files.readAllLines(log);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }
}
