package dev.panorm;

/**
 * panorm's system properties ({@code -Dpanorm....}). A value that does not parse is named in one warning
 * ({@code System.Logger} {@code dev.panorm}) and the default taken, rather than ignored without a word.
 */
final class Settings {
    private static final System.Logger LOG = System.getLogger("dev.panorm");

    private Settings() {}

    /** {@return {@code name}'s value as a whole number, or null where it is unset or does not parse} */
    static Long wholeNumber(String name) {
        String value = System.getProperty(name);
        if (value == null) {
            return null;
        }
        try {
            return Long.parseLong(value.strip());
        } catch (NumberFormatException e) {
            warn(name, value, "a whole number");
            return null;
        }
    }

    /** {@return {@code name}'s value, {@code true} or {@code false} in any case, or {@code otherwise}} */
    static boolean flag(String name, boolean otherwise) {
        String value = System.getProperty(name);
        if (value == null) {
            return otherwise;
        }
        if (value.strip().equalsIgnoreCase("true")) {
            return true;
        }
        if (value.strip().equalsIgnoreCase("false")) {
            return false;
        }
        warn(name, value, "true or false");
        return otherwise;
    }

    private static void warn(String name, String value, String expected) {
        LOG.log(
                System.Logger.Level.WARNING,
                "panorm: -D" + name + "=" + value + " is not " + expected + "; panorm ignores it");
    }
}
