package jobs.train;

import activations.table.ActivationManifest;
import activations.table.ActivationSource;
import activations.table.ActivationTableReader;
import activations.table.HookStatistics;
import activations.table.MixingBuffer;
import activations.table.RepeatedSource;
import activations.table.TokenTableManifest;
import activations.model.ComputeThreads;
import jobs.output.TrainingOutput;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.util.SerializableConfiguration;
import training.export.SaeLensExporter;
import training.export.SaeLensMetadata;
import training.sae.SaeConfig;
import training.trainer.SaeTrainer;

import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;

/**
 * Trains SAEs on an activation cache: one run in this JVM, or a sweep of runs as Spark tasks, one
 * run per task, each streaming only its hook's column. A run's output directory is a SAELens 6
 * directory plus {@code metrics.jsonl}, {@code train_config.conf} and {@code checkpoints/}.
 */
public final class TrainSaeJob {

    /** One run: which hook, which settings, where to (a class: runs travel through Spark's Kryo). */
    public static final class Run implements Serializable {
        private final String name;
        private final String hook;
        private final SaeSettings settings;
        private final String out;
        private final String hookOut;

        public Run(String name, String hook, SaeSettings settings, String out) {
            this(name, hook, null, settings, out);
        }

        /** A per-layer transcoder when {@code hookOut} is set: input {@code hook}, target {@code hookOut}. */
        public Run(String name, String hook, String hookOut, SaeSettings settings, String out) {
            this.name = name;
            this.hook = hook;
            this.hookOut = hookOut;
            this.settings = settings;
            this.out = out;
        }

        public String hookOut() {
            return hookOut;
        }

        public String name() {
            return name;
        }

        public String hook() {
            return hook;
        }

        public SaeSettings settings() {
            return settings;
        }

        public String out() {
            return out;
        }
    }

    /** What a finished run reports (a class, not a record: it travels back through Spark's Kryo). */
    public static final class Outcome implements Serializable {
        public final String name;
        public final String out;
        public final long steps;
        public final long tokens;
        public final double fvu;
        public final double l0;
        public final double deadFraction;

        Outcome(String name, String out, long steps, long tokens, double fvu, double l0, double deadFraction) {
            this.name = name;
            this.out = out;
            this.steps = steps;
            this.tokens = tokens;
            this.fvu = fvu;
            this.l0 = l0;
            this.deadFraction = deadFraction;
        }
    }

    private TrainSaeJob() {
    }

