package dev.panorm;

import java.util.ArrayList;
import java.util.List;

/**
 * {@link Backend#AUTO}: per call signature, the fastest of oneDNN on one thread, oneDNN on all
 * threads, and the Java kernels. The first calls of a new signature take turns among the candidates
 * ({@value #SAMPLES} each) and time them; the candidate with the lowest time is then used for that
 * signature from then on. Every candidate computes the whole call, so calibration costs no extra
 * work, only the slower candidates' time in those first calls (whose results agree within the
 * documented tolerance, not bit for bit).
 */
final class AutoLayerNorm implements LayerNormKernel {
    /** Timed calls per candidate; the minimum of a few is robust to a busy machine. */
    static final int SAMPLES = 3;
    /** Signatures remembered; beyond this the oldest is forgotten and would be timed again. */
    private static final int MAX_SIGNATURES = 256;

    private final LayerNormKernel[] candidates;
    private final String[] names;
    private final Object lock = new Object();
    /** Newest first; replaced, never modified, so calls read it without locking. */
    private volatile Choice[] choices = new Choice[0];

    /**
     * What is known about one signature, found by its 64-bit key alone: two signatures sharing a key
     * would share a choice, which costs speed, never correctness, since every candidate computes every
     * signature.
     */
    private static final class Choice {
        final Pass pass;
        final long key;
        final long[] best;
        int turns;          // guarded by the kernel's lock
        volatile int chosen = -1;

        Choice(Pass pass, long key, int candidates) {
            this.pass = pass;
            this.key = key;
            this.best = new long[candidates];
            java.util.Arrays.fill(best, Long.MAX_VALUE);
        }
    }

    AutoLayerNorm(LayerNormConfig config, int threads) {
        List<LayerNormKernel> kernels = new ArrayList<>();
        List<String> labels = new ArrayList<>();
        if (OneDnn.isAvailable()) {
            kernels.add(new OneDnnLayerNorm(config, 1));
            labels.add("onednn, 1 thread");
            int all = threads > 0 ? threads : OpenMp.maxThreads();
            if (all > 1) {
                kernels.add(new OneDnnLayerNorm(config, all));
                labels.add("onednn, " + all + " threads");
            }
        }
        kernels.add(JavaKernels.create(config, threads));
        labels.add(JavaKernels.vectorized() ? "java:vector" : "java:scalar");
        this.candidates = kernels.toArray(LayerNormKernel[]::new);
        this.names = labels.toArray(String[]::new);
    }

    @Override
    public Backend forward(Pass pass, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor mean, Tensor variance,
                           long rows) {
        Choice choice = choice(pass, src, dst, scale, shift, null, null, null, null);
        int chosen = choice.chosen;
        if (chosen >= 0) {
            return candidates[chosen].forward(pass, src, dst, scale, shift, mean, variance, rows);
        }
        int turn = nextTurn(choice);
        long start = System.nanoTime();
        Backend ran = candidates[turn].forward(pass, src, dst, scale, shift, mean, variance, rows);
        record(choice, turn, System.nanoTime() - start);
        return ran;
    }

    @Override
    public Backend backward(Pass pass, Tensor diffDst, Tensor src, Tensor mean, Tensor variance, Tensor scale,
                            Tensor diffSrc, Tensor diffScale, Tensor diffShift, long rows) {
        Choice choice = choice(pass, src, null, scale, null, diffDst, diffSrc, diffScale, diffShift);
        int chosen = choice.chosen;
        if (chosen >= 0) {
            return candidates[chosen].backward(pass, diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift, rows);
        }
        int turn = nextTurn(choice);
        long start = System.nanoTime();
        Backend ran = candidates[turn].backward(pass, diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift, rows);
        record(choice, turn, System.nanoTime() - start);
        return ran;
    }

    /** The choice for this signature, found or created. */
    private Choice choice(Pass pass, Tensor src, Tensor dst, Tensor scale, Tensor shift, Tensor diffDst, Tensor diffSrc,
                          Tensor diffScale, Tensor diffShift) {
        long key = CallSignature.key(pass, 0, src, dst, scale, shift, diffDst, diffSrc, diffScale, diffShift);
        for (Choice choice : choices) {
            if (choice.key == key && choice.pass == pass) {
                return choice;
            }
        }
        synchronized (lock) {
            Choice[] current = choices;
            for (Choice choice : current) {
                if (choice.key == key && choice.pass == pass) {
                    return choice;
                }
            }
            Choice choice = new Choice(pass, key, candidates.length);
            if (candidates.length == 1) {
                choice.chosen = 0;
            }
            Choice[] next = new Choice[Math.min(current.length + 1, MAX_SIGNATURES)];
            next[0] = choice;
            System.arraycopy(current, 0, next, 1, next.length - 1);
            choices = next;
            return choice;
        }
    }

    private int nextTurn(Choice choice) {
        synchronized (lock) {
            return choice.turns++ % candidates.length;
        }
    }

    private void record(Choice choice, int candidate, long nanos) {
        synchronized (lock) {
            choice.best[candidate] = Math.min(choice.best[candidate], nanos);
            if (choice.chosen < 0 && choice.turns >= SAMPLES * candidates.length) {
                int fastest = 0;
                for (int i = 1; i < candidates.length; i++) {
                    if (choice.best[i] < choice.best[fastest]) {
                        fastest = i;
                    }
                }
                choice.chosen = fastest;
            }
        }
    }

    @Override
    public String implementation(Tensor src, Tensor dst, Tensor scale, Tensor shift, long rows) {
        Choice choice = choice(Pass.FORWARD_INFERENCE, src, dst, scale, shift, null, null, null, null);
        int chosen = choice.chosen;
        if (chosen < 0) {
            return "auto: timing " + String.join(" / ", names) + " (" + choice.turns + " of "
                    + SAMPLES * candidates.length + " calls)";
        }
        return "auto: " + names[chosen] + " -> " + candidates[chosen].implementation(src, dst, scale, shift, rows);
    }

    @Override
    public void close() {
        for (LayerNormKernel candidate : candidates) {
            candidate.close();
        }
    }
}
