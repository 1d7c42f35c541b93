package jobs.train;

import activations.table.ActivationManifest;
import activations.table.ActivationSource;
import activations.table.ActivationTableReader;
import activations.table.RepeatedSource;
import activations.model.ComputeThreads;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.util.SerializableConfiguration;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.sae.SaeConfig;
import training.sae.SparseAutoencoder;
import training.trainer.Checkpoints;
import training.trainer.RunFiles;
import training.trainer.SaeStep;
import training.trainer.SaeTrainer;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Optional;
import java.util.stream.IntStream;

/**
 * One large SAE trained by N replicas on disjoint parts of the cache (replica i reads the i-th
 * 1/N of the rows). Training goes in rounds of K optimizer steps: the driver broadcasts the
 * current state, every replica runs K local steps on a 1/N share of the global batch, and the
 * driver averages the replicas' parameters and Adam moments with a tree aggregation. With K = 1
 * the replicas return gradients instead, which the driver averages before one clipped Adam step:
 * synchronous data-parallel SGD, equal to training on the global batch.
 *
 * <p>The driver keeps the master copy, writes metrics and checkpoints (so {@code --resume} works as
 * for a single run) and exports the SAELens directory at the end.
 */
public final class DataParallelSae {

    /** What the driver sends each round (a class: Spark's Kryo cannot serialize records). */
    static final class RoundState implements Serializable {
        float[] parameters;
        float[] adamState;
        double[] architectureState;
        long[] tokensSinceFired;
        long step;
    }

    /** What the replicas send back, summed by the tree aggregation. */
    static final class Contribution implements Serializable {
        float[] sum;            // gradients (K = 1) or parameters then Adam state (K > 1)
        double[] architectureState;
        double[] fireCounts;
        double loss;
        double mse;
        double sparsity;
        double auxiliary;
        double l0;
        double fvu;
        int steps;
        int replicas;

