package jobs.train;

import activations.table.ActivationManifest;
import activations.table.ActivationTableReader;
import jobs.output.TrainingOutput;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.SparkSession;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.sae.SaeConfig;
import training.trainer.Checkpoints;
import training.trainer.RunFiles;
import training.trainer.SaeStep;

import java.io.PrintStream;
import java.nio.FloatBuffer;
import java.util.List;
import java.util.Optional;

/**
 * One large SAE trained data-parallel ({@link DataParallelTrainer}): the driver initializes the
 * master from a sample of the cache (or resumes it from a checkpoint) and exports the SAELens
 * directory at the end.
 */
public final class DataParallelSae {

    private DataParallelSae() {
    }

    public static TrainSaeJob.Outcome train(SparkSession spark, String activations, TrainSaeJob.Run run, int replicas,
                                           int syncEvery, boolean resume, PrintStream progress) {
        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        Path cacheDir = new Path(activations);
        ActivationManifest manifest = ActivationManifest.read(hadoop, cacheDir);
        int dIn = manifest.dim(run.hook());
        if (dIn < 0) {
            throw new IllegalArgumentException("hook '" + run.hook() + "' is not in the activation cache " + activations
                    + "; it holds " + String.join(", ", manifest.hookNames()));
        }
        SaeConfig asked = run.settings().toConfig(dIn);
        TrainingBudget budget = TrainingBudget.plan(manifest.tokenCount(), asked.totalTokens(), 0, run.settings().epochs(),
                asked.batchSize());
        SaeConfig base = budget.capped() ? asked.toBuilder().totalTokens(budget.tokens()).build() : asked;
        System.out.println(run.name() + ": " + budget.describe());
        DataParallelTrainer.check(replicas, syncEvery, base.batchSize());
        try (TrainingOutput output = TrainingOutput.open(hadoop, run.out(), "cfg.json")) {
            if (!resume && output.complete()) {
                throw new IllegalStateException("output directory " + run.out() + " already holds a trained dictionary; choose another --out");
            }
            java.nio.file.Path out = output.local();
            Optional<java.nio.file.Path> checkpoint = RunFiles.prepareOutput(out, resume);
            SaeStep master;
            long step;
            double scale;
            if (checkpoint.isPresent()) {
                Checkpoints.Loaded loaded = Checkpoints.read(checkpoint.get());
                scale = loaded.state().normalizationScale;
                master = new SaeStep(base.toBuilder().normalizationScale(scale).build());
                RunFiles.checkSameConfig(loaded.state().config, master.config(), checkpoint.get());
                master.restore(loaded.state(), loaded.parameters(), loaded.adamState());
                step = loaded.state().step;
            } else {
                double fromManifest = TrainSaeJob.normalizationScale(manifest, run.hook(), dIn);
                INDArray sample = sample(hadoop, cacheDir, run.hook(), base.batchSize() * base.normalizationBatches(), dIn);
                scale = fromManifest > 0 ? fromManifest : Math.sqrt(dIn) / sample.norm2(1).meanNumber().doubleValue();
                master = new SaeStep(base.toBuilder().normalizationScale(scale).build());
                master.sae().initialize(sample.muli(scale), base.seed());
                step = 0;
            }
            SaeConfig config = master.config();
            DataParallelTrainer.Plan plan = new DataParallelTrainer.Plan(activations, List.of(run.hook()), new double[] {scale},
                    config.batchSize(), replicas, syncEvery, budget.capped() ? budget.passes() : budget.passes() + 1, config.totalSteps(),
                    config.metricsEverySteps(), config.checkpointEverySteps(), "fvu", out.toString());
            SaeStep finalMaster = master;
            long steps = DataParallelTrainer.train(spark, plan, () -> new SaeStep(config), master, step, (s, tokens) -> {
                Checkpoints.TrainerState state = finalMaster.capture(s, tokens, s * config.batchSize(), scale);
                state.config = RunFiles.configMap(config);
                Checkpoints.write(out, state, finalMaster.parameters().toFloatVector(), finalMaster.adam().state().toFloatVector());
                output.checkpointed(Checkpoints.latest(out).orElse(null));
            }, progress);
            TrainSaeJob.export(hadoop, activations, manifest, run, out, master.sae(), scale, master.stats().featureDensity());
            output.publish();
            com.fasterxml.jackson.databind.JsonNode last = TrainSaeJob.lastMetrics(out);
            return new TrainSaeJob.Outcome(run.name(), run.out(), steps, steps * config.batchSize(), last.path("fvu").asDouble(),
                    last.path("l0").asDouble(), master.stats().deadFraction());
        }
    }

    /** The first rows of the cache, for the normalization scale and b_dec's initialization. */
    private static INDArray sample(Configuration conf, Path dir, String hook, int rows, int dIn) {
        try (ActivationTableReader reader = ActivationTableReader.open(conf, dir, List.of(hook))) {
            int n = (int) Math.min(rows, reader.rowCount());
            float[] data = new float[n * dIn];
            RunFiles.fill(reader, new FloatBuffer[] {FloatBuffer.wrap(data)}, n);
            return Nd4j.createFromArray(data).reshape(n, dIn);
        }
    }
}
