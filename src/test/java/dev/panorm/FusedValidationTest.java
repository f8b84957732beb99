package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Bad input to the fused and quantized operations: an exception that names the tensor and the problem,
 * and no output written (sum, dst and the scales keep their sentinel values).
 */
class FusedValidationTest {
    private static final int C = 16;
    private static final int ROWS = 3;
    private static final float SENTINEL = -7.25f;

    /** The tensors of one call; outputs are filled with {@link #SENTINEL}. */
    private record Fixture(
            Arena arena,
            Tensor x,
            Tensor r,
            Tensor sum,
            Tensor dst,
            Tensor q,
            Tensor scales,
            Tensor gamma,
            Tensor beta,
            Tensor mean,
            Tensor variance) {
        static Fixture create(Arena arena) {
            return new Fixture(
                    arena,
                    Tensor.ofFloats(arena, TestData.gaussian(ROWS * C, 0, 1, 1), ROWS, C),
                    Tensor.ofFloats(arena, TestData.gaussian(ROWS * C, 0, 1, 2), ROWS, C),
                    filled(arena, ROWS, C),
                    filled(arena, ROWS, C),
                    Tensor.allocate(arena, DataType.S8, ROWS, C),
                    filled(arena, ROWS),
                    Tensor.ofFloats(arena, TestData.gaussian(C, 1, 1, 3), C),
                    Tensor.ofFloats(arena, TestData.gaussian(C, 0, 1, 4), C),
                    filled(arena, ROWS),
                    filled(arena, ROWS));
        }

        static Tensor filled(Arena arena, long... shape) {
            Tensor t = Tensor.allocate(arena, DataType.F32, shape);
            float[] values = new float[(int) t.elementCount()];
            java.util.Arrays.fill(values, SENTINEL);
            return t.copyFrom(values);
        }

        void assertUntouched() {
            for (Tensor out : new Tensor[] {sum, dst, scales, mean, variance}) {
                float[] values = out.toFloatArray();
                float[] expected = new float[values.length];
                java.util.Arrays.fill(expected, SENTINEL);
                assertArrayEquals(expected, values, "an output was written");
            }
            assertArrayEquals(new float[ROWS * C], q.toFloatArray(), "q was written");
        }
    }

    private interface Case {
        void run(LayerNorm norm, Fixture f);
    }

