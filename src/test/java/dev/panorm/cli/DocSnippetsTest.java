package dev.panorm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.panorm.DataType;
import dev.panorm.Tensor;
import dev.panorm.TestJvm;
import dev.panorm.io.Npy;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.StringJoiner;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import javax.tools.Diagnostic;
import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The documentation's code, compiled and run, so that a snippet that stops working fails the build
 * with its file and line (see {@link DocSnippets} for the markers). Java blocks compile against
 * panorm's classes as a user's program would, with the imports a reader would add; command-line
 * blocks run through {@link Main} on small generated files.
 */
class DocSnippetsTest {
    /** Imports every Java snippet gets; a snippet's own imports come first and win. */
    private static final List<String> IMPORTS = List.of(
            "dev.panorm.*",
            "dev.panorm.io.*",
            "dev.panorm.pipeline.*",
            "dev.panorm.arrow.*",
            "java.io.*",
            "java.lang.foreign.*",
            "java.nio.file.*",
            "java.util.*",
            "org.apache.arrow.memory.*",
            "org.apache.arrow.vector.*",
            "org.apache.arrow.vector.complex.*",
            "org.apache.arrow.vector.ipc.*");

    private static final Pattern TOP_LEVEL_TYPE =
            Pattern.compile("^(?:public\\s+|final\\s+|abstract\\s+)*(?:class|record|interface|enum)\\s+(\\w+)");
    private static final Pattern PRINTS = Pattern.compile("//\\s*prints:\\s*(.+?)\\s*$");
    private static final Pattern COMMAND = Pattern.compile("^\\s*(?:\\$\\s+)?(?:scripts/)?panorm\\s+(.*)$");

    @TempDir
    Path temp;

    /** README.md, docs/**.md, and the javadoc of panorm's sources. */
    static List<DocSnippets> documentation() throws IOException {
        List<DocSnippets> blocks = new ArrayList<>(DocSnippets.markdown(Path.of("README.md")));
        try (Stream<Path> docs = Files.walk(Path.of("docs"))) {
            for (Path file :
                    docs.filter(p -> p.toString().endsWith(".md")).sorted().toList()) {
                blocks.addAll(DocSnippets.markdown(file));
            }
        }
        try (Stream<Path> sources = Files.walk(Path.of("src/main/java"))) {
            for (Path file :
                    sources.filter(p -> p.toString().endsWith(".java")).sorted().toList()) {
                blocks.addAll(DocSnippets.javadoc(file));
            }
        }
        return blocks;
    }

    @Test
    void everyJavaSnippetCompilesAndTheRunnableOnesPrintWhatTheySay() throws Exception {
        List<DocSnippets> java = documentation().stream()
                .filter(block -> block.language().equals("java") && block.marked("skip") == null)
                .toList();
        assertTrue(java.size() >= 6, "found only " + java.size() + " Java snippets");
        compile(java, temp);
        try (URLClassLoader loader =
                new URLClassLoader(new URL[] {temp.toUri().toURL()}, getClass().getClassLoader())) {
            for (int i = 0; i < java.size(); i++) {
                if (java.get(i).marked("run") != null) {
                    run(java.get(i), loader.loadClass("snippet" + i + ".Snippet"));
                }
            }
        }
    }

    @Test
    void everyCommandLineExampleRuns() throws IOException {
        int commands = 0;
        for (DocSnippets block : documentation()) {
            if (block.language().equals("java") || block.marked("skip") != null) {
                continue;
            }
            generateFiles(block);
            for (int i = 0; i < block.code().size(); i++) {
                Matcher command = COMMAND.matcher(block.code().get(i));
                if (!command.matches()) {
                    continue;
                }
                String[] args = Arrays.stream(command.group(1).strip().split("\\s+"))
                        .map(arg -> arg.matches(".*\\.(npy|png|svg|json)")
                                ? temp.resolve(arg).toString()
                                : arg)
                        .toArray(String[]::new);
                var out = new ByteArrayOutputStream();
                var err = new ByteArrayOutputStream();
                int exit = Main.run(
                        args,
                        new PrintStream(out, true, StandardCharsets.UTF_8),
                        new PrintStream(err, true, StandardCharsets.UTF_8));
                assertEquals(
                        0,
                        exit,
                        block.file() + ":" + (block.line() + i) + ": `panorm "
                                + command.group(1).strip() + "` failed: " + err.toString(StandardCharsets.UTF_8));
                commands++;
            }
        }
        assertTrue(commands >= 1, "found no command-line example to run");
    }

    @Test
    void aBrokenSnippetFailsWithItsFileAndLine() throws IOException {
        Path page = temp.resolve("page.md");
        Files.writeString(page, """
                Text.

                <!-- snippet: given Tensor x -->
                ```java
                long rows = x.shape()[0];
                int oops = rows;
                ```
                """);
        AssertionError failure = null;
        try {
            compile(DocSnippets.markdown(page), temp.resolve("out"));
        } catch (AssertionError e) {
            failure = e;
        }
        assertTrue(failure != null, "a snippet that cannot compile passed");
        assertTrue(failure.getMessage().contains(page + ":6: "), failure.getMessage());
        assertTrue(failure.getMessage().contains("lossy conversion"), failure.getMessage());
        assertFalse(failure.getMessage().contains(page + ":5: "), failure.getMessage());
    }

