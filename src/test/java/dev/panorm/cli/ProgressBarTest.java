package dev.panorm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import org.junit.jupiter.api.Test;

class ProgressBarTest {
    @Test
    void theLineShowsShareRowsRateAndTimeLeft() {
        assertEquals(
                "[=========>                    ]  31% 1240/4000 rows, 620 rows/s, 4 s left",
                ProgressBar.line(1240, 4000, 2_000_000_000L));
        assertEquals(
                "[==============================] 100% 3000000/3000000 rows, 1.5M rows/s, 0 s left",
                ProgressBar.line(3_000_000, 3_000_000, 2_000_000_000L));
    }

    @Test
    void noBarWithoutATerminal() {
        assertNull(ProgressBar.onTerminal(System.err)); // tests run without one
    }
}
