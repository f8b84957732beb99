package dev.panorm.examples.paper;

import java.util.List;

/** A normalization layer over rows of {@code width} values: batch normalization or panorm's layer normalization. */
interface Norm extends AutoCloseable {
    /**
     * {@code y = norm(x)} for {@code rows x width} values. In training mode it keeps what {@link #backward}
     * needs (and batch normalization uses the batch's statistics and updates its running ones); otherwise it
     * computes what the trained model computes at test time.
     */
    void forward(float[] x, float[] y, int rows, boolean training);

    /** {@code dx} from {@code dy} for the last training-mode forward pass; adds into the parameters' gradients. */
    void backward(float[] dy, float[] dx, int rows);

    /** The trainable parameters (gamma, beta). */
    List<Param> params();

    @Override
    default void close() {}
}
