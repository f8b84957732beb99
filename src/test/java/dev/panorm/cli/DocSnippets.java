package dev.panorm.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The code blocks of panorm's documentation, as {@link DocSnippetsTest} compiles and runs them: every
 * {@code java} block of a Markdown file, every {@code sh} block that runs {@code panorm}, and every
 * {@code {@snippet :}} of a Java source's javadoc.
 *
 * <p>A block may be preceded by a marker line, an HTML comment that readers do not see:
 * <ul>
 * <li>{@code <!-- snippet: given Tensor x, y; Arena arena -->}: names the block uses but does not
 *     declare; they become parameters of the method the block is compiled into.
 * <li>{@code <!-- snippet: run -->}: the block is also run; each {@code // prints: TEXT} comment in it
 *     must appear in what it prints.
 * <li>{@code <!-- snippet: files x.npy=32x768 gamma.npy=768 -->}: for a command-line block, the
 *     {@code .npy} files its commands read, generated (float32, seeded) before they run.
 * <li>{@code <!-- snippet: skip REASON -->}: neither compiled nor run, for the reason given (a
 *     synopsis with placeholders, a command that builds the project).
 * </ul>
 * In javadoc the marker is the line just above {@code {@snippet :}}, in the same comment.
 */
record DocSnippets(Path file, int line, String language, List<String> code, String marker) {
    private static final Pattern FENCE = Pattern.compile("^\\s*```\\s*([A-Za-z]*)\\s*$");
    private static final Pattern MARKER = Pattern.compile("<!--\\s*snippet:\\s*(.*?)\\s*-->");

    /** {@return the argument of {@code key} in this block's marker, or null when the marker lacks it} */
    String marked(String key) {
        if (marker == null) {
            return null;
        }
        for (String part : marker.split("\\|")) {
            String trimmed = part.strip();
            if (trimmed.equals(key)) {
                return "";
            }
            if (trimmed.startsWith(key + " ")) {
                return trimmed.substring(key.length() + 1).strip();
            }
        }
        return null;
    }

    /** {@return where the block's first line of code is, as an editor takes it} */
    String where() {
        return file + ":" + line;
    }

    /** The fenced blocks of a Markdown file; {@code line} is that of the block's first line of code. */
    static List<DocSnippets> markdown(Path file) throws IOException {
        List<String> lines = Files.readAllLines(file);
        List<DocSnippets> blocks = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            Matcher open = FENCE.matcher(lines.get(i));
            if (!open.matches()) {
                continue;
            }
            int end = i + 1;
            while (end < lines.size() && !FENCE.matcher(lines.get(end)).matches()) {
                end++;
            }
            String marker = i > 0 ? markerIn(lines.get(i - 1)) : null;
            blocks.add(new DocSnippets(file, i + 2, open.group(1), lines.subList(i + 1, end), marker));
            i = end;
        }
        return blocks;
    }

    /** The {@code {@snippet :}} blocks of a Java source's doc comments, their {@code * } prefixes removed. */
    static List<DocSnippets> javadoc(Path file) throws IOException {
        List<String> lines = Files.readAllLines(file);
        List<DocSnippets> blocks = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            if (!lines.get(i).strip().equals("* {@snippet :")) {
                continue;
            }
            List<String> code = new ArrayList<>();
            int depth = 1; // the snippet tag's own brace
            int end = i + 1;
            for (; end < lines.size(); end++) {
                String text = lines.get(end).replaceFirst("^\\s*\\* ?", "");
                for (char c : text.toCharArray()) {
                    depth += c == '{' ? 1 : c == '}' ? -1 : 0;
                }
                if (depth <= 0) {
                    break;
                }
                code.add(text.replace("&#64;", "@"));
            }
            String marker = markerIn(lines.get(i - 1));
            blocks.add(new DocSnippets(file, i + 2, "java", code, marker));
            i = end;
        }
        return blocks;
    }

    private static String markerIn(String line) {
        Matcher matcher = MARKER.matcher(line);
        return matcher.find() ? matcher.group(1) : null;
    }
}
