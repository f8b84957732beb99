package dev.panorm;

import java.io.File;
import java.nio.file.Path;

/** What tests need to start a child JVM like the test JVM: its launcher and its class path. Test code only. */
public final class TestJvm {
    private TestJvm() {}

    /** The {@code java} launcher running this JVM. */
    public static String java() {
        return ProcessHandle.current()
                .info()
                .command()
                .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    }

    /**
     * Everything this JVM can load, as one class path: Surefire runs the tests on the module path
     * (panorm is a module, its tests are patched into it, and the libraries it requires sit on the
     * module path), so the class path alone lacks panorm's own classes. Children run on the class
     * path, as a program that uses panorm's jar does, unless a test says otherwise.
     */
    public static String classPath() {
        String classPath = System.getProperty("java.class.path");
        String modulePath = System.getProperty("jdk.module.path", "");
        return modulePath.isEmpty() ? classPath : classPath + File.pathSeparator + modulePath;
    }
}
