package dev.panorm.examples.paper;

import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Layer normalization by panorm over rows of {@code width} values, as the model's layers see it: float
 * arrays in and out, copied to and from off-heap tensors (oneDNN reads only native memory), with gamma and
 * beta trained like every other parameter.
 *
 * <p>A recurrent network normalizes at every time step and differentiates through every step afterwards,
 * so the input and statistics of each forward call are kept in a numbered <em>slot</em> ({@code slots} of
 * them) until its backward call. Tensors are allocated once per row count from the run's arena and reused,
 * so a training step allocates nothing off-heap. Gamma and beta are copied to native memory on each slot-0
 * forward call, the first of every forward pass, so the optimizer's updates are always seen.
 */
final class PanormNorm implements Norm {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT;

    private final LayerNorm norm;
    private final Arena arena;
    private final int width;
    private final int slots;
    private final CallTimer timer;
    private final Param gamma;
    private final Param beta;
    private final Tensor gammaTensor;
    private final Tensor betaTensor;
    private final Tensor dGamma;
    private final Tensor dBeta;
    private final Map<Integer, Buffers> byRows = new HashMap<>();
    private Buffers last;

    /** The tensors for one row count: per slot the input and its statistics; one output and gradient buffer. */
    private record Buffers(int rows, Tensor[] x, Tensor[] mean, Tensor[] variance, Tensor y, Tensor dy, Tensor dx) {}

    PanormNorm(LayerNorm norm, Arena arena, int width, int slots, CallTimer timer) {
        if (norm.config().normalizedSize() != width) {
            throw new IllegalArgumentException(norm + " does not normalize rows of " + width);
        }
        this.norm = norm;
        this.arena = arena;
        this.width = width;
        this.slots = slots;
        this.timer = timer;
        this.gamma = Param.filled("ln.gamma", width, 1);
        this.beta = new Param("ln.beta", width);
        this.gammaTensor = Tensor.allocate(arena, DataType.F32, width);
        this.betaTensor = Tensor.allocate(arena, DataType.F32, width);
        this.dGamma = Tensor.allocate(arena, DataType.F32, width);
        this.dBeta = Tensor.allocate(arena, DataType.F32, width);
    }

    private Buffers buffers(int rows) {
        if (last == null || last.rows != rows) {
            last = byRows.computeIfAbsent(rows, r -> {
                Tensor[] x = new Tensor[slots];
                Tensor[] mean = new Tensor[slots];
                Tensor[] variance = new Tensor[slots];
                for (int s = 0; s < slots; s++) {
                    x[s] = Tensor.allocate(arena, DataType.F32, r, width);
                    mean[s] = Tensor.allocate(arena, DataType.F32, r);
                    variance[s] = Tensor.allocate(arena, DataType.F32, r);
                }
                return new Buffers(
                        r,
                        x,
                        mean,
                        variance,
                        Tensor.allocate(arena, DataType.F32, r, width),
                        Tensor.allocate(arena, DataType.F32, r, width),
                        Tensor.allocate(arena, DataType.F32, r, width));
            });
        }
        return last;
    }

    @Override
    public void forward(float[] x, float[] y, int rows, boolean training) {
        if (training) {
            forwardTraining(0, x, y, rows);
        } else {
            forwardInference(x, y, rows);
        }
    }

    @Override
    public void backward(float[] dy, float[] dx, int rows) {
        backward(0, dy, dx, rows);
    }

    /**
     * Normalizes {@code rows x width} values and keeps the input and statistics in {@code slot} for {@link #backward}.
     */
    void forwardTraining(int slot, float[] x, float[] y, int rows) {
        Buffers b = buffers(rows);
        long start = System.nanoTime();
        if (slot == 0) {
            copyParameters();
        }
        int n = rows * width;
        MemorySegment.copy(x, 0, b.x[slot].segment(), F32, 0, n);
        long callStart = System.nanoTime();
        norm.forwardTraining(b.x[slot], b.y, gammaTensor, betaTensor, b.mean[slot], b.variance[slot]);
        long callEnd = System.nanoTime();
        MemorySegment.copy(b.y.segment(), F32, 0, y, 0, n);
        timer.add(CallTimer.Kind.FORWARD_TRAINING, start, callStart, callEnd, System.nanoTime());
    }

    /** The gradient for the forward call of {@code slot}; adds dLoss/dgamma and dLoss/dbeta into the parameters. */
    void backward(int slot, float[] dy, float[] dx, int rows) {
        Buffers b = buffers(rows);
        long start = System.nanoTime();
        int n = rows * width;
        MemorySegment.copy(dy, 0, b.dy.segment(), F32, 0, n);
        long callStart = System.nanoTime();
        norm.backward(b.dy, b.x[slot], b.mean[slot], b.variance[slot], gammaTensor, b.dx, dGamma, dBeta);
        long callEnd = System.nanoTime();
        MemorySegment.copy(b.dx.segment(), F32, 0, dx, 0, n);
        // panorm overwrites dGamma and dBeta with this call's sums; the model accumulates over calls (time steps).
        float[] gg = gamma.grad();
        float[] bg = beta.grad();
        MemorySegment dg = dGamma.segment();
        MemorySegment db = dBeta.segment();
        for (int j = 0; j < width; j++) {
            gg[j] += dg.getAtIndex(F32, j);
            bg[j] += db.getAtIndex(F32, j);
        }
        timer.add(CallTimer.Kind.BACKWARD, start, callStart, callEnd, System.nanoTime());
    }

    /** What the trained model computes at test time: the inference pass, no statistics kept. */
    void forwardInference(float[] x, float[] y, int rows) {
        Buffers b = buffers(rows);
        long start = System.nanoTime();
        copyParameters();
        int n = rows * width;
        MemorySegment.copy(x, 0, b.x[0].segment(), F32, 0, n);
        long callStart = System.nanoTime();
        norm.forward(b.x[0], b.y, gammaTensor, betaTensor);
        long callEnd = System.nanoTime();
        MemorySegment.copy(b.y.segment(), F32, 0, y, 0, n);
        timer.add(CallTimer.Kind.FORWARD, start, callStart, callEnd, System.nanoTime());
    }

    private void copyParameters() {
        MemorySegment.copy(gamma.value(), 0, gammaTensor.segment(), F32, 0, width);
        MemorySegment.copy(beta.value(), 0, betaTensor.segment(), F32, 0, width);
    }

    @Override
    public List<Param> params() {
        return List.of(gamma, beta);
    }
}
