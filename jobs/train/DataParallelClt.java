package jobs.train;

import jobs.output.TrainingOutput;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.SparkSession;
import training.clt.CltConfig;
import training.clt.CltStep;
import training.trainer.Checkpoints;
import training.trainer.RunFiles;

import java.io.PrintStream;
import java.util.Arrays;
import java.util.Optional;

/**
 * A cross-layer transcoder trained data-parallel ({@link DataParallelTrainer}), with the checks,
 * per-layer normalization and circuit-tracer export of {@link TrainCltJob}.
 */
public final class DataParallelClt {

    private DataParallelClt() {
    }

    public static TrainCltJob.Outcome train(SparkSession spark, String activations, int layers, CltSettings settings,
                                            String out, int replicas, int syncEvery, boolean resume, PrintStream progress) {
        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        TrainCltJob.Prepared prepared = TrainCltJob.prepare(hadoop, activations, layers, settings);
        CltConfig config = prepared.config();
        DataParallelTrainer.check(replicas, syncEvery, config.batchSize());
        try (TrainingOutput output = TrainingOutput.open(hadoop, out, "config.yaml")) {
            if (!resume && output.complete()) {
                throw new IllegalStateException("output directory " + out + " already holds a trained dictionary; choose another --out");
            }
            java.nio.file.Path outDir = output.local();
            Optional<java.nio.file.Path> checkpoint = RunFiles.prepareOutput(outDir, resume);
            double[] inScales = prepared.scales()[0];
            double[] outScales = prepared.scales()[1];
            long parameters = training.clt.CrossLayerTranscoder.parameterCount(config);
            if (parameters > Integer.MAX_VALUE - 16L) {
                // Replicas exchange the flat parameters and Adam state as one Java array each.
                throw new IllegalArgumentException("data-parallel CLT training exchanges the parameters as one array, at most 2^31;"
                        + " this CLT has " + parameters + ": train it with --replicas 1, or lower --features-per-layer");
            }
            CltStep master = new CltStep(config);
            long step = 0;
            if (checkpoint.isPresent()) {
                RunFiles.checkSameConfig(Checkpoints.readState(checkpoint.get()).config, config, checkpoint.get());
                Checkpoints.TrainerState saved = master.restoreFrom(checkpoint.get());
                inScales = Arrays.copyOfRange(saved.normalizationScales, 0, layers);
                outScales = Arrays.copyOfRange(saved.normalizationScales, layers, 2 * layers);
                step = saved.step;
            } else {
                master.clt().initialize(config.seed());
            }
            double[] hookScales = new double[2 * layers];
            for (int l = 0; l < layers; l++) {
                hookScales[2 * l] = inScales[l];
                hookScales[2 * l + 1] = outScales[l];
            }
            DataParallelTrainer.Plan plan = new DataParallelTrainer.Plan(activations, prepared.hooks(), hookScales,
                    config.batchSize(), replicas, syncEvery, prepared.budget().capped() ? prepared.budget().passes() : prepared.budget().passes() + 1, config.totalSteps(), config.metricsEverySteps(),
                    config.checkpointEverySteps(), "nmse", outDir.toString());
            double[] savedScales = new double[2 * layers];
            System.arraycopy(inScales, 0, savedScales, 0, layers);
            System.arraycopy(outScales, 0, savedScales, layers, layers);
            long steps = DataParallelTrainer.train(spark, plan, () -> new CltStep(config), master, step, (s, tokens) -> {
                Checkpoints.TrainerState state = master.capture(s, tokens, s * config.batchSize());
                state.normalizationScales = savedScales;
                state.config = RunFiles.configMap(config);
                master.checkpoint(outDir, state);
                output.checkpointed(Checkpoints.latest(outDir).orElse(null));
            }, progress);
            TrainCltJob.export(master.clt(), inScales, outScales, settings, layers, activations, outDir);
            output.publish();
            return new TrainCltJob.Outcome(out, steps, steps * config.batchSize(), null);
        }
    }
}
