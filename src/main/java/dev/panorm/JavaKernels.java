package dev.panorm;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;

/**
 * Creates the Java backend's kernels: the Vector API ones when {@code jdk.incubator.vector} is in
 * the boot layer, else the scalar ones, with one warning per process. The vector class is reached
 * only reflectively, so a JVM without the incubator module never loads it.
 */
final class JavaKernels {
    private static final System.Logger LOG = System.getLogger("dev.panorm");
    private static final MethodHandle VECTOR = vectorConstructor("dev.panorm.VectorKernel");
    private static final MethodHandle FUSED_VECTOR = vectorConstructor("dev.panorm.FusedVectorKernel");
    private static volatile boolean warned;

    private JavaKernels() {}

    private static MethodHandle vectorConstructor(String className) {
        if (Settings.flag("panorm.vector.disable", false)
                || ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
            return null;
        }
        try {
            return MethodHandles.lookup()
                    .findConstructor(
                            Class.forName(className),
                            MethodType.methodType(void.class, LayerNormConfig.class, int.class));
        } catch (ReflectiveOperationException | LinkageError e) {
            LOG.log(System.Logger.Level.WARNING, "panorm: the Vector API kernels could not be loaded: " + e);
            return null;
        }
    }

    /** Whether the Vector API kernels are in use. */
    static boolean vectorized() {
        return VECTOR != null;
    }

    /**
     * Whether the vector kernels take {@code tensor} as it is (null: absent): unit stride along the normalized axes,
     * any data type, in native memory; other tensors make them delegate to the scalar kernels. A tensor on the heap
     * reaches them through a native copy ({@link OwnedMemory.HeapCopies}) where it can; one that reaches them as it is
     * goes to the scalar kernels, because a vector load or store on a heap segment marks the JDK's profile of segment
     * types at the call site that every vector access of its lane type shares, and the vector kernels compiled after
     * that ran about 3 times slower on native memory as well, for the rest of the process (docs/benchmarks.md, "One
     * process, several data types").
     */
    static boolean vectorizes(int normalizedAxes, Tensor tensor) {
        return tensor == null || tensor.segment().isNative() && hasUnitStrideRows(normalizedAxes, tensor);
    }

    /** Whether {@code tensor}'s rows of {@code normalizedAxes} axes have unit stride, wherever it lies. */
    static boolean hasUnitStrideRows(int normalizedAxes, Tensor tensor) {
        return tensor.isContiguous() || Rows.columnStride(tensor, normalizedAxes) == 1;
    }

    /** The fastest Java kernels for the fused operations: Vector API ones if available, else the scalar ones. */
    static FusedKernel createFused(LayerNormConfig config, int threads) {
        if (FUSED_VECTOR == null) {
            return OwnedMemory.javaFused(new FusedScalarKernel(config), config);
        }
        try {
            return OwnedMemory.javaFused((FusedKernel) FUSED_VECTOR.invoke(config, threads), config);
        } catch (Throwable e) {
            throw new IllegalStateException("could not create the Vector API kernels", e);
        }
    }

    /** The fastest Java kernels available, for {@link Backend#JAVA}. */
    static Kernel create(LayerNormConfig config, int threads) {
        if (VECTOR == null) {
            if (!warned) {
                warned = true;
                LOG.log(
                        System.Logger.Level.WARNING,
                        "panorm: jdk.incubator.vector is not available, so the Java backend "
                                + "uses its scalar kernels; run the JVM with --add-modules jdk.incubator.vector for"
                                + " the vector ones");
            }
            return OwnedMemory.javaKernel(new ScalarKernel(config), config);
        }
        try {
            return OwnedMemory.javaKernel((Kernel) VECTOR.invoke(config, threads), config);
        } catch (Throwable e) {
            throw new IllegalStateException("could not create the Vector API kernels", e);
        }
    }
}
