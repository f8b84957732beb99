package dev.panorm.bench;

import dev.panorm.Backend;
import dev.panorm.LayerNorm;
import dev.panorm.Tensor;

/** One implementation being raced, bound to a {@link Fixture}'s tensors. */
sealed interface Peer extends AutoCloseable permits Peer.Panorm, JniPeer {

    /** Prepares {@code pass} (building what it needs once, outside the timed calls). */
    void prepare(Pass pass);

    /** Forward inference: dst from src, scale and shift. */
    void forward();

    /** Forward training: dst, mean and variance. */
    void training();

    /** Backward: diffSrc, diffScale and diffShift from diffDst, src and the statistics. */
    void backward();

    /** Forward with the fixture's statistics given. */
    default void globalForward() {
        throw new UnsupportedOperationException(this + " runs forward, training and backward only");
    }

    /** Backward for diffSrc only. */
    default void backwardData() {
        throw new UnsupportedOperationException(this + " runs forward, training and backward only");
    }

    @Override
    void close();

    default void run(Pass pass) {
        switch (pass) {
            case FORWARD -> forward();
            case TRAINING -> training();
            case BACKWARD -> backward();
            case GLOBALFORWARD -> globalForward();
            case BACKWARDDATA -> backwardData();
        }
    }

    /** The peer named by a benchmark's {@code impl} parameter. */
    static Peer create(String impl, Fixture fixture) {
        return switch (impl) {
            case "onednn-1t" -> new Panorm(fixture, Backend.ONEDNN, 1);
            case "onednn-2t" -> new Panorm(fixture, Backend.ONEDNN, 2);
            case "java-1t" -> new Panorm(fixture, Backend.JAVA, 1);
            case "java-2t" -> new Panorm(fixture, Backend.JAVA, 2);
            case "java-scalar" -> new Panorm(fixture, Backend.JAVA_SCALAR, 1);
            case "auto" -> new Panorm(fixture, Backend.AUTO, 0);
            case "jni-1t" -> new JniPeer(fixture, 1);
            case "jni-2t" -> new JniPeer(fixture, 2);
            default -> throw new IllegalArgumentException("unknown impl " + impl);
        };
    }

    /** panorm itself, through its public API. */
    final class Panorm implements Peer {
        private final LayerNorm norm;
        private final Tensor src, dst, scale, shift, mean, variance, diffDst, diffSrc, diffScale, diffShift;

        Panorm(Fixture f, Backend backend, int threads) {
            norm = LayerNorm.create(f.config(), backend, threads);
            src = f.src;
            dst = f.dst;
            scale = f.scale;
            shift = f.shift;
            mean = f.mean;
            variance = f.variance;
            diffDst = f.diffDst;
            diffSrc = f.diffSrc;
            diffScale = f.diffScale;
            diffShift = f.diffShift;
        }

        @Override
        public void prepare(Pass pass) {
            run(pass);
        }

        @Override
        public void forward() {
            norm.forward(src, dst, scale, shift);
        }

        @Override
        public void training() {
            norm.forwardTraining(src, dst, scale, shift, mean, variance);
        }

        @Override
        public void backward() {
            norm.backward(diffDst, src, mean, variance, scale, diffSrc, diffScale, diffShift);
        }

        @Override
        public void globalForward() {
            norm.forwardWithGlobalStatistics(src, dst, scale, shift, mean, variance);
        }

        @Override
        public void backwardData() {
            norm.backwardData(diffDst, src, mean, variance, scale, diffSrc);
        }

        @Override
        public String toString() {
            return norm + ": " + norm.implementation(src, dst, scale, shift);
        }

        @Override
        public void close() {
            norm.close();
        }
    }
}
