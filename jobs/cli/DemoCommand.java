package jobs.cli;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.concurrent.Callable;

/** {@code spindle demo}: the pipeline on the bundled model and corpus (conf/demo.conf), in local mode. */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Run the whole pipeline on the bundled TinyStories model and corpus in local mode (conf/demo.conf): "
                + "tokenize, cache, a JumpReLU SAE and a CLT, their evaluations, feature tables and the dashboard.")
public final class DemoCommand implements Callable<Integer> {

    @Option(names = "--out", description = "Output root (default: target/demo).")
    String out;

    @Override
    public Integer call() {
        return PipelineCommand.run(DemoConfiguration.load(), "conf/demo.conf", out, null);
    }
}
