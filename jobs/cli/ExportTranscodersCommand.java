package jobs.cli;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import training.export.CircuitTracerExporter;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code spindle export-transcoders}: per-layer transcoders (SAELens directories) as a circuit-tracer transcoder set. */
@Command(name = "export-transcoders", mixinStandardHelpOptions = true,
        description = "Bundle per-layer transcoders (SAELens directories from `train-sae --hook-in/--hook-out`, one per layer "
                + "in layer order from 0) into circuit-tracer's transcoder_set layout (layer_{i}.safetensors + config.yaml).")
public final class ExportTranscodersCommand implements Callable<Integer> {

    @Option(names = "--transcoders", required = true, split = ",", description = "SAELens transcoder directories, layer 0 first.")
    List<Path> transcoders;

    @Option(names = "--out", required = true, description = "Output directory.")
    Path out;

    @Override
    public Integer call() {
        CircuitTracerExporter.transcoderSetFromSaeLens(transcoders, out);
        System.out.println("transcoder set of " + transcoders.size() + " layers written to " + out);
        return 0;
    }
}
