package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** System properties that do not parse fall back to the default (with a warning), as unset ones do. */
class SettingsTest {
    private static final String NAME = "panorm.test.setting";

    @AfterEach
    void clear() {
        System.clearProperty(NAME);
    }

    @Test
    void wholeNumbers() {
        assertNull(Settings.wholeNumber(NAME));
        System.setProperty(NAME, " 4096 ");
        assertEquals(4096L, Settings.wholeNumber(NAME));
        System.setProperty(NAME, "abc");
        assertNull(Settings.wholeNumber(NAME));
        System.setProperty(NAME, "1e6");
        assertNull(Settings.wholeNumber(NAME));
    }

    @Test
    void flags() {
        assertTrue(Settings.flag(NAME, true));
        System.setProperty(NAME, "FALSE");
        assertFalse(Settings.flag(NAME, true));
        System.setProperty(NAME, "true");
        assertTrue(Settings.flag(NAME, false));
        System.setProperty(NAME, "maybe");
        assertTrue(Settings.flag(NAME, true));
        assertFalse(Settings.flag(NAME, false));
    }
}
