package dev.panorm.examples.paper;

import dev.panorm.Backend;
import dev.panorm.LayerNorm;
import dev.panorm.LayerNormConfig;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/** Builds, trains and evaluates one model of the study. */
final class Training {
    private Training() {}

    enum Network {
        MLP,
        GRU
    }

    enum Method {
        NONE("no normalization"),
        BATCH("batch norm"),
        LAYER("layer norm (panorm)");

        final String label;

        Method(String label) {
            this.label = label;
        }
    }

    /** What one run trains; the seed fixes the initial weights and the order of the examples. */
    record Spec(Network network, Method method, int batch, int seed) {
        String label() {
            return network + ", " + method.label + ", batch " + batch + ", seed " + seed;
        }
    }

    /** The sizes and learning rates of the two networks. */
    record Shape(int mlpHidden, int gruHidden, double mlpLearningRate, double gruLearningRate) {}

    /** A run's curves: mean training loss over each epoch's batches, test error (fraction) after each epoch. */
    record Result(Spec spec, double[] trainLoss, double[] testError, double seconds, CallTimer timer) {}

    /**
     * A model and everything native it holds: the arena of its panorm tensors and its {@link LayerNorm}s.
     * Used by one thread (the arena is confined).
     */
    static final class Built implements AutoCloseable {
        final Spec spec;
        final Classifier model;
        final CallTimer timer = new CallTimer();
        private final Arena arena = Arena.ofConfined();
        private final List<LayerNorm> norms = new ArrayList<>();

        Built(Spec spec, Shape shape, Backend backend) {
            this.spec = spec;
            SplittableRandom init = new SplittableRandom(1000L + spec.seed());
            this.model = switch (spec.network()) {
                case MLP ->
                    new Mlp(
                            new int[] {Digits.PIXELS, shape.mlpHidden(), shape.mlpHidden(), Digits.CLASSES},
                            width -> switch (spec.method()) {
                                case NONE -> null;
                                // The paper: "for the smaller batch-size, the variance term for batch normalization is
                                // computed using the unbiased estimator".
                                case BATCH -> new BatchNorm(width, spec.batch() < 32);
                                case LAYER -> new PanormNorm(layerNorm(width, backend), arena, width, 1, timer);
                            },
                            init);
                case GRU -> {
                    if (spec.method() == Method.BATCH) {
                        throw new IllegalArgumentException("the study has no batch-normalized GRU");
                    }
                    Gru.Norms lns = spec.method() == Method.LAYER
                            ? (width, slots) -> new PanormNorm(layerNorm(width, backend), arena, width, slots, timer)
                            : null;
                    yield new Gru(8, 8, shape.gruHidden(), Digits.CLASSES, lns, init);
                }
            };
        }

        /** One thread per call: the runs themselves are spread over the cores. */
        private LayerNorm layerNorm(int width, Backend backend) {
            LayerNorm norm = LayerNorm.create(LayerNormConfig.of(width), backend, 1);
            norms.add(norm);
            return norm;
        }

        /** Gives this model the parameter values of {@code other}, a model of the same spec. */
        void copyParameters(Built other) {
            List<Param> to = model.params();
            List<Param> from = other.model.params();
            for (int i = 0; i < to.size(); i++) {
                System.arraycopy(
                        from.get(i).value(), 0, to.get(i).value(), 0, to.get(i).value().length);
            }
        }

        @Override
        public void close() {
            norms.forEach(LayerNorm::close);
            arena.close();
        }
    }

    /** Called after every epoch with the run, the epoch just finished (1-based) and how long it took. */
    interface Listener {
        void epochDone(Spec spec, int epoch, double seconds);
    }

    /**
     * Trains {@code built} for {@code epochs} epochs with Adam on full batches (the remainder of a shuffle is left
     * out).
     */
    static Result train(Built built, Digits train, Digits test, int epochs, double learningRate, Listener listener) {
        Spec spec = built.spec;
        Adam adam = new Adam(built.model.params(), learningRate);
        SplittableRandom shuffle = new SplittableRandom(2000L + spec.seed());
        int[] order = Rng.permutation(train.size(), shuffle);
        double[] loss = new double[epochs];
        double[] error = new double[epochs];
        long start = System.nanoTime();
        int batch = spec.batch();
        int batches = train.size() / batch;
        float[] x = new float[batch * Digits.PIXELS];
        int[] index = new int[batch];
        for (int epoch = 0; epoch < epochs; epoch++) {
            long epochStart = System.nanoTime();
            Rng.shuffle(order, shuffle);
            double sum = 0;
            for (int k = 0; k < batches; k++) {
                for (int r = 0; r < batch; r++) {
                    index[r] = order[k * batch + r];
                    System.arraycopy(train.images(), index[r] * Digits.PIXELS, x, r * Digits.PIXELS, Digits.PIXELS);
                }
                sum += built.model.gradients(x, train.labels(), index, batch);
                adam.step();
            }
            loss[epoch] = sum / batches;
            error[epoch] = testError(built.model, test);
            listener.epochDone(spec, epoch + 1, (System.nanoTime() - epochStart) / 1e9);
        }
        return new Result(spec, loss, error, (System.nanoTime() - start) / 1e9, built.timer);
    }

    /** The fraction of {@code test} misclassified, the whole set in one test-mode pass. */
    static double testError(Classifier model, Digits test) {
        return errorOf(model.logits(test.images(), test.size(), false), test);
    }

    static double errorOf(float[] logits, Digits test) {
        int wrong = 0;
        for (int n = 0; n < test.size(); n++) {
            wrong += Ops.argmax(logits, n, Digits.CLASSES) == test.labels()[n] ? 0 : 1;
        }
        return (double) wrong / test.size();
    }
}
