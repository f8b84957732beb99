package dev.panorm.bench;

import static org.bytedeco.dnnl.global.dnnl.*;

import dev.panorm.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.dnnl.dnnl_engine;
import org.bytedeco.dnnl.dnnl_exec_arg_t;
import org.bytedeco.dnnl.dnnl_memory;
import org.bytedeco.dnnl.dnnl_memory_desc;
import org.bytedeco.dnnl.dnnl_primitive;
import org.bytedeco.dnnl.dnnl_primitive_attr;
import org.bytedeco.dnnl.dnnl_primitive_desc;
import org.bytedeco.dnnl.dnnl_stream;
import org.bytedeco.javacpp.Pointer;

/**
 * The JNI peer: the same oneDNN layer normalization, called through bytedeco's JavaCPP presets for
 * oneDNN's C API, on the fixture's memory (no copies), the way a JavaCPP user would write it. JavaCPP
 * loads its own copy of libdnnl.so.3, so a JMH fork that runs this peer must not also load panorm's.
 */
final class JniPeer implements Peer {
    private final Fixture fixture;
    private final int threads;
    private final dnnl_engine engine = new dnnl_engine();
    private final dnnl_stream stream = new dnnl_stream();
    private final List<dnnl_memory> memories = new ArrayList<>();
    private final List<Pointer> owned = new ArrayList<>();
    private dnnl_primitive primitive;
    private dnnl_exec_arg_t args;
    private int argCount;

    JniPeer(Fixture fixture, int threads) {
        if (!fixture.op.equals("layer")) {
            throw new IllegalArgumentException("the JNI peer runs layer normalization only, not " + fixture.op);
        }
        this.fixture = fixture;
        this.threads = threads;
        check(dnnl_engine_create(engine, dnnl_cpu, 0), "dnnl_engine_create");
        check(dnnl_stream_create(stream, engine, dnnl_stream_default_flags), "dnnl_stream_create");
        OpenMpThreads.set(threads);
        requireOneCopyOfOneDnn();
    }

    @Override
    public void prepare(Pass pass) {
        if (pass == Pass.GLOBALFORWARD || pass == Pass.BACKWARDDATA) {
            throw new UnsupportedOperationException("the JNI peer runs forward, training and backward only");
        }
        OpenMpThreads.set(threads);
        int type = switch (fixture.type) {
            case F32 -> dnnl_f32;
            case BF16 -> dnnl_bf16;
            case F16 -> dnnl_f16;
            case S8 -> throw new UnsupportedOperationException("the JNI peer benchmarks float data only");
        };
        dnnl_memory_desc data = desc(new long[] {fixture.rows, fixture.channels}, type, dnnl_ab);
        dnnl_memory_desc stat = desc(new long[] {fixture.rows}, dnnl_f32, dnnl_a);
        dnnl_memory_desc param = desc(new long[] {fixture.channels}, dnnl_f32, dnnl_a);
        dnnl_primitive_attr attr = new dnnl_primitive_attr();
        check(dnnl_primitive_attr_create(attr), "dnnl_primitive_attr_create");
        check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode");
        int flags = dnnl_use_scale | dnnl_use_shift;
        float eps = (float) fixture.config().eps();
        dnnl_primitive_desc forwardPd = new dnnl_primitive_desc();
        check(
                dnnl_layer_normalization_forward_primitive_desc_create(
                        forwardPd,
                        engine,
                        pass == Pass.FORWARD ? dnnl_forward_inference : dnnl_forward_training,
                        data,
                        data,
                        stat,
                        eps,
                        flags,
                        attr),
                "forward primitive_desc_create");
        dnnl_primitive_desc pd = forwardPd;
        if (pass == Pass.BACKWARD) {
            pd = new dnnl_primitive_desc();
            check(
                    dnnl_layer_normalization_backward_primitive_desc_create(
                            pd, engine, dnnl_backward, data, data, data, stat, eps, flags, forwardPd, attr),
                    "backward primitive_desc_create");
        }
        primitive = new dnnl_primitive();
        check(dnnl_primitive_create(primitive, pd), "dnnl_primitive_create");

        List<Object[]> bindings = new ArrayList<>(); // {DNNL_ARG_*, Tensor, desc}
        bindings.add(new Object[] {DNNL_ARG_SRC, fixture.src, data});
        bindings.add(new Object[] {DNNL_ARG_SCALE, fixture.scale, param});
        switch (pass) {
            case FORWARD, TRAINING -> {
                bindings.add(new Object[] {DNNL_ARG_DST, fixture.dst, data});
                bindings.add(new Object[] {DNNL_ARG_SHIFT, fixture.shift, param});
                if (pass == Pass.TRAINING) {
                    bindings.add(new Object[] {DNNL_ARG_MEAN, fixture.mean, stat});
                    bindings.add(new Object[] {DNNL_ARG_VARIANCE, fixture.variance, stat});
                }
            }
            case GLOBALFORWARD, BACKWARDDATA -> throw new AssertionError(pass);
            case BACKWARD -> {
                bindings.add(new Object[] {DNNL_ARG_MEAN, fixture.mean, stat});
                bindings.add(new Object[] {DNNL_ARG_VARIANCE, fixture.variance, stat});
                bindings.add(new Object[] {DNNL_ARG_DIFF_DST, fixture.diffDst, data});
                bindings.add(new Object[] {DNNL_ARG_DIFF_SRC, fixture.diffSrc, data});
                bindings.add(new Object[] {DNNL_ARG_DIFF_SCALE, fixture.diffScale, param});
                bindings.add(new Object[] {DNNL_ARG_DIFF_SHIFT, fixture.diffShift, param});
            }
        }
        dnnl_memory_desc scratchpad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        long scratchpadBytes = scratchpad == null || scratchpad.isNull() ? 0 : dnnl_memory_desc_get_size(scratchpad);
        argCount = bindings.size() + (scratchpadBytes > 0 ? 1 : 0);
        args = new dnnl_exec_arg_t(argCount);
        owned.add(args);
        for (int i = 0; i < bindings.size(); i++) {
            Object[] binding = bindings.get(i);
            Tensor tensor = (Tensor) binding[1];
            dnnl_memory memory = memory(
                    (dnnl_memory_desc) binding[2], new Pointer(tensor.segment().asByteBuffer()));
            args.position(i).arg((Integer) binding[0]).memory(memory);
        }
        if (scratchpadBytes > 0) {
            Pointer buffer =
                    new Pointer(fixture.arena.allocate(scratchpadBytes, 64).asByteBuffer());
            args.position(bindings.size()).arg(DNNL_ARG_SCRATCHPAD).memory(memory(scratchpad, buffer));
        }
        args.position(0);
        if (pd != forwardPd) {
            dnnl_primitive_desc_destroy(pd);
        }
        dnnl_primitive_desc_destroy(forwardPd);
        dnnl_primitive_attr_destroy(attr);
        run(pass);
    }

