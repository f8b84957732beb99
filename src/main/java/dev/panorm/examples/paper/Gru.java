package dev.panorm.examples.paper;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A gated recurrent unit that reads a sequence of {@code steps} vectors of {@code inputs} values (here an
 * image row by row) and classifies it from its last hidden state, with or without layer normalization.
 *
 * <p>The layer-normalized version is the authors' own ({@code lngru_layer} in Kiros's layer-norm code for the
 * paper): the input projections {@code x W} (gates) and {@code x Wx} (candidate) and, at every time step
 * separately, the recurrent projections {@code h U} and {@code h Ux} are each normalized with their own gain
 * and bias:
 *
 * <pre>
 *   [r, u] = sigmoid(LN(h U) + LN(x W + b))        (reset and update gates, 2H values)
 *   c      = tanh(LN(h Ux) * r + LN(x Wx + bx))     (candidate, H values)
 *   h'     = u * h + (1 - u) * c
 * </pre>
 *
 * Without normalization the same equations run with every {@code LN} left out. The input projections do not
 * depend on the recurrence, so they are computed (and normalized) for all time steps in one call; the
 * recurrent ones take one panorm call per time step (of {@code batch x 2H} and {@code batch x H}), and as many
 * backward calls: with a batch of 1, the online regime, tens of thousands of tiny calls per epoch.
 */
final class Gru implements Classifier {
    /** Makes the layer normalization of a site of {@code width} values keeping {@code slots} calls for backward. */
    interface Norms {
        PanormNorm create(int width, int slots);
    }

    private final int steps;
    private final int inputs;
    private final int hidden;
    private final int classes;
    private final Param w;
    private final Param b;
    private final Param wx;
    private final Param bx;
    private final Param u;
    private final Param ux;
    private final Param wo;
    private final Param bo;
    private final PanormNorm lnX;
    private final PanormNorm lnXx;
    private final PanormNorm lnU;
    private final PanormNorm lnUx;
    // The last training-mode forward pass, for backward: time-major inputs, normalized input projections,
    // and per step the previous hidden state, the gates, the (normalized) recurrent candidate term and the candidate.
    private float[] xs;
    private float[] a;
    private float[] ax;
    private float[][] hs;
    private float[][] resets;
    private float[][] updates;
    private float[][] qs;
    private float[][] candidates;

    /**
     * @param norms makes the normalizations, or null for a GRU without them
     */
    Gru(int steps, int inputs, int hidden, int classes, Norms norms, SplittableRandom random) {
        this.steps = steps;
        this.inputs = inputs;
        this.hidden = hidden;
        this.classes = classes;
        w = new Param("W", inputs * 2 * hidden);
        b = new Param("b", 2 * hidden);
        wx = new Param("Wx", inputs * hidden);
        bx = new Param("bx", hidden);
        u = new Param("U", hidden * 2 * hidden);
        ux = new Param("Ux", hidden * hidden);
        wo = new Param("Wo", hidden * classes);
        bo = new Param("bo", classes);
        Rng.gaussian(w.value(), 1 / Math.sqrt(inputs), random);
        Rng.gaussian(wx.value(), 1 / Math.sqrt(inputs), random);
        Rng.gaussian(u.value(), 1 / Math.sqrt(hidden), random);
        Rng.gaussian(ux.value(), 1 / Math.sqrt(hidden), random);
        Rng.gaussian(wo.value(), 1 / Math.sqrt(hidden), random);
        lnX = norms == null ? null : norms.create(2 * hidden, 1);
        lnXx = norms == null ? null : norms.create(hidden, 1);
        lnU = norms == null ? null : norms.create(2 * hidden, steps);
        lnUx = norms == null ? null : norms.create(hidden, steps);
    }

    @Override
    public List<Param> params() {
        List<Param> all = new ArrayList<>(List.of(w, b, wx, bx, u, ux, wo, bo));
        for (PanormNorm n : new PanormNorm[] {lnX, lnXx, lnU, lnUx}) {
            if (n != null) {
                all.addAll(n.params());
            }
        }
        return all;
    }

    @Override
    public int classes() {
        return classes;
    }

    /** Normalizes {@code x} through {@code norm} (slot {@code slot}) unless there is none. */
    private static float[] normalize(PanormNorm norm, int slot, float[] x, int rows, boolean training) {
        if (norm == null) {
            return x;
        }
        float[] y = new float[x.length];
        if (training) {
            norm.forwardTraining(slot, x, y, rows);
        } else {
            norm.forwardInference(x, y, rows);
        }
        return y;
    }

