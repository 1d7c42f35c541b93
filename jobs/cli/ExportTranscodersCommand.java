package jobs.cli;

import jobs.output.StagedOutput;
import jobs.spark.ExecutorResources;
import org.apache.hadoop.conf.Configuration;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import training.export.CircuitTracerExporter;

import java.util.List;
import java.util.concurrent.Callable;

/** {@code spindle export-transcoders}: per-layer transcoders (SAELens directories) as a circuit-tracer transcoder set. */
@Command(name = "export-transcoders", mixinStandardHelpOptions = true,
        description = "Bundle per-layer transcoders (SAELens directories from `train-sae --hook-in/--hook-out`, one per layer "
                + "in layer order from 0) into circuit-tracer's transcoder_set layout (layer_{i}.safetensors + config.yaml).")
public final class ExportTranscodersCommand implements Callable<Integer> {

    @Option(names = "--transcoders", required = true, split = ",",
            description = "SAELens transcoder directories (local paths or filesystem URIs), layer 0 first.")
    List<String> transcoders;

    @Option(names = "--out", required = true, description = "Output directory (a local path or a filesystem URI).")
    String out;

    @Option(names = "--overwrite", description = "Replace an existing transcoder set at --out.")
    boolean overwrite;

    @Override
    public Integer call() {
        List<java.nio.file.Path> local = transcoders.stream().map(ExecutorResources::localDirectory).toList();
        StagedOutput.directory(new Configuration(), out, "config.yaml", overwrite,
                dir -> CircuitTracerExporter.transcoderSetFromSaeLens(local, dir));
        System.out.println("transcoder set of " + transcoders.size() + " layers written to " + out);
        return 0;
    }
}
