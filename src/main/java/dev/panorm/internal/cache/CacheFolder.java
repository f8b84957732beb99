package dev.panorm.internal.cache;

import java.nio.file.InvalidPathException;
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

    /**
     * {@return the folder: {@link #PROPERTY}, else {@link #ENV}, else $XDG_CACHE_HOME/panorm (an absolute
     * XDG_CACHE_HOME only, as the XDG specification says), else $HOME/.cache/panorm (an absolute HOME), else
     *     .cache/panorm in Java's {@code user.home}}
     *
     * @throws InvalidPathException if the path cannot be encoded in this JVM's file name encoding, with a message
     *     that names the setting and the way out
     */
    public static Path root() {
        String source = "system property " + PROPERTY;
        String configured = System.getProperty(PROPERTY);
        if (configured == null || configured.isBlank()) {
            source = "environment variable " + ENV;
            configured = System.getenv(ENV);
        }
        try {
            if (configured != null && !configured.isBlank()) {
                return Path.of(configured).toAbsolutePath();
            }
            source = "environment variable XDG_CACHE_HOME";
            String xdg = System.getenv("XDG_CACHE_HOME");
            if (xdg != null && xdg.startsWith("/")) {
                return Path.of(xdg, "panorm");
            }
            // $HOME as the XDG specification says: user.home comes from the password database, which names a
            // folder that may not exist for a container's user (docker run -u UID -e HOME=...)
            source = "environment variable HOME";
            String home = System.getenv("HOME");
            if (home != null && home.startsWith("/")) {
                return Path.of(home, ".cache", "panorm");
            }
            source = "the home folder (user.home)";
            return Path.of(System.getProperty("user.home"), ".cache", "panorm").toAbsolutePath();
        } catch (InvalidPathException e) {
            throw unencodable(source, e);
        }
    }

    /**
     * {@return {@code e} again, its reason saying that {@code source} names a path this JVM cannot encode, and what
     * to do} Without a locale (common in containers) the JVM encodes file names in ASCII.
     */
    public static InvalidPathException unencodable(String source, InvalidPathException e) {
        return new InvalidPathException(
                e.getInput(),
                source + " names a path this JVM cannot encode in its file name encoding, "
                        + System.getProperty("sun.jnu.encoding", "the locale's")
                        + " (from the locale); run it under a UTF-8 locale such as LANG=C.UTF-8, or name an ASCII"
                        + " path");
    }
}