    private static void expect(Backend backend, String fragment, Case call) {
        try (Arena arena = Arena.ofConfined();
                LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), backend)) {
            Fixture f = Fixture.create(arena);
            IllegalArgumentException thrown = assertThrows(IllegalArgumentException.class, () -> call.run(norm, f));
            assertTrue(
                    thrown.getMessage().contains(fragment),
                    () -> "message '" + thrown.getMessage() + "' should mention '" + fragment + "'");
            f.assertUntouched();
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void mismatchedResidual(Backend backend) {
        expect(
                backend,
                "residual F32[4, 16] must have the shape of src F32[3, 16]",
                (norm, f) -> norm.forwardResidual(
                        f.x(),
                        Tensor.allocate(f.arena(), DataType.F32, 4, C),
                        null,
                        f.sum(),
                        f.dst(),
                        f.gamma(),
                        f.beta()));
        expect(
                backend,
                "residual BF16[3, 16] must have the data type of src F32[3, 16]",
                (norm, f) -> norm.forwardResidual(
                        f.x(),
                        Tensor.allocate(f.arena(), DataType.BF16, ROWS, C),
                        null,
                        f.sum(),
                        f.dst(),
                        f.gamma(),
                        f.beta()));
        expect(
                backend,
                "sum F16[3, 16] must have the data type of src",
                (norm, f) -> norm.forwardResidual(
                        f.x(),
                        f.r(),
                        null,
                        Tensor.allocate(f.arena(), DataType.F16, ROWS, C),
                        f.dst(),
                        f.gamma(),
                        f.beta()));
        expect(
                backend,
                "bias F32[15] must have shape [16]",
                (norm, f) -> norm.forwardResidual(
                        f.x(),
                        f.r(),
                        Tensor.allocate(f.arena(), DataType.F32, C - 1),
                        f.sum(),
                        f.dst(),
                        f.gamma(),
                        f.beta()));
        expect(
                backend,
                "sum is null; the training pass writes it",
                (norm, f) -> norm.forwardResidualTraining(
                        f.x(), f.r(), null, null, f.dst(), f.gamma(), f.beta(), f.mean(), f.variance()));
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void overlappingOutputs(Backend backend) {
        expect(
                backend,
                "dst overlaps sum",
                (norm, f) -> norm.forwardResidual(f.x(), f.r(), null, f.sum(), f.sum(), f.gamma(), f.beta()));
        expect(backend, "sum partially overlaps src", (norm, f) -> {
            var buffer = f.arena().allocate((ROWS * C + 1) * Float.BYTES, 64);
            norm.forwardResidual(
                    Tensor.of(buffer.asSlice(0, ROWS * C * Float.BYTES), DataType.F32, ROWS, C),
                    f.r(),
                    null,
                    Tensor.of(buffer.asSlice(Float.BYTES), DataType.F32, ROWS, C),
                    f.dst(),
                    f.gamma(),
                    f.beta());
        });
        expect(
                backend,
                "dstScales overlaps dst",
                (norm, f) -> norm.forwardQuantized(
                        f.x(),
                        null,
                        null,
                        null,
                        f.q(),
                        f.gamma(),
                        f.beta(),
                        Tensor.of(f.q().segment(), DataType.F32, ROWS)));
        expect(
                backend,
                "dst overlaps src",
                (norm, f) -> norm.forwardQuantized(
                        f.x(),
                        null,
                        null,
                        null,
                        Tensor.of(f.x().segment(), DataType.S8, ROWS, C),
                        f.gamma(),
                        f.beta(),
                        f.scales()));
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void badQuantization(Backend backend) {
        expect(
                backend,
                "dstScales F32[4] must have one value per row of src",
                (norm, f) -> norm.forwardQuantized(
                        f.x(), f.r(), null, f.sum(), f.q(), f.gamma(), f.beta(), Fixture.filled(f.arena(), ROWS + 1)));
        expect(
                backend,
                "dst F32[3, 16] must be S8",
                (norm, f) ->
                        norm.forwardQuantized(f.x(), f.r(), null, f.sum(), f.dst(), f.gamma(), f.beta(), f.scales()));
        expect(
                backend,
                "the static dstScale is 0.0",
                (norm, f) -> norm.forwardQuantized(f.x(), null, null, null, f.q(), f.gamma(), f.beta(), 0f));
        expect(
                backend,
                "the static dstScale is 1.4E-39; it must be finite and positive, with a float reciprocal",
                (norm, f) -> norm.forwardQuantized(f.x(), null, null, null, f.q(), f.gamma(), f.beta(), 1.4e-39f));
        expect(
                backend,
                "the static dstScale is Infinity",
                (norm, f) -> norm.forwardQuantized(
                        f.x(), null, null, null, f.q(), f.gamma(), f.beta(), Float.POSITIVE_INFINITY));
        expect(
                backend,
                "the static dstScale is NaN",
                (norm, f) -> norm.forwardQuantized(f.x(), null, null, null, f.q(), f.gamma(), f.beta(), Float.NaN));
        expect(
                backend,
                "sum was passed without a residual",
                (norm, f) -> norm.forwardQuantized(f.x(), null, null, f.sum(), f.q(), f.gamma(), f.beta(), f.scales()));
        expect(
                backend,
                "dst S8[3, 16] is int8: S8 is only the dst of forwardQuantized",
                (norm, f) -> norm.forward(f.x(), f.q(), f.gamma(), f.beta()));
        expect(
                backend,
                "dst S8[3, 16] is int8",
                (norm, f) -> norm.forwardResidual(f.x(), f.r(), null, f.sum(), f.q(), f.gamma(), f.beta()));
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void int8HasNoBackwardPass(Backend backend) {
        expect(
                backend,
                "diffDst S8[3, 16] is int8",
                (norm, f) ->
                        norm.backward(f.q(), f.x(), f.mean(), f.variance(), f.gamma(), f.dst(), f.sum(), f.scales()));
        expect(
                backend,
                "diffDst S8[3, 16] is int8",
                (norm, f) -> norm.backwardResidual(
                        f.q(), null, f.x(), f.mean(), f.variance(), f.gamma(), f.dst(), null, null));
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void backwardResidualNamesItsOwnTensors(Backend backend) {
        expect(
                backend,
                "variance F32[4] must have one value per row of sum F32[3, 16], that is the shape of sum without",
                (norm, f) -> norm.backwardResidual(
                        f.dst(),
                        null,
                        f.x(),
                        f.mean(),
                        Fixture.filled(f.arena(), ROWS + 1),
                        f.gamma(),
                        f.sum(),
                        null,
                        null));
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void closedOperationRefusesTheFusedCalls(Backend backend) {
        try (Arena arena = Arena.ofConfined()) {
            Fixture f = Fixture.create(arena);
            LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), backend);
            norm.close();
            assertThrows(
                    IllegalStateException.class,
                    () -> norm.forwardResidual(f.x(), f.r(), null, f.sum(), f.dst(), f.gamma(), f.beta()));
            assertThrows(
                    IllegalStateException.class,
                    () -> norm.forwardQuantized(f.x(), null, null, null, f.q(), f.gamma(), f.beta(), f.scales()));
            assertThrows(
                    IllegalStateException.class,
                    () -> norm.backwardResidual(
                            f.dst(), null, f.x(), f.mean(), f.variance(), f.gamma(), f.sum(), null, null));
            f.assertUntouched();
        }
    }
}
