package dev.panorm;

/**
 * A failure inside panorm's native layer. Invalid arguments are reported with
 * {@link IllegalArgumentException} and use of a closed object with {@link IllegalStateException},
 * always before any native call; this type covers what only the native side can tell.
 *
 * <p>Guide: {@code docs/api.md} (errors).
 */
public abstract sealed class PanormException extends RuntimeException permits OneDnnException, NativeLibraryException {
    private static final long serialVersionUID = 1L;

    PanormException(String message, Throwable cause) {
        super(message, cause);
    }
}