    private dnnl_memory memory(dnnl_memory_desc desc, Pointer handle) {
        dnnl_memory memory = new dnnl_memory();
        check(dnnl_memory_create(memory, desc, engine, handle), "dnnl_memory_create");
        memories.add(memory);
        return memory;
    }

    private static dnnl_memory_desc desc(long[] dims, int type, int tag) {
        dnnl_memory_desc desc = new dnnl_memory_desc();
        check(dnnl_memory_desc_create_with_tag(desc, dims.length, dims, type, tag), "dnnl_memory_desc_create_with_tag");
        return desc;
    }

    private void execute() {
        check(dnnl_primitive_execute(primitive, stream, argCount, args), "dnnl_primitive_execute");
        check(dnnl_stream_wait(stream), "dnnl_stream_wait");
    }

    @Override
    public void forward() {
        execute();
    }

    @Override
    public void training() {
        execute();
    }

    @Override
    public void backward() {
        execute();
    }

    private static void check(int status, String call) {
        if (status != dnnl_success) {
            throw new IllegalStateException(call + " failed with oneDNN status " + status);
        }
    }

    /** Two oneDNN (and OpenMP) copies in one process would race each other for the cores. */
    private static void requireOneCopyOfOneDnn() {
        try {
            long copies = Files.readAllLines(Path.of("/proc/self/maps")).stream()
                    .filter(line -> line.endsWith("libdnnl.so.3"))
                    .map(line -> line.substring(line.lastIndexOf(' ') + 1))
                    .distinct()
                    .count();
            if (copies > 1) {
                throw new IllegalStateException(
                        "two copies of libdnnl.so.3 are loaded; run the JNI peer in its own fork");
            }
        } catch (IOException e) {
            // not Linux-like: nothing to check
        }
    }

    @Override
    public String toString() {
        return "JavaCPP dnnl " + threads + " thread(s)";
    }

    @Override
    public void close() {
        memories.forEach(memory -> dnnl_memory_destroy(memory));
        if (primitive != null) {
            dnnl_primitive_destroy(primitive);
        }
        dnnl_stream_destroy(stream);
        dnnl_engine_destroy(engine);
        owned.forEach(Pointer::close);
    }

    /** omp_set_num_threads of the libgomp already loaded (by JavaCPP, with its oneDNN). */
    static final class OpenMpThreads {
        private static final MethodHandle SET = Linker.nativeLinker()
                .downcallHandle(
                        SymbolLookup.libraryLookup("libgomp.so.1", Arena.global())
                                .findOrThrow("omp_set_num_threads"),
                        FunctionDescriptor.ofVoid(ValueLayout.JAVA_INT));

        static void set(int threads) {
            try {
                SET.invokeExact(threads);
            } catch (Throwable e) {
                throw new IllegalStateException(e);
            }
        }
    }
}
