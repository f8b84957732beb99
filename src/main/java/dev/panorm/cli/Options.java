package dev.panorm.cli;

import dev.panorm.Backend;
import dev.panorm.DataType;
import dev.panorm.LayerNormConfig;
import dev.panorm.Tensor;
import dev.panorm.cli.Main.UsageException;
import dev.panorm.internal.io.ReplacedFile;
import dev.panorm.io.Npy;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/** What the commands share: option types, checks of the paths given, and how results are reported. */
final class Options {
    private Options() {}

    /** {@code auto|onednn|java|java-scalar}. */
    static final class BackendName implements ITypeConverter<Backend> {
        @Override
        public Backend convert(String text) {
            for (Backend backend : Backend.values()) {
                if (name(backend).equals(text)) {
                    return backend;
                }
            }
            throw new TypeConversionException("must be auto, onednn, java or java-scalar, got '" + text + "'");
        }
    }

    /** A number that {@link LayerNormConfig#withEps} accepts, checked by it, so the rule lives in one place. */
    static final class Eps implements ITypeConverter<Double> {
        @Override
        public Double convert(String text) {
            double eps = number(text);
            try {
                LayerNormConfig.of(1).withEps(eps);
            } catch (IllegalArgumentException e) {
                throw new TypeConversionException(e.getMessage().replaceFirst("^eps ", ""));
            }
            return eps;
        }
    }

    /** int8 output's one scale for every row, as {@code forwardQuantized} takes it: positive, 1/scale finite. */
    static final class QuantizationScale implements ITypeConverter<Float> {
        @Override
        public Float convert(String text) {
            float scale = (float) number(text);
            if (!(scale > 0 && scale < Float.POSITIVE_INFINITY && Float.isFinite(1 / scale))) {
                throw new TypeConversionException(
                        "must be finite and positive as a float32, with a float32 reciprocal (above 2^-128), got '"
                                + text + "'");
            }
            return scale;
        }
    }

    /** A number; Java spells them NaN and Infinity, and NumPy's and C's spellings are read too, to be refused properly. */
    private static double number(String text) {
        try {
            return switch (text.toLowerCase(Locale.ROOT)) {
                case "nan" -> Double.NaN;
                case "inf", "+inf", "infinity", "+infinity" -> Double.POSITIVE_INFINITY;
                case "-inf", "-infinity" -> Double.NEGATIVE_INFINITY;
                default -> Double.parseDouble(text);
            };
        } catch (NumberFormatException e) {
            throw new TypeConversionException("must be a number, got '" + text + "'");
        }
    }

    /** {@code f32|f16|bf16|i8}. */
    static final class OutType implements ITypeConverter<DataType> {
        @Override
        public DataType convert(String text) {
            return switch (text) {
                case "f32" -> DataType.F32;
                case "f16" -> DataType.F16;
                case "bf16" -> DataType.BF16;
                case "i8" -> DataType.S8;
                default -> throw new TypeConversionException("must be f32, f16, bf16 or i8, got '" + text + "'");
            };
        }
    }

    /**
     * A file's path. {@link Path#of} drops a trailing slash, which would turn {@code x.npy/} into {@code x.npy} where a
     * shell and every other tool refuse it: a name that says folder must not read or replace a file. It also reads an
     * empty path (an unset shell variable, {@code ""}) as the current folder.
     */
    static final class FilePath implements ITypeConverter<Path> {
        @Override
        public Path convert(String text) {
            if (text.isEmpty()) {
                throw new TypeConversionException("must name a file, got an empty path");
            }
            if (text.endsWith("/")) {
                throw new TypeConversionException("must name a file, not a folder, got '" + text + "'");
            }
            return Path.of(text);
        }
    }

    /** A folder's path, slash or not; not an empty one, which {@link Path#of} reads as the current folder. */
    static final class FolderPath implements ITypeConverter<Path> {
        @Override
        public Path convert(String text) {
            if (text.isEmpty()) {
                throw new TypeConversionException("must name a folder, got an empty path");
            }
            return Path.of(text);
        }
    }

    /** A whole number of at least 1. */
    static final class Positive implements ITypeConverter<Long> {
        @Override
        public Long convert(String text) {
            try {
                long value = Long.parseLong(text);
                if (value >= 1) {
                    return value;
                }
            } catch (NumberFormatException e) {
                // reported below
            }
            throw new TypeConversionException("must be a whole number >= 1, got '" + text + "'");
        }
    }

