package jobs.cli;

import activations.safetensors.SafeTensorsException;
import picocli.CommandLine;

import java.io.UncheckedIOException;

/**
 * Bad input ends a command with one clear line on stderr and exit code 2, also when the error was
 * raised inside a Spark task (Spark wraps it, so the cause chain is searched). Anything else keeps
 * its stack trace (exit 1): that is a bug to report.
 */
final class UserErrorHandler implements CommandLine.IExecutionExceptionHandler {

    @Override
    public int handleExecutionException(Exception e, CommandLine cli, CommandLine.ParseResult parsed) {
        Throwable userError = findUserError(e);
        if (userError != null) {
            cli.getErr().println("spindle " + cli.getCommandName() + ": " + userError.getMessage());
            return 2;
        }
        e.printStackTrace(cli.getErr());
        return 1;
    }

    static Throwable findUserError(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof IllegalArgumentException
                    || t instanceof IllegalStateException
                    || t instanceof UncheckedIOException
                    || t instanceof SafeTensorsException) {
                return t;
            }
            if (t.getCause() == t) {
                break;
            }
        }
        return null;
    }
}
