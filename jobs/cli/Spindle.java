package jobs.cli;

import jobs.bench.BenchCommand;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code spindle} command line: one subcommand per pipeline stage. */
@Command(name = "spindle",
        mixinStandardHelpOptions = true,
        version = "spindle " + Spindle.VERSION,
        description = "Sparse dictionaries (SAEs, transcoders, CLTs) from transformer activations on Apache Spark.",
        subcommands = {
                CommandLine.HelpCommand.class,
                ForwardCommand.class,
                TokenizeCommand.class,
                CacheCommand.class,
                TrainSaeCommand.class,
                TrainCltCommand.class,
                ExportTranscodersCommand.class,
                ImportActivationsCommand.class,
                ConvertLlama2cCommand.class,
                BenchCommand.class,
                PipelineCommand.class,
                DemoCommand.class,
                EvaluateCommand.class,
                FeaturesCommand.class,
                AblateCommand.class,
                ProbeCommand.class,
                SeekCommand.class,
                DriftCommand.class,
                LensCommand.class,
                ContrastCommand.class,
                SteerCommand.class,
                PatchCommand.class,
                AttributeCommand.class,
        })
public final class Spindle implements Runnable {

    /** Recorded in manifests and exported dictionaries. */
    public static final String VERSION = "0.1.0";

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the CLI in-process and returns its exit code (tests call this). */
    public static int run(String... args) {
        // No telemetry: DJL's tokenizer build calls home unless "offline" is set.
        System.setProperty("offline", "true");
        CommandLine cli = new CommandLine(new Spindle());
        cli.setExecutionExceptionHandler(new UserErrorHandler());
        return cli.execute(args);
    }

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }
}
