package jobs.train;

import activations.model.ComputeThreads;
import activations.table.ActivationManifest;
import activations.table.ActivationSource;
import activations.table.ActivationTableReader;
import activations.table.MixingBuffer;
import activations.table.RepeatedSource;
import jobs.output.TrainingOutput;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import training.clt.CltConfig;
import training.clt.CltTrainer;
import training.clt.CrossLayerTranscoder;
import training.export.CircuitTracerExporter;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;

/**
 * Trains a cross-layer transcoder on an activation cache holding each layer's MLP input and output,
 * and exports it in circuit-tracer's layout ({@code W_enc_i.safetensors}, {@code W_dec_i.safetensors},
 * {@code config.yaml}) beside {@code metrics.jsonl}, {@code train_config.conf} and {@code checkpoints/}.
 */
public final class TrainCltJob {

    /** What a finished run reports. */
    public record Outcome(String out, long steps, long tokens, CltTrainer.Metrics last) {
    }

    private TrainCltJob() {
    }

    /** A checked CLT run: the interleaved hooks, the config and the per-layer scales from the manifest. */
    record Prepared(List<String> hooks, CltConfig config, double[][] scales, TrainingBudget budget) {
    }

    /** Checks the cache against the run (hooks present, one width) and the memory before anything is allocated. */
    static Prepared prepare(Configuration conf, String activations, int layers, CltSettings settings) {
        if (layers < 1) {
            throw new IllegalArgumentException("--layers must name at least one layer (0-N)");
        }
        ActivationManifest manifest = ActivationManifest.read(conf, new Path(activations));
        List<String> hooks = new ArrayList<>();
        List<String> missing = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            for (String suffix : List.of(settings.hookIn(), settings.hookOut())) {
                String hook = "blocks." + l + "." + suffix;
                hooks.add(hook);
                if (manifest.dim(hook) < 0) {
                    missing.add(hook);
                }
            }
        }
        if (!missing.isEmpty()) {
            throw new IllegalArgumentException("the activation cache " + activations + " lacks " + String.join(", ", missing)
                    + "; it holds " + String.join(", ", manifest.hookNames()) + ". Cache those hooks (spindle cache --hooks ...)"
                    + " or set hook-in / hook-out to a pairing the cache has");
        }
        int d = manifest.dim(hooks.get(0));
        for (String hook : hooks) {
            if (manifest.dim(hook) != d) {
                throw new IllegalArgumentException("hook " + hook + " has width " + manifest.dim(hook) + " but " + hooks.get(0)
                        + " has " + d + "; a CLT reads and writes vectors of one width (d_model)");
            }
        }
        CltConfig asked = settings.toConfig(layers, d);
        TrainingBudget passes = TrainingBudget.plan(manifest.tokenCount(), asked.totalTokens(), 0, settings.epochs(), asked.batchSize());
        CltConfig config = passes.capped() ? asked.toBuilder().totalTokens(passes.tokens()).build() : asked;
        long budget = settings.memoryBudgetGb() > 0 ? (long) (settings.memoryBudgetGb() * (1L << 30))
                : org.bytedeco.javacpp.Pointer.maxPhysicalBytes();
        CrossLayerTranscoder.checkFits(config, budget); // fails before allocating, with the sizes
        return new Prepared(hooks, config, CltTrainer.scalesFromManifest(manifest, hooks), passes);
    }

    public static Outcome train(Configuration conf, String activations, int layers, CltSettings settings, String out,
                                boolean resume, CltTrainer.Listener progress) {
        ComputeThreads.useAllCores(); // called in the driver only: this JVM is the run's (see useAllCores)
        Prepared prepared = prepare(conf, activations, layers, settings);
        List<String> hooks = prepared.hooks();
        CltConfig config = prepared.config();
        double[][] scales = prepared.scales();
        System.out.println("clt: " + prepared.budget().describe());
        Path cacheDir = new Path(activations);
        List<CltTrainer.Metrics> last = new ArrayList<>();
        CltTrainer.Result result;
        try (TrainingOutput output = TrainingOutput.open(conf, out, "config.yaml")) {
            if (!resume && output.complete()) {
                throw new IllegalStateException("output directory " + out + " already holds a trained transcoder; choose another --out");
            }
            java.nio.file.Path outDir = output.local();
            try (ActivationSource source = new MixingBuffer(
                    new RepeatedSource(() -> ActivationTableReader.open(conf, cacheDir, hooks), prepared.budget().passes()),
                    Math.max(config.batchSize(), settings.mixingBuffer()), settings.seed())) {
                CltTrainer trainer = new CltTrainer(config, outDir).normalizationScales(scales[0], scales[1]).resume(resume)
                        .listener(new CltTrainer.Listener() {
                            @Override
                            public void onMetrics(CltTrainer.Metrics m) {
                                last.clear();
                                last.add(m);
                            }

                            @Override
                            public void onCheckpoint(long step, java.nio.file.Path directory) {
                                output.checkpointed(directory);
                            }
                        });
                if (progress != null) {
                    trainer.listener(progress);
                }
                result = trainer.train(source);
            }
            export(result.clt(), result.inputScales(), result.targetScales(), settings, layers, activations, outDir);
            output.publish();
        }
        return new Outcome(out, result.steps(), result.tokens(), last.isEmpty() ? null : last.get(0));
    }

    /** The circuit-tracer layout plus train_config.conf. */
    static void export(CrossLayerTranscoder clt, double[] inScales, double[] outScales, CltSettings settings, int layers,
                       String activations, java.nio.file.Path outDir) {
        CircuitTracerExporter.exportCrossLayer(clt, inScales, outScales, settings.hookIn(), settings.hookOut(), outDir);
        try {
            Files.writeString(outDir.resolve("train_config.conf"), "# cross-layer transcoder over layers 0-" + (layers - 1)
                    + " of " + activations + "\nlayers = " + layers + "\nclt " + settings.render() + "\n");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + outDir.resolve("train_config.conf") + ": " + e.getMessage(), e);
        }
    }
}
