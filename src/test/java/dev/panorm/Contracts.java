package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.provider.Arguments;

/** What the backend contracts share: the grid of shapes, and the check that the backend under test ran. */
final class Contracts {
    /** Channel counts: tiny, odd, vector-sized, transformer-sized and one long row. */
    private static final int[] CHANNELS = {1, 2, 3, 7, 64, 768, 1000, 4096, 65536};

    private Contracts() {}

    static Stream<Integer> channelCounts() {
        return Arrays.stream(CHANNELS).boxed();
    }

    /**
     * Every channel count with the row counts for its length ({@code rows} below 4096 channels, fewer from
     * 4096 and from 65536, to bound the run time), each with scale and shift on and off: (rows, c, scale, shift).
     */
    static Stream<Arguments> shapes(int[] rows, int[] rowsFrom4096, int[] rowsFrom65536) {
        List<Arguments> cases = new ArrayList<>();
        for (int c : CHANNELS) {
            for (int r : c >= 65536 ? rowsFrom65536 : c >= 4096 ? rowsFrom4096 : rows) {
                for (int affine = 0; affine < 4; affine++) {
                    cases.add(Arguments.of(r, c, (affine & 1) != 0, (affine & 2) != 0));
                }
            }
        }
        return cases.stream();
    }

    /**
     * Asserts that {@code norm}'s last call ran on {@code backend} itself: the contracts' tensors (float32,
     * contiguous, float32 scale and shift) are ones no backend hands to another, so a contract that passed
     * on a fallback would prove nothing about the backend it names. AUTO may pick either of its two.
     */
    static void assertRanOn(Backend backend, LayerNorm norm) {
        Backend java = JavaKernels.vectorized() ? Backend.JAVA : Backend.JAVA_SCALAR;
        Backend ran = norm.lastBackend();
        switch (backend) {
            case ONEDNN, JAVA_SCALAR -> assertEquals(backend, ran, "the call ran on another backend");
            case JAVA -> assertEquals(java, ran, "the call ran on another backend");
            case AUTO -> assertTrue(ran == java || ran == Backend.ONEDNN && OneDnn.isAvailable(), "AUTO ran " + ran);
        }
    }
}