    /**
     * The logits of {@code rows} sequences, {@code images} holding each one's {@code steps x inputs} values
     * in turn; in training mode also keeps what {@link #backward} needs.
     */
    @Override
    public float[] logits(float[] images, int rows, boolean training) {
        int h2 = 2 * hidden;
        float[] x = new float[steps * rows * inputs];
        for (int r = 0; r < rows; r++) {
            for (int t = 0; t < steps; t++) {
                System.arraycopy(images, (r * steps + t) * inputs, x, (t * rows + r) * inputs, inputs);
            }
        }
        float[] gatesIn = new float[steps * rows * h2];
        float[] candidateIn = new float[steps * rows * hidden];
        Ops.linear(x, steps * rows, inputs, w.value(), b.value(), gatesIn, h2);
        Ops.linear(x, steps * rows, inputs, wx.value(), bx.value(), candidateIn, hidden);
        gatesIn = normalize(lnX, 0, gatesIn, steps * rows, training);
        candidateIn = normalize(lnXx, 0, candidateIn, steps * rows, training);
        float[][] hState = new float[steps + 1][];
        hState[0] = new float[rows * hidden];
        float[][] rs = new float[steps][];
        float[][] us = new float[steps][];
        float[][] qState = new float[steps][];
        float[][] cs = new float[steps][];
        for (int t = 0; t < steps; t++) {
            float[] hp = hState[t];
            float[] g = new float[rows * h2];
            float[] q = new float[rows * hidden];
            Ops.linear(hp, rows, hidden, u.value(), null, g, h2);
            Ops.linear(hp, rows, hidden, ux.value(), null, q, hidden);
            g = normalize(lnU, t, g, rows, training);
            q = normalize(lnUx, t, q, rows, training);
            float[] reset = new float[rows * hidden];
            float[] update = new float[rows * hidden];
            float[] c = new float[rows * hidden];
            float[] h = new float[rows * hidden];
            for (int r = 0; r < rows; r++) {
                int in2 = (t * rows + r) * h2;
                int in1 = (t * rows + r) * hidden;
                for (int j = 0; j < hidden; j++) {
                    int k = r * hidden + j;
                    reset[k] = Ops.sigmoid(g[r * h2 + j] + gatesIn[in2 + j]);
                    update[k] = Ops.sigmoid(g[r * h2 + hidden + j] + gatesIn[in2 + hidden + j]);
                    c[k] = (float) Math.tanh(q[k] * reset[k] + candidateIn[in1 + j]);
                    h[k] = update[k] * hp[k] + (1 - update[k]) * c[k];
                }
            }
            hState[t + 1] = h;
            rs[t] = reset;
            us[t] = update;
            qState[t] = q;
            cs[t] = c;
        }
        float[] logits = new float[rows * classes];
        Ops.linear(hState[steps], rows, hidden, wo.value(), bo.value(), logits, classes);
        if (training) {
            xs = x;
            a = gatesIn;
            ax = candidateIn;
            hs = hState;
            resets = rs;
            updates = us;
            qs = qState;
            candidates = cs;
        }
        return logits;
    }

    /** Backpropagation through time from {@code dLogits}; adds every parameter's gradient. */
    void backward(float[] dLogits, int rows) {
        int h2 = 2 * hidden;
        float[] dh = new float[rows * hidden];
        Ops.linearBackward(hs[steps], dLogits, rows, hidden, classes, wo.value(), wo.grad(), bo.grad(), dh);
        float[] dGatesIn = new float[steps * rows * h2];
        float[] dCandidateIn = new float[steps * rows * hidden];
        for (int t = steps - 1; t >= 0; t--) {
            float[] hp = hs[t];
            float[] reset = resets[t];
            float[] update = updates[t];
            float[] q = qs[t];
            float[] c = candidates[t];
            float[] dhPrev = new float[rows * hidden];
            float[] dg = new float[rows * h2];
            float[] dq = new float[rows * hidden];
            for (int r = 0; r < rows; r++) {
                int in2 = (t * rows + r) * h2;
                int in1 = (t * rows + r) * hidden;
                for (int j = 0; j < hidden; j++) {
                    int k = r * hidden + j;
                    float dUpdate = dh[k] * (hp[k] - c[k]);
                    float dc = dh[k] * (1 - update[k]);
                    dhPrev[k] = dh[k] * update[k];
                    float ds = dc * (1 - c[k] * c[k]);
                    dq[k] = ds * reset[k];
                    float dReset = ds * q[k];
                    dCandidateIn[in1 + j] = ds;
                    float dpr = dReset * reset[k] * (1 - reset[k]);
                    float dpu = dUpdate * update[k] * (1 - update[k]);
                    dGatesIn[in2 + j] = dpr;
                    dGatesIn[in2 + hidden + j] = dpu;
                    dg[r * h2 + j] = dpr;
                    dg[r * h2 + hidden + j] = dpu;
                }
            }
            if (lnU != null) {
                float[] dRaw = new float[dg.length];
                lnU.backward(t, dg, dRaw, rows);
                dg = dRaw;
                float[] dqRaw = new float[dq.length];
                lnUx.backward(t, dq, dqRaw, rows);
                dq = dqRaw;
            }
            // The first step's previous state is the constant zero: no gradient to pass on.
            Ops.linearBackward(hp, dg, rows, hidden, h2, u.value(), u.grad(), null, t > 0 ? dhPrev : null);
            Ops.linearBackward(hp, dq, rows, hidden, hidden, ux.value(), ux.grad(), null, t > 0 ? dhPrev : null);
            dh = dhPrev;
        }
        if (lnX != null) {
            float[] dRaw = new float[dGatesIn.length];
            lnX.backward(0, dGatesIn, dRaw, steps * rows);
            dGatesIn = dRaw;
            float[] dRawX = new float[dCandidateIn.length];
            lnXx.backward(0, dCandidateIn, dRawX, steps * rows);
            dCandidateIn = dRawX;
        }
        Ops.linearBackward(xs, dGatesIn, steps * rows, inputs, h2, w.value(), w.grad(), b.grad(), null);
        Ops.linearBackward(xs, dCandidateIn, steps * rows, inputs, hidden, wx.value(), wx.grad(), bx.grad(), null);
    }

    /** One training-mode forward and backward pass over a batch; returns its mean loss. */
    @Override
    public double gradients(float[] images, int[] labels, int[] index, int rows) {
        float[] logits = logits(images, rows, true);
        float[] dLogits = new float[logits.length];
        double loss = Ops.crossEntropy(logits, rows, classes, labels, index, dLogits);
        backward(dLogits, rows);
        return loss / rows;
    }
}
