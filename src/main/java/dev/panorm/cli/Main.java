package dev.panorm.cli;

import dev.panorm.PanormException;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.IVersionProvider;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;
import picocli.CommandLine.UnmatchedArgumentException;

/**
 * The {@code panorm} command line: {@code info}, {@code normalize}, {@code backward}, {@code demo},
 * {@code bench} and {@code tune}, each with {@code --help} and {@code --version}. Exit status: 0 on success, 1 when the
 * work fails (bad input file, native failure), 2 for anything wrong on the command line. Every error is
 * one line on stderr. Public only as the jar's entry point.
 */
@Command(
        name = "panorm",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        description = "Layer normalization of .npy files with oneDNN or panorm's Java kernels.",
        subcommands = {
            InfoCommand.class,
            NormalizeCommand.class,
            BackwardCommand.class,
            DemoCommand.class,
            BenchCommand.class,
            TuneCommand.class,
            HelpCommand.class
        },
        footer = {
            "",
            "Every output is written to a temporary file and renamed when complete, never left partial.",
            "Exit status: 0 success, 1 failure while running, 2 usage error."
        })
public final class Main implements Callable<Integer> {
    static final int OK = 0;
    static final int FAILED = 1;
    static final int USAGE = 2;

    final PrintStream out;
    final PrintStream err;

    @Spec
    private CommandSpec spec;

