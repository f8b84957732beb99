/**
 * panorm: layer normalization for Java on the CPU, through oneDNN or panorm's own Java kernels.
 *
 * <p>The API is {@link dev.panorm} and its companions {@link dev.panorm.io} ({@code .npy} files),
 * {@link dev.panorm.pipeline} (streaming) and {@link dev.panorm.arrow} (Apache Arrow vectors). The
 * oneDNN bindings that jextract generates and the command line ({@code java -jar panorm.jar}) are
 * inside the module and not exported. On the module path run with
 * {@code --enable-native-access=dev.panorm}, and add {@code --add-modules jdk.incubator.vector} for
 * the Vector API kernels.
 *
 * <p>The jar also holds {@code dev.panorm.spark} (Apache Spark), which is not part of this module: Spark's
 * jars cannot be named modules (no {@code Automatic-Module-Name}, and names derived from files such as
 * {@code spark-sql_2.13-4.2.0.jar} are invalid), so nothing here can require them. That package is compiled
 * on the class path, where Spark runs (pom.xml, execution spark-compile).
 *
 * <p>Every dependency but {@code java.base} is optional ({@code requires static}) and serves one
 * part: the Vector API kernels, {@link dev.panorm.arrow}, the command line (picocli, XChart,
 * {@code java.management}).
 * oneDNN's shared libraries come in jars that panorm reads rather than requires ({@code docs/loading.md}).
 */
// XChart has no module-info, only a stable Automatic-Module-Name in its manifest.
@SuppressWarnings("requires-automatic")
module dev.panorm {
    exports dev.panorm;
    exports dev.panorm.io;
    exports dev.panorm.pipeline;
    exports dev.panorm.arrow;

    // The Java backend's vector kernels; without the module, JavaKernels never loads them.
    requires static jdk.incubator.vector;
    // dev.panorm.arrow. Its signatures use Arrow's types, yet not `requires static transitive`: that
    // makes javac demand Arrow when compiling every module that requires panorm, Arrow user or not.
    requires static org.apache.arrow.vector;
    requires static org.apache.arrow.memory.core;
    // The command line (dev.panorm.cli): its parser, and the chart of panorm bench --chart.
    requires static info.picocli;
    requires static org.knowm.xchart;
    // ... and ImageIO, to encode its PNG in memory.
    requires static java.desktop;
    // The command line's timings (bench, demo) wait for the JIT to go idle before they measure.
    requires static java.management;

    // picocli fills the commands' annotated fields reflectively.
    opens dev.panorm.cli to
            info.picocli;
}