    /** Trains one SAE in this JVM; {@code resume} continues the run's newest checkpoint. */
    public static Outcome train(Configuration conf, String activations, Run run, boolean resume,
                                SaeTrainer.Listener progress) {
        if (TaskContext.get() == null) {
            ComputeThreads.useAllCores(); // not a task: this JVM is the run's (see useAllCores)
        }
        Path cacheDir = new Path(activations);
        ActivationManifest manifest = ActivationManifest.read(conf, cacheDir);
        int dIn = manifest.dim(run.hook());
        if (dIn < 0) {
            throw new IllegalArgumentException("hook '" + run.hook() + "' is not in the activation cache " + activations
                    + "; it holds " + String.join(", ", manifest.hookNames()));
        }
        SaeConfig.Builder builder = run.settings().toConfig(dIn).toBuilder()
                .normalizationScale(normalizationScale(manifest, run.hook(), dIn));
        List<String> hooks = new ArrayList<>(List.of(run.hook()));
        if (run.hookOut() != null) {
            int dOut = manifest.dim(run.hookOut());
            if (dOut < 0) {
                throw new IllegalArgumentException("hook-out '" + run.hookOut() + "' is not in the activation cache " + activations
                        + "; it holds " + String.join(", ", manifest.hookNames()));
            }
            builder.dOut(dOut).skipConnection(run.settings().skipConnection())
                    .targetNormalizationScale(normalizationScale(manifest, run.hookOut(), dOut));
            hooks.add(run.hookOut());
        }
        SaeConfig asked = builder.build();
        TrainingBudget budget = TrainingBudget.plan(manifest.tokenCount(), asked.totalTokens(),
                (long) asked.normalizationBatches() * asked.batchSize(), run.settings().epochs(), asked.batchSize());
        SaeConfig config = budget.capped() ? builder.totalTokens(budget.tokens()).build() : asked;
        System.out.println(run.name() + ": " + budget.describe());
        SaeTrainer.Result result;
        List<SaeTrainer.Metrics> last = new ArrayList<>();
        try (TrainingOutput output = TrainingOutput.open(conf, run.out(), "cfg.json")) {
            if (!resume && output.complete()) {
                throw new IllegalStateException("output directory " + run.out() + " already holds a trained SAE; choose another --out");
            }
            java.nio.file.Path out = output.local();
            try (ActivationSource source = new MixingBuffer(
                    new RepeatedSource(() -> ActivationTableReader.open(conf, cacheDir, hooks), budget.passes()),
                    Math.max(config.batchSize(), run.settings().mixingBuffer()), run.settings().seed())) {
                SaeTrainer trainer = new SaeTrainer(config, out).resume(resume).listener(new SaeTrainer.Listener() {
                    @Override
                    public void onMetrics(SaeTrainer.Metrics m) {
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
            if (run.hookOut() != null) {
                SaeLensExporter.export(result.sae(), result.normalizationScale(), result.targetNormalizationScale(),
                        result.featureDensity(), metadata(conf, activations, manifest, run), run.hookOut(), out);
                writeTrainConfig(activations, run, out);
            } else {
                export(conf, activations, manifest, run, out, result.sae(), result.normalizationScale(), result.featureDensity());
            }
            output.publish();
        }
        // The trainer always writes the last (possibly partial) metrics window, so there is one.
        SaeTrainer.Metrics m = last.get(0);
        return new Outcome(run.name(), run.out(), result.steps(), result.tokens(), m.fvu(), m.l0(), m.deadFraction());
    }

    /** The newest record of a run's metrics.jsonl as a JSON tree (data-parallel runs write their own lines). */
    static com.fasterxml.jackson.databind.JsonNode lastMetrics(java.nio.file.Path out) {
        try {
            List<String> lines = Files.readAllLines(out.resolve("metrics.jsonl"));
            for (int i = lines.size() - 1; i >= 0; i--) {
                if (!lines.get(i).isBlank()) {
                    return new com.fasterxml.jackson.databind.ObjectMapper().readTree(lines.get(i));
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + out.resolve("metrics.jsonl") + ": " + e.getMessage(), e);
        }
        throw new IllegalStateException(out.resolve("metrics.jsonl") + " is empty; the run trained no step");
    }

    /** Writes the SAELens directory (scale folded into the weights) and train_config.conf into {@code out}. */
    static void export(Configuration conf, String activations, ActivationManifest manifest, Run run, java.nio.file.Path out,
                       training.sae.SparseAutoencoder sae, double scale, double[] featureDensity) {
        SaeLensExporter.export(sae, scale, featureDensity, metadata(conf, activations, manifest, run), out);
        writeTrainConfig(activations, run, out);
    }

    private static SaeLensMetadata metadata(Configuration conf, String activations, ActivationManifest manifest, Run run) {
        return new SaeLensMetadata(manifest.modelId(), run.hook(), null, manifest.contextSize(), prependsBos(conf, manifest),
                activations);
    }

    private static void writeTrainConfig(String activations, Run run, java.nio.file.Path out) {
        String hooks = "hook = \"" + run.hook() + "\"\n" + (run.hookOut() == null ? "" : "hook-out = \"" + run.hookOut() + "\"\n");
        try {
            Files.writeString(out.resolve("train_config.conf"), "# " + run.name() + " of " + activations + "\n" + hooks
                    + "sae " + run.settings().render() + "\n");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + out.resolve("train_config.conf") + ": " + e.getMessage(), e);
        }
    }

    /** Trains every run of a sweep, one Spark task per run. */
    public static List<Outcome> sweep(SparkSession spark, String activations, List<Run> runs, boolean resume) {
        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        ActivationManifest manifest = ActivationManifest.read(hadoop, new Path(activations));
        for (Run run : runs) {
            int d = manifest.dim(run.hook());
            if (d < 0) {
                throw new IllegalArgumentException("run " + run.name() + ": hook '" + run.hook() + "' is not in the activation cache "
                        + activations + "; it holds " + String.join(", ", manifest.hookNames()));
            }
            run.settings().toConfig(d); // every run's settings are checked before any task starts
        }
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        SerializableConfiguration conf = new SerializableConfiguration(hadoop);
        return jsc.parallelize(runs, runs.size()).map(run -> {
            TaskContext task = TaskContext.get();
            if (task != null) {
                // A run owns spark.task.cpus cores: no wider OpenMP or loop parallelism than that.
                ComputeThreads.limit(task.cpus());
            }
            return train(conf.value(), activations, run, resume, null);
        }).collect();
    }

    /** sqrt(d) / E||x|| from the cache's statistics: inputs scaled to E||x|| = sqrt(d_in). */
    static double normalizationScale(ActivationManifest manifest, String hook, int dIn) {
        HookStatistics stats = manifest.statistics().get(hook);
        if (stats == null || !(stats.meanNorm() > 0)) {
            return 0; // estimated from the first batches instead
        }
        return Math.sqrt(dIn) / stats.meanNorm();
    }

    private static boolean prependsBos(Configuration conf, ActivationManifest manifest) {
        if (manifest.sourceTokenTable() == null) {
            return false;
        }
        try {
            return TokenTableManifest.read(conf, new Path(manifest.sourceTokenTable())).bosId() != null;
        } catch (RuntimeException e) {
            return false; // the token table moved; the flag is informational
        }
    }
}