    /** Compiles the snippets into {@code out} as {@code snippetN.Snippet}; fails naming each error's file and line. */
    private static void compile(List<DocSnippets> snippets, Path out) throws IOException {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        var diagnostics = new DiagnosticCollector<JavaFileObject>();
        Path sources = Files.createDirectories(out.resolve("sources"));
        List<Path> files = new ArrayList<>();
        List<Integer> headers = new ArrayList<>();
        for (int i = 0; i < snippets.size(); i++) {
            String[] source = source(snippets.get(i), i);
            Path file = Files.createDirectories(sources.resolve("snippet" + i)).resolve(source[0] + ".java");
            Files.writeString(file, source[1]);
            files.add(file);
            headers.add(Integer.parseInt(source[2]));
        }
        try (StandardJavaFileManager manager = javac.getStandardFileManager(null, null, StandardCharsets.UTF_8)) {
            List<String> options =
                    List.of("-d", out.toString(), "-classpath", TestJvm.classPath(), "-proc:none", "-Xlint:-options");
            boolean compiled = javac.getTask(
                            null, manager, diagnostics, options, null, manager.getJavaFileObjectsFromPaths(files))
                    .call();
            StringJoiner errors = new StringJoiner("\n");
            for (Diagnostic<? extends JavaFileObject> d : diagnostics.getDiagnostics()) {
                if (d.getKind() != Diagnostic.Kind.ERROR) {
                    continue;
                }
                int index = files.indexOf(Path.of(d.getSource().toUri()));
                DocSnippets snippet = snippets.get(index);
                long line = snippet.line() + d.getLineNumber() - headers.get(index) - 1;
                errors.add(snippet.file() + ":" + line + ": " + d.getMessage(null));
            }
            if (!compiled) {
                fail("documentation snippets that do not compile:\n" + errors);
            }
        }
    }

    /**
     * A snippet as a compilation unit: {file name, source, lines before the snippet's first}. Its
     * import lines move up (blank lines keep the numbering); statements go into a method whose
     * parameters are the marker's {@code given} names; a snippet that declares a type is kept whole.
     */
    private static String[] source(DocSnippets snippet, int index) {
        StringBuilder header = new StringBuilder("package snippet" + index + ";");
        List<String> body = new ArrayList<>();
        String type = null;
        for (String line : snippet.code()) {
            if (line.startsWith("import ")) {
                header.append(' ').append(line.strip());
                body.add("");
                continue;
            }
            Matcher declaration = TOP_LEVEL_TYPE.matcher(line);
            if (type == null && declaration.find()) {
                type = declaration.group(1);
            }
            body.add(line);
        }
        for (String name : IMPORTS) {
            header.append(" import ").append(name).append(';');
        }
        header.append('\n');
        if (type != null) {
            return new String[] {type, header + String.join("\n", body) + "\n", "1"};
        }
        header.append("class Snippet { static void snippet(")
                .append(parameters(snippet.marked("given")))
                .append(") throws Throwable {\n");
        return new String[] {"Snippet", header + String.join("\n", body) + "\n}}\n", "2"};
    }

    /** {@code "Tensor x, y; Arena arena"} as parameters: {@code "Tensor x, Tensor y, Arena arena"}. */
    private static String parameters(String given) {
        if (given == null || given.isBlank()) {
            return "";
        }
        StringJoiner parameters = new StringJoiner(", ");
        for (String declaration : given.split(";")) {
            String[] names = declaration.strip().split("\\s*,\\s*");
            int space = names[0].lastIndexOf(' ');
            String type = names[0].substring(0, space);
            parameters.add(names[0]);
            for (int i = 1; i < names.length; i++) {
                parameters.add(type + " " + names[i]);
            }
        }
        return parameters.toString();
    }

    private static void run(DocSnippets snippet, Class<?> compiled) throws Exception {
        Method method = compiled.getDeclaredMethod("snippet");
        method.setAccessible(true);
        PrintStream original = System.out;
        var printed = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(printed, true, StandardCharsets.UTF_8));
            method.invoke(null);
        } catch (InvocationTargetException e) {
            throw new AssertionError(snippet.where() + ": the snippet threw " + e.getCause(), e.getCause());
        } finally {
            System.setOut(original);
        }
        String output = printed.toString(StandardCharsets.UTF_8);
        for (int i = 0; i < snippet.code().size(); i++) {
            Matcher prints = PRINTS.matcher(snippet.code().get(i));
            if (prints.find()) {
                assertTrue(
                        output.contains(prints.group(1)),
                        snippet.file() + ":" + (snippet.line() + i) + ": printed no \"" + prints.group(1) + "\" but:\n"
                                + output);
            }
        }
    }

    /** The marker's {@code files} as float32 .npy files of seeded normal values, in the temporary directory. */
    private void generateFiles(DocSnippets block) throws IOException {
        String files = block.marked("files");
        if (files == null) {
            return;
        }
        Random random = new Random(1);
        for (String spec : files.split("\\s+")) {
            String[] nameAndShape = spec.split("=");
            long[] shape = Arrays.stream(nameAndShape[1].split("x"))
                    .mapToLong(Long::parseLong)
                    .toArray();
            try (Arena arena = Arena.ofConfined()) {
                Tensor tensor = Tensor.allocate(arena, DataType.F32, shape);
                float[] values = new float[Math.toIntExact(tensor.elementCount())];
                for (int i = 0; i < values.length; i++) {
                    values[i] = (float) random.nextGaussian();
                }
                tensor.copyFrom(values);
                Npy.write(temp.resolve(nameAndShape[0]), tensor);
            }
        }
    }
}
