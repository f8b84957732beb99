/**
 * Layer normalization for Java on the CPU, over off-heap memory.
 *
 * <p>The semantics are PyTorch's ({@code torch.nn.LayerNorm} and {@code torch.nn.RMSNorm}): every
 * row of a tensor is normalized over its last axes with the biased variance, {@code eps} inside the
 * square root, and an optional elementwise scale and shift. oneDNN's primitive computes it, called
 * through the FFM API (no JNI, no native build step), or panorm's own Java kernels do; forward and
 * backward, float32, bfloat16 and float16, any strides.
 *
 * <p>{@link Tensor} views memory the caller owns (a {@link java.lang.foreign.MemorySegment} from an
 * {@link java.lang.foreign.Arena}, a memory-mapped file, another library's buffer) with a shape,
 * strides and a {@link DataType}; it never copies and never frees. {@link LayerNormConfig} is
 * PyTorch's constructor: {@code of(768)} is {@code nn.LayerNorm(768)}, {@code rms(768)} is
 * {@code nn.RMSNorm(768)}. {@link LayerNorm} is the operation: create it once per configuration,
 * call it many times from any threads, close it. {@link Backend} chooses who computes it; the
 * default, {@link Backend#AUTO}, picks per call.
 *
 * <!-- snippet: given MemorySegment buffer; Tensor dy, dx, dgamma, dbeta -->
 * {@snippet :
 * try (Arena arena = Arena.ofConfined();
 *      LayerNorm norm = LayerNorm.create(LayerNormConfig.of(768))) {   // nn.LayerNorm(768): eps 1e-5, weight, bias
 *     Tensor x = Tensor.allocate(arena, DataType.F32, 32, 768);        // zero-filled, C order: fill it
 *     Tensor y = Tensor.of(buffer, DataType.F32, 32, 768);             // or wrap memory you have, without a copy
 *     Tensor gamma = Tensor.allocate(arena, DataType.F32, 768);        // PyTorch's weight
 *     Tensor beta = Tensor.allocate(arena, DataType.F32, 768);         // PyTorch's bias
 *     norm.forward(x, y, gamma, beta);                                 // inference; forward(x, x, ...) is in place
 *
 *     Tensor mean = Tensor.allocate(arena, DataType.F32, 32);          // training: one statistic per row
 *     Tensor variance = Tensor.allocate(arena, DataType.F32, 32);
 *     norm.forwardTraining(x, y, gamma, beta, mean, variance);
 *     norm.backward(dy, x, mean, variance, gamma, dx, dgamma, dbeta);  // dLoss/dy in; dLoss/dx, /dgamma, /dbeta out
 * }                                                                    // closes norm, then frees the memory
 * }
 *
 * <p>Here {@code buffer} is any native segment of at least 32 x 768 floats, {@code dy} and
 * {@code dx} are tensors like {@code x}, and {@code dgamma} and {@code dbeta} like {@code gamma}.
 * {@linkplain LayerNorm#backwardData backwardData} skips the parameter gradients;
 * {@linkplain LayerNorm#forwardWithGlobalStatistics forwardWithGlobalStatistics} normalizes with
 * statistics the caller gives.
 *
 * <p>Errors: arguments are checked in Java before any native call and refused with an
 * {@link IllegalArgumentException} or {@link IllegalStateException} that names the tensor and the
 * problem. A failing oneDNN call throws {@link OneDnnException}, carrying its {@link OneDnnStatus}.
 * When oneDNN cannot be loaded, creating a {@link Backend#ONEDNN} operation throws
 * {@link NativeLibraryException}, {@link Backend#AUTO} runs everything in Java, and the Java backends
 * never need it. {@link OneDnn} tells which library is loaded, from where, and how many threads it
 * uses.
 *
 * <p>JVM flags:
 * <ul>
 * <li>{@code --enable-native-access=ALL-UNNAMED}, or {@code --enable-native-access=dev.panorm} on
 *     the module path: loading and calling oneDNN use restricted methods. Without it JDK 25 prints a
 *     warning when oneDNN is first loaded (naming {@code System::load}) and runs on; the JDK says a
 *     future release will refuse. {@code java -jar panorm.jar} needs no flag: the jar's manifest
 *     grants the access.
 * <li>{@code --add-modules jdk.incubator.vector}, optional: the Vector API kernels of
 *     {@link Backend#JAVA}. Without it that backend falls back to its scalar kernels with one
 *     warning per process, and {@link Backend#AUTO} sends the calls it would give them to oneDNN.
 * </ul>
 * The system properties the guide names ({@code -Dpanorm.auto.javaUpTo}, {@code -Dpanorm.heapCopyBytes}, ...) take
 * whole numbers or {@code true}/{@code false}; a value that does not parse is ignored with one warning naming it.
 *
 * <p>{@link dev.panorm.io} reads and writes {@code .npy} files through memory mapping;
 * {@link dev.panorm.pipeline} streams tensors larger than memory through a {@code LayerNorm} in
 * chunks; {@link dev.panorm.arrow} normalizes Apache Arrow vectors. These four packages are what the
 * module {@code dev.panorm} exports. The oneDNN bindings that jextract generates and the command
 * line are in the module but not exported: they are not API, on the module path they cannot be
 * reached, and this documentation leaves them out. The module's other dependencies (Arrow, the
 * command line's picocli and XChart, {@code jdk.incubator.vector}) are optional.
 *
 * <p>Guide: {@code README.md} for a first program, then {@code docs/}, one page per topic, starting
 * with {@code docs/api.md}.
 */
package dev.panorm;
