package dev.panorm.examples.paper;

import java.util.List;

/** A model that maps examples to class logits and can be trained by gradient descent: the MLP or the GRU. */
interface Classifier {
    /**
     * The logits of {@code rows} examples of {@code x}, in training mode (keeping what a backward pass needs) or not.
     */
    float[] logits(float[] x, int rows, boolean training);

    /**
     * Adds the gradients of the mean loss over a batch ({@code labels[index[r]]} for row r) into the parameters;
     * returns the loss.
     */
    double gradients(float[] x, int[] labels, int[] index, int rows);

    List<Param> params();

    int classes();
}
