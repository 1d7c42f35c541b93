package jobs.cli;

import picocli.CommandLine;

/**
 * Bad input ends a command with one clear line on stderr and exit code 2; anything unexpected
 * keeps its stack trace (exit 1) because that is a bug to report.
 */
final class UserErrorHandler implements CommandLine.IExecutionExceptionHandler {

    @Override
    public int handleExecutionException(Exception e, CommandLine cli, CommandLine.ParseResult parsed) {
        if (isUserError(e)) {
            cli.getErr().println("spindle " + cli.getCommandName() + ": " + e.getMessage());
            return 2;
        }
        e.printStackTrace(cli.getErr());
        return 1;
    }

    private static boolean isUserError(Throwable e) {
        return e instanceof IllegalArgumentException
                || e instanceof IllegalStateException
                || e instanceof java.io.UncheckedIOException
                || e instanceof activations.safetensors.SafeTensorsException;
    }
}
