package dev.panorm.io;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A {@code .npy} file is malformed or holds something panorm does not read; the message says which file and why.
 *
 * <p>Guide: {@code docs/pipelines.md} (.npy files).
 */
public final class NpyFormatException extends IOException {
    private static final long serialVersionUID = 1L;

    private final transient Path path;

    NpyFormatException(Path path, String problem) {
        super(path + " " + problem);
        this.path = path;
    }

    /** {@return the offending file, as it was given; null after deserialization} */
    public Path path() {
        return path;
    }
}
