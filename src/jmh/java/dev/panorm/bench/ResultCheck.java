package dev.panorm.bench;

import dev.panorm.DataType;
import dev.panorm.LayerNorm;
import dev.panorm.Tensor;
import java.util.List;
import java.util.Objects;
import java.util.stream.Stream;

/**
 * Checks, once per fork, that a peer's outputs for a pass agree with the scalar Java kernel's (double
 * accumulation) on the same inputs: the benchmark times a correct computation or none.
 */
final class ResultCheck {
    private ResultCheck() {}

    /** A tensor's elements, widened to float. */
    static float[] values(Tensor tensor) {
        return tensor.toFloatArray();
    }

    /**
     * Runs {@code pass} on {@code peer}, then on the reference, and compares every output.
     *
     * @throws AssertionError naming the output and the worst element if they disagree
     */
    static void against(Fixture fixture, Peer peer, Pass pass) {
        List<Tensor> outputs = Stream.of(
                        switch (pass) {
                            case FORWARD -> new Tensor[] {fixture.dst};
                            case TRAINING -> new Tensor[] {fixture.dst, fixture.mean, fixture.variance};
                            case BACKWARD -> new Tensor[] {fixture.diffSrc, fixture.diffScale, fixture.diffShift};
                            case GLOBALFORWARD -> new Tensor[] {fixture.dst};
                            case BACKWARDDATA -> new Tensor[] {fixture.diffSrc};
                        })
                .filter(Objects::nonNull) // RMS normalization has no mean and no shift
                .toList();
        peer.run(pass);
        float[][] actual = outputs.stream().map(ResultCheck::values).toArray(float[][]::new);
        try (LayerNorm reference = fixture.reference()) {
            switch (pass) {
                case FORWARD -> reference.forward(fixture.src, fixture.dst, fixture.scale, fixture.shift);
                case TRAINING ->
                    reference.forwardTraining(
                            fixture.src, fixture.dst, fixture.scale, fixture.shift, fixture.mean, fixture.variance);
                case GLOBALFORWARD ->
                    reference.forwardWithGlobalStatistics(
                            fixture.src, fixture.dst, fixture.scale, fixture.shift, fixture.mean, fixture.variance);
                case BACKWARDDATA ->
                    reference.backwardData(
                            fixture.diffDst,
                            fixture.src,
                            fixture.mean,
                            fixture.variance,
                            fixture.scale,
                            fixture.diffSrc);
                case BACKWARD ->
                    reference.backward(
                            fixture.diffDst,
                            fixture.src,
                            fixture.mean,
                            fixture.variance,
                            fixture.scale,
                            fixture.diffSrc,
                            fixture.diffScale,
                            fixture.diffShift);
            }
        }
        for (int k = 0; k < outputs.size(); k++) {
            Tensor output = outputs.get(k);
            float[] expected = values(output);
            // The outputs are O(1) per element, dgamma/dbeta sums over rows: compare relative to the largest.
            double magnitude = 1;
            for (float value : expected) {
                magnitude = Math.max(magnitude, Math.abs(value));
            }
            double tolerance = (output.dataType() == DataType.F32 ? 1e-4 : 2e-2) * magnitude;
            for (int i = 0; i < expected.length; i++) {
                if (!(Math.abs(actual[k][i] - expected[i]) <= tolerance)) {
                    throw new AssertionError(peer + ", " + pass + ": output " + k + " element " + i + " is "
                            + actual[k][i] + ", the reference says " + expected[i] + " (tolerance " + tolerance + ")");
                }
            }
        }
    }
}
