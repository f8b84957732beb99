package dev.panorm.cli;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** One command's arguments: positional ones, and {@code --options} that each take a fixed number of values. */
final class CommandLine {
    private final String command;
    private final List<String> positional = new ArrayList<>();
    private final Map<String, List<String>> options = new HashMap<>();

    /**
     * Parses {@code args} against {@code arity}, which maps every option the command knows to the
     * number of values it takes.
     */
    CommandLine(String command, String[] args, Map<String, Integer> arity) {
        this.command = command;
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            if (!arg.startsWith("--")) {
                positional.add(arg);
                continue;
            }
            Integer count = arity.get(arg);
            if (count == null) {
                throw new UsageException("unknown option '" + arg + "' for " + command);
            }
            if (options.containsKey(arg)) {
                throw new UsageException(arg + " is given twice");
            }
            if (i + count >= args.length) {
                throw new UsageException(arg + " needs " + (count == 1 ? "a value" : count + " values"));
            }
            options.put(arg, List.of(args).subList(i + 1, i + 1 + count));
            i += count;
        }
    }

    /** The positional arguments, which must number exactly {@code names.length}, named in the error if not. */
    List<String> positional(String... names) {
        if (names.length == 0 && !positional.isEmpty()) {
            throw new UsageException(command + " takes no arguments besides its options, got '" + positional.getFirst() + "'");
        }
        if (positional.size() != names.length) {
            throw new UsageException(command + " needs " + String.join(" and ", names) + ", got " + positional.size()
                    + (positional.size() == 1 ? " path" : " paths"));
        }
        return positional;
    }

    /** The values of {@code option}, or null if it was not given. */
    List<String> values(String option) {
        return options.get(option);
    }

    /** The single value of {@code option}, or {@code fallback}. */
    String value(String option, String fallback) {
        List<String> values = options.get(option);
        return values == null ? fallback : values.getFirst();
    }

    boolean has(String option) {
        return options.containsKey(option);
    }

    /** A command line that does not parse; reported with exit status 2. */
    static final class UsageException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        UsageException(String message) {
            super(message);
        }
    }
}
