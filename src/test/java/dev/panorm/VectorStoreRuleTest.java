package dev.panorm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The kernels store float and int vectors into memory segments through their LongVector view ({@link VectorKernel}'s
 * rules for loops): a direct FloatVector or IntVector store compiles to a slow path once any reinterpretation in the
 * process has run uncompiled (docs/benchmarks.md, "One process, several data types"), which no functional test
 * notices. Short and byte stores (bf16, f16 and int8 outputs) are exempt: panorm reinterprets no such vector.
 */
class VectorStoreRuleTest {
    /** The statement around each {@code .intoMemorySegment(} call in {@code source}. */
    static List<String> storeStatements(String source) {
        List<String> statements = new ArrayList<>();
        for (int at = source.indexOf(".intoMemorySegment(");
                at >= 0;
                at = source.indexOf(".intoMemorySegment(", at + 1)) {
            int start = Math.max(
                    source.lastIndexOf(';', at), Math.max(source.lastIndexOf('{', at), source.lastIndexOf('}', at)));
            statements.add(
                    source.substring(start + 1, source.indexOf(';', at) + 1).strip());
        }
        return statements;
    }

    static boolean followsTheRule(String statement) {
        return statement.contains(".reinterpretAsLongs()")
                || statement.contains("VectorOperators.I2S")
                || statement.contains("VectorOperators.I2B");
    }

    @Test
    void kernelsStoreFloatAndIntVectorsThroughTheirLongView() throws IOException {
        List<String> broken = new ArrayList<>();
        int stores = 0;
        try (Stream<Path> sources = Files.list(Path.of("src/main/java/dev/panorm"))) {
            for (Path source :
                    sources.filter(p -> p.toString().endsWith(".java")).toList()) {
                for (String statement : storeStatements(Files.readString(source))) {
                    stores++;
                    if (!followsTheRule(statement)) {
                        broken.add(source.getFileName() + ": " + statement);
                    }
                }
            }
        }
        assertTrue(stores >= 20, "found only " + stores + " vector stores: is the scan still reading the kernels?");
        assertEquals(List.of(), broken);
    }

    /**
     * Nor do they call {@code reduceLanes}: C2 compiled {@code IntVector.reduceLanes(MAX)} without its intrinsic in
     * some processes, and every call then allocated a boxed vector per row for good (docs/benchmarks.md, "Half-precision
     * scratch rows and the recompilation loop"). The kernels fold lanes in registers ({@link VectorKernel#FOLDS}).
     */
    @Test
    void kernelsFoldLanesInRegistersNotThroughReduceLanes() throws IOException {
        List<String> calls = new ArrayList<>();
        try (Stream<Path> sources = Files.list(Path.of("src/main/java/dev/panorm"))) {
            for (Path source :
                    sources.filter(p -> p.toString().endsWith(".java")).toList()) {
                for (String line : Files.readAllLines(source)) {
                    String code = line.contains("//") ? line.substring(0, line.indexOf("//")) : line;
                    boolean comment =
                            code.strip().startsWith("*") || code.strip().startsWith("/*");
                    if (!comment && code.contains(".reduceLanes(")) {
                        calls.add(source.getFileName() + ": " + line.strip());
                    }
                }
            }
        }
        assertEquals(List.of(), calls);
    }

    @Test
    void theScanSeesADirectStore() {
        String source = "{ FloatVector v = a.add(b);\n v.intoMemorySegment(s, at, ORDER);\n"
                + " v.reinterpretAsLongs()\n .intoMemorySegment(s, at, ORDER); }";
        List<String> statements = storeStatements(source);
        assertEquals(2, statements.size(), statements.toString());
        assertEquals(
                List.of(false, true),
                statements.stream().map(VectorStoreRuleTest::followsTheRule).toList());
    }
}