        Contribution add(Contribution other) {
            if (other.sum == null) {
                return this;
            }
            if (sum == null) {
                return other;
            }
            for (int i = 0; i < sum.length; i++) {
                sum[i] += other.sum[i];
            }
            for (int i = 0; i < architectureState.length; i++) {
                architectureState[i] += other.architectureState[i];
            }
            for (int i = 0; i < fireCounts.length; i++) {
                fireCounts[i] += other.fireCounts[i];
            }
            loss += other.loss;
            mse += other.mse;
            sparsity += other.sparsity;
            auxiliary += other.auxiliary;
            l0 += other.l0;
            fvu += other.fvu;
            steps += other.steps;
            replicas += other.replicas;
            return this;
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    private DataParallelSae() {
    }

    public static TrainSaeJob.Outcome train(SparkSession spark, String activations, TrainSaeJob.Run run, int replicas,
                                           int syncEvery, boolean resume, SaeTrainer.Listener progress) {
        if (replicas < 1 || syncEvery < 1) {
            throw new IllegalArgumentException("--replicas and --sync-every must be at least 1");
        }
        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        Path cacheDir = new Path(activations);
        ActivationManifest manifest = ActivationManifest.read(hadoop, cacheDir);
        int dIn = manifest.dim(run.hook());
        if (dIn < 0) {
            throw new IllegalArgumentException("hook '" + run.hook() + "' is not in the activation cache " + activations
                    + "; it holds " + String.join(", ", manifest.hookNames()));
        }
        SaeConfig base = run.settings().toConfig(dIn);
        if (base.batchSize() % replicas != 0) {
            throw new IllegalArgumentException("batch-tokens " + base.batchSize() + " is not a multiple of --replicas "
                    + replicas + "; each replica takes an equal share of every batch");
        }
        int share = base.batchSize() / replicas;
        java.nio.file.Path out = java.nio.file.Path.of(run.out());
        Optional<java.nio.file.Path> checkpoint = Checkpoints.latest(out);
        if (checkpoint.isPresent() && !resume) {
            throw new IllegalStateException("output directory " + out + " already holds a run's checkpoint ("
                    + checkpoint.get().getFileName() + "); resume that run (--resume) or choose an empty output directory");
        }

        SaeStep master;
        long step;
        double scale;
        if (checkpoint.isPresent()) {
            Checkpoints.Loaded loaded = Checkpoints.read(checkpoint.get());
            scale = loaded.state().normalizationScale;
            master = new SaeStep(base.toBuilder().normalizationScale(scale).build());
            master.restore(loaded.state(), loaded.parameters(), loaded.adamState());
            step = loaded.state().step;
        } else {
            double fromManifest = TrainSaeJob.normalizationScale(manifest, run.hook(), dIn);
            INDArray sample = sample(hadoop, cacheDir, run.hook(), base.batchSize() * base.normalizationBatches(), dIn);
            scale = fromManifest > 0 ? fromManifest : Math.sqrt(dIn) / sample.norm2(1).meanNumber().doubleValue();
            master = new SaeStep(base.toBuilder().normalizationScale(scale).build());
            master.sae().initialize(sample.muli(scale), base.seed());
            step = 0;
            try {
                Files.createDirectories(out);
                Files.deleteIfExists(out.resolve("metrics.jsonl"));
            } catch (IOException e) {
                throw new UncheckedIOException("cannot prepare " + out + ": " + e.getMessage(), e);
            }
        }
        SaeConfig config = master.config();
        long totalSteps = config.totalSteps();
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        SerializableConfiguration conf = new SerializableConfiguration(hadoop);
        int epochs = run.settings().epochs();
        String hook = run.hook();
        JavaRDD<Integer> replicaIds = jsc.parallelize(IntStream.range(0, replicas).boxed().toList(), replicas);
        long tokens = step * config.batchSize();
        long lastCheckpoint = step;

        try (BufferedWriter metrics = Files.newBufferedWriter(out.resolve("metrics.jsonl"), StandardCharsets.UTF_8,
                StandardOpenOption.CREATE, StandardOpenOption.APPEND)) {
            while (step < totalSteps) {
                int k = (int) Math.min(syncEvery, totalSteps - step);
                long roundStart = System.nanoTime();
                Broadcast<RoundState> state = jsc.broadcast(capture(master, step));
                boolean gradientMode = syncEvery == 1;
                Contribution total = replicaIds.map(replica -> replicaRound(conf.value(), activations, hook, config, epochs,
                                replica, replicas, share, k, gradientMode, state.value()))
                        .treeAggregate(new Contribution(), Contribution::add, Contribution::add);
                state.destroy();
                if (total.replicas != replicas) {
                    throw new IllegalStateException("only " + total.replicas + " of " + replicas + " replicas reported; rerun with --resume");
                }
                applyRound(master, total, gradientMode, step, replicas, config.batchSize() * k);
                step += k;
                tokens += (long) k * config.batchSize();
                double seconds = (System.nanoTime() - roundStart) / 1e9;
                SaeTrainer.Metrics m = new SaeTrainer.Metrics(step, totalSteps, tokens, total.loss / total.steps,
                        total.mse / total.steps, total.sparsity / total.steps, total.auxiliary / total.steps,
                        total.fvu / total.steps, total.l0 / total.steps,
                        master.stats().deadFraction(), master.stats().takeDenseFraction(),
                        master.adam().learningRate((int) step - 1), master.lambdaAt(step - 1),
                        seconds > 0 ? k * (double) config.batchSize() / seconds : 0);
                metrics.write(JSON.writeValueAsString(m));
                metrics.newLine();
                metrics.flush();
                if (progress != null && (step % config.metricsEverySteps() < k || step == totalSteps)) {
                    progress.onMetrics(m);
                }
                if (config.checkpointEverySteps() > 0 && step - lastCheckpoint >= config.checkpointEverySteps()) {
                    checkpoint(master, out, step, tokens, scale);
                    lastCheckpoint = step;
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write metrics in " + out + ": " + e.getMessage(), e);
        }
        if (lastCheckpoint != step) {
            checkpoint(master, out, step, tokens, scale);
        }
        TrainSaeJob.export(hadoop, activations, manifest, run, out, master.sae(), scale, master.stats().featureDensity());
        return new TrainSaeJob.Outcome(run.name(), run.out(), step, tokens, Double.NaN, Double.NaN,
                master.stats().deadFraction());
    }

    /** One replica's part of a round: K local steps (or one gradient) from the broadcast state. */
    static Contribution replicaRound(Configuration conf, String activations, String hook, SaeConfig config, int epochs,
                                     int replica, int replicas, int share, int k, boolean gradientMode, RoundState state) {
        TaskContext task = TaskContext.get();
        if (task != null) {
            ComputeThreads.limit(task.cpus());
        }
        SaeStep local = new SaeStep(config);
        Checkpoints.TrainerState restored = new Checkpoints.TrainerState();
        restored.architectureState = state.architectureState;
        restored.tokensSinceFired = state.tokensSinceFired;
        restored.intervalCounts = new double[config.dSae()];
        restored.windowCounts = new double[config.dSae()];
        local.restore(restored, state.parameters, state.adamState);

        Path dir = new Path(activations);
        ActivationTableReader.Options part = ActivationTableReader.Options.replica(replica, replicas);
        INDArray batch = Nd4j.create(DataType.FLOAT, share, config.dIn());
        FloatBuffer floats = batch.data().asNio().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        Contribution c = new Contribution();
        c.fireCounts = new double[config.dSae()];
        c.replicas = 1;
        try (ActivationSource source = new RepeatedSource(() -> ActivationTableReader.open(conf, dir, List.of(hook), part), epochs)) {
            source.skip(state.step * share);
            for (int i = 0; i < k; i++) {
                fill(source, floats, share, state.step + i);
                batch.muli(config.normalizationScale());
                SparseAutoencoder.LossParts parts = gradientMode ? local.gradients(batch, state.step)
                        : local.run(batch, state.step + i);
                double[] fired = local.sae().lastFireCounts().toDoubleVector();
                for (int f = 0; f < fired.length; f++) {
                    c.fireCounts[f] += fired[f];
                }
                c.loss += parts.total();
                c.mse += parts.mse();
                c.sparsity += parts.sparsity();
                c.auxiliary += parts.auxiliary();
                c.l0 += parts.l0();
                c.fvu += SaeStep.fvu(batch, local.sae().lastReconstruction());
                c.steps++;
            }
        }
        float[] first = gradientMode ? local.sae().gradients().toFloatVector() : local.sae().parameters().toFloatVector();
        float[] second = gradientMode ? new float[0] : local.adam().state().toFloatVector();
        c.sum = new float[first.length + second.length];
        System.arraycopy(first, 0, c.sum, 0, first.length);
        System.arraycopy(second, 0, c.sum, first.length, second.length);
        c.architectureState = local.sae().trainingState();
        return c;
    }

    private static void fill(ActivationSource source, FloatBuffer floats, int rows, long step) {
        if (!RunFiles.fill(source, new FloatBuffer[] {floats}, rows)) {
            throw new IllegalStateException("a replica's share of the activations ended at step " + step
                    + "; lower `tokens`, raise `epochs`, or cache more tokens");
        }
        for (int i = 0; i < floats.capacity(); i++) {
            if (!Float.isFinite(floats.get(i))) {
                throw new IllegalStateException("a non-finite activation reached a replica at step " + step
                        + "; rebuild the activation cache (the last checkpoint is kept)");
            }
        }
    }

    private static RoundState capture(SaeStep master, long step) {
        RoundState s = new RoundState();
        s.parameters = master.sae().parameters().toFloatVector();
        s.adamState = master.adam().state().toFloatVector();
        s.architectureState = master.sae().trainingState();
        s.tokensSinceFired = master.capture(step, 0, 0, 1).tokensSinceFired;
        s.step = step;
        return s;
    }

    /** Averages the replicas' contributions into the master copy. */
    private static void applyRound(SaeStep master, Contribution total, boolean gradientMode, long step, int replicas,
                                   int tokens) {
        float inverse = 1f / replicas;
        int n = (int) master.sae().parameters().length();
        for (int i = 0; i < total.architectureState.length; i++) {
            total.architectureState[i] /= replicas;
        }
        master.sae().restoreTrainingState(total.architectureState);
        if (gradientMode) {
            master.sae().gradients().assign(Nd4j.createFromArray(total.sum).muli(inverse).reshape(master.sae().gradients().shape()));
            master.update(step, total.fireCounts, tokens);
            return;
        }
        float[] parameters = new float[n];
        float[] adam = new float[total.sum.length - n];
        System.arraycopy(total.sum, 0, parameters, 0, n);
        System.arraycopy(total.sum, n, adam, 0, adam.length);
        master.sae().parameters().assign(Nd4j.createFromArray(parameters).muli(inverse).reshape(master.sae().parameters().shape()));
        master.adam().restoreState(Nd4j.createFromArray(adam).muli(inverse));
        master.stats().update(total.fireCounts, tokens);
    }

    private static void checkpoint(SaeStep master, java.nio.file.Path out, long step, long tokens, double scale) {
        Checkpoints.TrainerState state = master.capture(step, tokens, step * master.config().batchSize(), scale);
        state.config = RunFiles.configMap(master.config());
        Checkpoints.write(out, state, master.sae().parameters().toFloatVector(), master.adam().state().toFloatVector());
    }

    /** The first rows of the cache, for the normalization scale and b_dec's initialization. */
    private static INDArray sample(Configuration conf, Path dir, String hook, int rows, int dIn) {
        try (ActivationTableReader reader = ActivationTableReader.open(conf, dir, List.of(hook))) {
            int n = (int) Math.min(rows, reader.rowCount());
            float[] data = new float[n * dIn];
            FloatBuffer buffer = FloatBuffer.wrap(data);
            int filled = 0;
            while (filled < n) {
                int got = reader.read(new FloatBuffer[] {buffer}, n - filled);
                if (got == 0) {
                    break;
                }
                filled += got;
            }
            return Nd4j.createFromArray(data).reshape(n, dIn);
        }
    }
}
