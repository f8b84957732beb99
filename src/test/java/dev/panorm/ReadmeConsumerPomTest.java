package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The pom the guide gives users (docs/loading.md, linked from the README's dependency snippet) is the one
 * {@code verify} builds and tests: src/it/consumer/pom.xml from its project element on, with the version
 * placeholders filled in from panorm's pom.
 */
class ReadmeConsumerPomTest {
    @Test
    void theGuideShowsTheTestedConsumerPom() throws IOException {
        String guide = Files.readString(Path.of("docs/loading.md"));
        int section = guide.indexOf("## Your build");
        int start = guide.indexOf("```xml\n<project ", section);
        assertTrue(section >= 0 && start >= 0, "docs/loading.md's \"Your build\" shows no pom");
        start += "```xml\n".length();
        String shown = guide.substring(start, guide.indexOf("```", start));

        String pom = Files.readString(Path.of("pom.xml"));
        String tested = Files.readString(Path.of("src/it/consumer/pom.xml"));
        String expected = tested.substring(tested.indexOf("<project "))
                .replace(
                        "@project.version@", find(pom, "<artifactId>panorm</artifactId>\\s*<version>([^<]+)</version>"))
                .replace("@junit.version@", find(pom, "<junit.version>([^<]+)</junit.version>"));
        assertEquals(expected, shown);
    }

    private static String find(String text, String regex) {
        Matcher matcher = Pattern.compile(regex).matcher(text);
        assertTrue(matcher.find(), regex);
        return matcher.group(1);
    }
}
