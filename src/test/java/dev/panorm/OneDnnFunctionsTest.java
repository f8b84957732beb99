package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * {@link OneDnn#FUNCTIONS}, the functions checked when oneDNN loads, are exactly those of the generated bindings that
 * panorm's sources call: a function missing from the list would fail in the bindings' initializer, not with a message.
 */
class OneDnnFunctionsTest {
    private static final Pattern BOUND = Pattern.compile("findOrThrow\\(\"(dnnl_\\w+)\"\\)");
    private static final Pattern CALLED = Pattern.compile("Dnnl(?:\\.|::)(dnnl_\\w+?)(?:\\$address)?\\b");

    private static TreeSet<String> names(Path root, Pattern pattern) throws IOException {
        TreeSet<String> names = new TreeSet<>();
        try (Stream<Path> files = Files.walk(root)) {
            for (Path file : files.filter(f -> f.toString().endsWith(".java")).toList()) {
                Matcher matcher = pattern.matcher(Files.readString(file));
                while (matcher.find()) {
                    names.add(matcher.group(1));
                }
            }
        }
        return names;
    }

    @Test
    void theCheckedFunctionsAreTheOnesTheSourcesCall() throws IOException {
        TreeSet<String> called = names(Path.of("src/main/java"), CALLED);
        called.retainAll(names(Path.of("generated"), BOUND)); // constants and enum values are no symbols
        assertEquals(called, new TreeSet<>(OneDnn.FUNCTIONS));
    }

    @Test
    void aLibraryWithoutOneOfThemIsNamedWhatItLacks() {
        SymbolLookup withoutV2 = name -> name.endsWith("_v2") ? Optional.empty() : Optional.of(MemorySegment.NULL);
        assertEquals(
                List.of(
                        "dnnl_layer_normalization_backward_primitive_desc_create_v2",
                        "dnnl_layer_normalization_forward_primitive_desc_create_v2"),
                OneDnn.missingFunctions(withoutV2));
        assertEquals(List.of(), OneDnn.missingFunctions(name -> Optional.of(MemorySegment.NULL)));
    }
}
