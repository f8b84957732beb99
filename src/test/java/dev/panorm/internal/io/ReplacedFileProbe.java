package dev.panorm.internal.io;

import java.nio.ByteBuffer;
import java.nio.file.Path;

/**
 * Run in a child JVM by {@link ReplacedFileTest}: starts writing {@code args[0]} (an unnamed file if {@code args[1]}
 * is {@code true}), prints {@code writing} and waits to be killed.
 */
public final class ReplacedFileProbe {
    private ReplacedFileProbe() {}

    public static void main(String[] args) throws Exception {
        ReplacedFile file = ReplacedFile.create(Path.of(args[0]), Boolean.parseBoolean(args[1]));
        file.channel().write(ByteBuffer.allocate(1 << 20));
        System.out.println("writing");
        System.out.flush();
        Thread.sleep(60_000);
    }
}
