package dev.panorm;

/**
 * oneDNN could not be loaded: an unsupported platform, a missing or unreadable library, or a
 * library of the wrong version. The message names what was looked for and how to fix it.
 * {@link Backend#JAVA} keeps working without it.
 *
 * <p>Guide: {@code docs/loading.md}.
 */
public final class NativeLibraryException extends PanormException {
    private static final long serialVersionUID = 1L;

    NativeLibraryException(String message, Throwable cause) {
        super(message, cause);
    }
}