    private Main(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    /**
     * Runs the command line and exits the JVM with its status.
     *
     * @param args a command ({@code info}, {@code normalize}, {@code backward}, {@code demo}, {@code bench},
     *     {@code tune} or {@code help}) and its arguments; {@code panorm --help} lists them
     */
    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    /**
     * Runs one command.
     *
     * @return the exit status
     */
    static int run(String[] args, PrintStream out, PrintStream err) {
        PrintWriter helpOut = new PrintWriter(out, true);
        CommandLine line = new CommandLine(new Main(out, err))
                .registerConverter(Path.class, new Options.FilePath())
                .setUsageHelpWidth(100)
                .setOut(helpOut)
                .setErr(new PrintWriter(err, true))
                .setParameterExceptionHandler((e, arguments) -> usageError(describe(e), e.getCommandLine(), err))
                .setExecutionExceptionHandler((e, command, parsed) -> failure(e, command, err));
        // picocli marks every multi-value option as repeatable ("[--stats MEAN.npy VAR.npy]..."); --stats takes
        // its two files once.
        line.getSubcommands()
                .get("normalize")
                .getHelpSectionMap()
                .put(
                        CommandLine.Model.UsageMessageSpec.SECTION_KEY_SYNOPSIS,
                        help -> help.synopsis(help.synopsisHeadingLength())
                                .replaceFirst("(VAR\\.\\s*npy])\\.\\.\\.", "$1"));
        try {
            int status = line.execute(withValuesApart(line, args));
            helpOut.flush();
            // A PrintStream keeps its write errors to itself: output that never arrived (a full disk, a closed
            // pipe) must not end as a success.
            if (out.checkError() && status == OK) {
                err.println("panorm: error: could not write to standard output (a full disk or a closed pipe?)");
                return FAILED;
            }
            return status;
        } catch (OutOfMemoryError e) { // picocli passes Errors on; this one is the input's size, not a bug
            err.println("panorm: error: out of memory (" + e.getMessage() + "); give the JVM more (JAVA_OPTS=-Xmx..."
                    + " for scripts/panorm) or use smaller inputs");
            return FAILED;
        } catch (Error e) {
            // The JDK loading a file of its own (java.security, tzdb.dat) as a class initializes, and failing as the
            // process ran out of open files: the system's limit, not a bug. Anything else is one, with its trace.
            for (Throwable cause = e.getCause(); cause != null; cause = cause.getCause()) {
                if (cause instanceof IOException io) {
                    err.println("panorm: error: the JVM could not read its own files: " + io.getMessage());
                    return FAILED;
                }
            }
            throw e;
        }
    }

    /**
     * {@code --name=value} as {@code --name value}, for the options that take a value: the commands separate a value
     * from its option by a space, as their help shows, and GNU tools take both forms. Words after {@code --} stay.
     */
    static String[] withValuesApart(CommandLine line, String[] args) {
        CommandLine command = line;
        List<String> apart = new ArrayList<>(args.length + 2);
        boolean options = true;
        for (String arg : args) {
            int equals = arg.indexOf('=');
            OptionSpec option = options && arg.startsWith("--") && equals > 2
                    ? command.getCommandSpec().findOption(arg.substring(0, equals))
                    : null;
            if (option != null && option.arity().max() > 0 && !option.typeInfo().isBoolean()) {
                apart.add(arg.substring(0, equals));
                apart.add(arg.substring(equals + 1));
                continue;
            }
            options &= !arg.equals("--");
            if (command == line && line.getSubcommands().containsKey(arg)) {
                command = line.getSubcommands().get(arg);
            }
            apart.add(arg);
        }
        return apart.toArray(String[]::new);
    }

    /** Without a command: the usage, on stderr, as a usage error. */
    @Override
    public Integer call() {
        spec.commandLine().usage(err);
        return USAGE;
    }

    /** Picocli's message, except for unknown words: the first one alone, named as a command or option, with a guess. */
    private static String describe(ParameterException e) {
        if (!(e instanceof UnmatchedArgumentException unmatched)
                || unmatched.getUnmatched().isEmpty()) {
            return e.getMessage();
        }
        String word = unmatched.getUnmatched().getFirst();
        boolean command = !word.startsWith("-") && e.getCommandLine().getParent() == null;
        List<String> guesses = unmatched.getSuggestions();
        return (word.startsWith("-") ? "unknown option '" : command ? "unknown command '" : "unexpected argument '")
                + word + "'" + (guesses.isEmpty() ? "" : "; did you mean " + String.join(" or ", guesses) + "?");
    }

    private static int usageError(String message, CommandLine command, PrintStream err) {
        String name = command.getCommandSpec().qualifiedName();
        err.println("panorm: " + lowerFirst(message) + " (see '" + name + " --help')");
        return USAGE;
    }

    /** One line for what a user can fix; anything else is a bug, rethrown with its stack trace. */
    private static int failure(Exception e, CommandLine command, PrintStream err) throws Exception {
        Throwable cause = e instanceof UncheckedIOException unchecked ? unchecked.getCause() : e;
        if (cause instanceof ParameterException || cause instanceof UsageException) {
            return usageError(cause.getMessage(), command, err);
        }
        String message = switch (cause) {
            case NoSuchFileException missing -> "no such file: " + missing.getFile();
            case AccessDeniedException denied -> "permission denied: " + denied.getFile();
            case IOException io -> io.getMessage();
            case PanormException panorm -> panorm.getMessage();
            case IllegalArgumentException argument -> argument.getMessage();
            case IllegalStateException state -> state.getMessage();
            default -> null;
        };
        if (message == null) {
            throw e;
        }
        err.println("panorm: error: " + message);
        return FAILED;
    }

    /** "Unknown option" reads as "unknown option" after "panorm: "; "IN.npy" stays as it is. */
    private static String lowerFirst(String text) {
        return text.length() > 1 && Character.isUpperCase(text.charAt(0)) && Character.isLowerCase(text.charAt(1))
                ? Character.toLowerCase(text.charAt(0)) + text.substring(1)
                : text;
    }

    /** Something wrong on the command line that only a command can see: exit status 2, one line. */
    static final class UsageException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        UsageException(String message) {
            super(message);
        }
    }

    /** {@code --version}: panorm's version and the oneDNN it bundles, without loading anything native. */
    static final class Version implements IVersionProvider {
        @Override
        public String[] getVersion() throws IOException {
            Properties properties = new Properties();
            try (InputStream in = Main.class.getResourceAsStream("/dev/panorm/panorm.properties")) {
                if (in != null) {
                    properties.load(in);
                }
            }
            return new String[] {
                "panorm " + properties.getProperty("panorm.version", "(development build)") + " (bundles oneDNN "
                        + properties.getProperty("onednn.version", "?") + ")",
                "java " + Runtime.version() + " (" + System.getProperty("java.vendor") + ")"
            };
        }
    }
}
