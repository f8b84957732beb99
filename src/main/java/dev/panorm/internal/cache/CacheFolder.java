package dev.panorm.internal.cache;

import java.nio.file.Path;

/**
 * The per-user folder where panorm keeps what it can rebuild: the extracted oneDNN libraries and AUTO's
 * profiles ({@link AutoProfile}). Public for the module's own packages only: this package is not exported.
 */
public final class CacheFolder {
    /** The system property that names the folder. */
    public static final String PROPERTY = "panorm.cache.dir";
    /** The environment variable that names the folder when the property does not. */
    public static final String ENV = "PANORM_CACHE_DIR";

    private CacheFolder() {}

    /** {@return the folder: {@link #PROPERTY}, else {@link #ENV}, else $XDG_CACHE_HOME/panorm or ~/.cache/panorm} */
    public static Path root() {
        String configured = System.getProperty(PROPERTY);
        if (configured == null || configured.isBlank()) {
            configured = System.getenv(ENV);
        }
        if (configured != null && !configured.isBlank()) {
            return Path.of(configured).toAbsolutePath();
        }
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
        return base.resolve("panorm").toAbsolutePath();
    }
}
