package dev.panorm.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code panorm help [COMMAND]}: what {@code --help} prints, for panorm or one of its commands. Picocli's own help
 * command takes any option without a word (so {@code panorm help --version} printed the usage); this one parses its
 * arguments as every other command does.
 */
@Command(
        name = "help",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        description = "The usage of panorm, or of COMMAND, as --help prints it.")
final class HelpCommand implements Callable<Integer> {
    @Parameters(arity = "0..1", paramLabel = "COMMAND", description = "one of panorm's commands")
    private String command;

    @Spec
    private CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        CommandLine panorm = spec.parent().commandLine();
        CommandLine target = command == null ? panorm : panorm.getSubcommands().get(command);
        if (target == null) {
            throw new Main.UsageException("unknown command '" + command + "'");
        }
        target.usage(spec.commandLine().getOut());
        return Main.OK;
    }
}