    static String name(Backend backend) {
        return backend.name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    static String name(DataType type) {
        return type.name().toLowerCase(Locale.ROOT);
    }

    /**
     * Outputs must not be inputs, each other, or anything but a regular file (or a new one): each is written
     * anew and renamed into place.
     */
    static void checkDistinct(List<Path> inputs, List<Path> outputs) throws IOException {
        List<Path> seen = new ArrayList<>();
        for (Path output : outputs) {
            if (output == null) {
                continue;
            }
            if (Files.isDirectory(output)) {
                throw new UsageException("output " + output + " is a directory");
            }
            for (Path input : inputs) {
                if (input != null && sameFile(input, output)) {
                    throw new UsageException(
                            "output " + output + " is the same file as input " + input + "; write to another path");
                }
            }
            for (Path other : seen) {
                if (sameFile(other, output)) {
                    throw new UsageException("two outputs are the same file: " + output);
                }
            }
            seen.add(output);
        }
    }

    private static boolean sameFile(Path a, Path b) throws IOException {
        if (Files.exists(a) && Files.exists(b)) {
            return Files.isSameFile(a, b); // hard links too
        }
        return whereItLands(a).equals(whereItLands(b));
    }

    /**
     * The file a path names once written, which may not exist yet: symbolic links followed to the end of their chain
     * (as outputs are written through them), then the folder's real path, so that links to folders and {@code ..}
     * cannot make one file look like two.
     */
    private static Path whereItLands(Path path) throws IOException {
        Path end = ReplacedFile.endOfLinks(path);
        if (end == null) { // links that loop: writing the output says so
            return path.toAbsolutePath().normalize();
        }
        Path folder = end.getParent();
        if (folder == null || end.getFileName() == null || !Files.isDirectory(folder)) {
            return end.normalize();
        }
        return folder.toRealPath().resolve(end.getFileName());
    }

    /**
     * Opens a float32 or float16 array with at least {@code axes} axes, the last ones not empty. Read, never
     * mapped: a file rewritten while panorm reads it is an error message, not a crash.
     */
    static Npy.Reader open(Path path, String role, int axes) throws IOException {
        Npy.Reader reader = Npy.Reader.open(path);
        try {
            long[] shape = reader.shape();
            if (shape.length < axes) {
                throw new IllegalArgumentException(role + " " + path + " has shape " + Arrays.toString(shape)
                        + ": rank " + shape.length + ", fewer than the " + axes + " axes to normalize over");
            }
            for (int axis = shape.length - axes; axis < shape.length; axis++) {
                if (shape[axis] < 1) {
                    throw new IllegalArgumentException(role + " " + path + " has shape " + Arrays.toString(shape)
                            + "; the axes to normalize over must not be empty");
                }
            }
            return reader;
        } catch (RuntimeException e) {
            reader.close();
            throw e;
        }
    }

    /** A scale or shift file of the normalized shape, read into {@code arena}. */
    static Tensor parameter(Path path, String option, long[] normalizedShape, Arena arena) throws IOException {
        try (Npy.Reader reader = Npy.Reader.open(path)) {
            if (!Arrays.equals(reader.shape(), normalizedShape)) {
                throw new IllegalArgumentException(
                        option + " " + path + " has shape " + Arrays.toString(reader.shape()) + " but must have shape "
                                + Arrays.toString(normalizedShape) + " (the normalized axes of the data)");
            }
            return reader.read(arena);
        }
    }

    /** {@code 1 row}, {@code 2 rows}. */
    static String rows(long count) {
        return count + (count == 1 ? " row" : " rows");
    }

    /** A duration in the unit that shows it best, the same in every command. */
    static String duration(long nanos) {
        return nanos >= 1_000_000_000L
                ? String.format(Locale.ROOT, "%.2f s", nanos / 1e9)
                : nanos >= 1_000_000L
                        ? String.format(Locale.ROOT, "%.2f ms", nanos / 1e6)
                        : String.format(Locale.ROOT, "%.1f us", nanos / 1e3);
    }

    /** Bytes per second in GB/s, MB/s, kB/s or B/s (10^9, 10^6, 10^3), so that a small file does not show 0.00. */
    static String rate(long bytes, long nanos) {
        double perSecond = nanos == 0 ? 0 : bytes * 1e9 / nanos;
        if (perSecond >= 1e9) {
            return String.format(Locale.ROOT, "%.2f GB/s", perSecond / 1e9);
        }
        if (perSecond >= 1e6) {
            return String.format(Locale.ROOT, "%.2f MB/s", perSecond / 1e6);
        }
        if (perSecond >= 1e3) {
            return String.format(Locale.ROOT, "%.2f kB/s", perSecond / 1e3);
        }
        return String.format(Locale.ROOT, "%.0f B/s", perSecond);
    }
}
