package jobs.train;

import activations.model.ComputeThreads;
import activations.table.ActivationSource;
import activations.table.ActivationTableReader;
import activations.table.RepeatedSource;
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
import training.trainer.Checkpoints;
import training.trainer.DictionaryStep;
import training.trainer.ProgressBar;
import training.trainer.RunFiles;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintStream;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * Trains one dictionary (SAE, transcoder or CLT: any {@link DictionaryStep}) with N replicas on
 * disjoint parts of the cache (replica i reads the i-th 1/N of the rows). Training goes in rounds of
 * K optimizer steps: the driver broadcasts the current state, every replica runs K local steps on a
 * 1/N share of the global batch, and the driver averages the replicas' parameters and Adam moments
 * with a tree aggregation. With K = 1 the replicas return gradients instead, which the driver
 * averages before one clipped Adam step: synchronous data-parallel SGD, equal to training on the
 * global batch. The driver keeps the master copy and writes metrics and checkpoints.
 */
public final class DataParallelTrainer {

    /** Makes a fresh step object on an executor (captured in the task closure, so Java-serialized). */
    public interface StepFactory extends Serializable {
        DictionaryStep create();
    }

    /** Writes a checkpoint of the master at a step (the caller knows the config and scales to record). */
    public interface CheckpointWriter {
        void write(long step, long tokens);
    }

    /**
     * What to train on and how: hooks in the step's order with a normalization scale each, the
     * global batch, and the cadences; {@code fitName} labels the fit figure in metrics ("fvu", "nmse").
     */
    public record Plan(String activations, List<String> hooks, double[] scales, int batchSize, int replicas, int syncEvery,
                       int epochs, long totalSteps, int metricsEvery, int checkpointEvery, String fitName,
                       String out) implements Serializable {

        java.nio.file.Path outDirectory() {
            return java.nio.file.Path.of(out);
        }
    }

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
        double fit;
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
            fit += other.fit;
            steps += other.steps;
            replicas += other.replicas;
            return this;
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    private DataParallelTrainer() {
    }

    /** Checks a plan before any work: replicas and the batch must divide. */
    public static void check(int replicas, int syncEvery, int batchSize) {
        if (replicas < 1 || syncEvery < 1) {
            throw new IllegalArgumentException("--replicas and --sync-every must be at least 1");
        }
        if (batchSize % replicas != 0) {
            throw new IllegalArgumentException("batch-tokens " + batchSize + " is not a multiple of --replicas "
                    + replicas + "; each replica takes an equal share of every batch");
        }
    }

    /** Rounds from {@code step} to the plan's end; the master is initialized or restored by the caller. */
    public static long train(SparkSession spark, Plan plan, StepFactory factory, DictionaryStep master, long step,
                             CheckpointWriter checkpoints, PrintStream progress) {
        check(plan.replicas(), plan.syncEvery(), plan.batchSize());
        int share = plan.batchSize() / plan.replicas();
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        SerializableConfiguration conf = new SerializableConfiguration(spark.sparkContext().hadoopConfiguration());
        JavaRDD<Integer> replicaIds = jsc.parallelize(IntStream.range(0, plan.replicas()).boxed().toList(), plan.replicas());
        long tokens = step * plan.batchSize();
        long lastCheckpoint = step;
        boolean gradientMode = plan.syncEvery() == 1;
        if (step == 0) {
            RunFiles.resetMetrics(plan.outDirectory());
        } else {
            RunFiles.truncateMetrics(plan.outDirectory(), step);
        }
        try (BufferedWriter metrics = Files.newBufferedWriter(plan.outDirectory().resolve("metrics.jsonl"), StandardCharsets.UTF_8,
                StandardOpenOption.CREATE, StandardOpenOption.APPEND)) {
            while (step < plan.totalSteps()) {
                int k = (int) Math.min(plan.syncEvery(), plan.totalSteps() - step);
                long roundStart = System.nanoTime();
                Broadcast<RoundState> state = jsc.broadcast(capture(master, step));
                Contribution total = replicaIds.map(replica -> replicaRound(conf.value(), plan, factory, replica, share, k,
                                gradientMode, state.value()))
                        .treeAggregate(new Contribution(), Contribution::add, Contribution::add);
                state.destroy();
                if (total.replicas != plan.replicas()) {
                    throw new IllegalStateException("only " + total.replicas + " of " + plan.replicas()
                            + " replicas reported; rerun with --resume");
                }
                applyRound(master, total, gradientMode, step, plan.replicas(), plan.batchSize() * k);
                step += k;
                tokens += (long) k * plan.batchSize();
                double seconds = (System.nanoTime() - roundStart) / 1e9;
                Map<String, Object> m = metricsLine(plan, master, total, step, tokens,
                        seconds > 0 ? k * (double) plan.batchSize() / seconds : 0);
                metrics.write(JSON.writeValueAsString(m));
                metrics.newLine();
                metrics.flush();
                if (progress != null && (step % plan.metricsEvery() < k || step == plan.totalSteps())) {
                    progress.printf(Locale.ROOT, "%s  step %d/%d  loss %.4g  %s %.3f  l0 %.1f  dead %.1f%%%n",
                            ProgressBar.render(step, plan.totalSteps(), (double) m.get("tokensPerSecond"), plan.batchSize()),
                            step, plan.totalSteps(), total.loss / total.steps, plan.fitName(), total.fit / total.steps,
                            total.l0 / total.steps, 100 * master.stats().deadFraction());
                }
                if (plan.checkpointEvery() > 0 && step - lastCheckpoint >= plan.checkpointEvery()) {
                    checkpoints.write(step, tokens);
                    lastCheckpoint = step;
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write metrics in " + plan.out() + ": " + e.getMessage(), e);
        }
        if (lastCheckpoint != step) {
            checkpoints.write(step, tokens);
        }
        return step;
    }

    private static Map<String, Object> metricsLine(Plan plan, DictionaryStep master, Contribution total, long step,
                                                   long tokens, double tokensPerSecond) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("step", step);
        m.put("totalSteps", plan.totalSteps());
        m.put("tokens", tokens);
        m.put("loss", total.loss / total.steps);
        m.put("mse", total.mse / total.steps);
        m.put("sparsity", total.sparsity / total.steps);
        m.put("auxiliary", total.auxiliary / total.steps);
        m.put(plan.fitName(), total.fit / total.steps);
        m.put("l0", total.l0 / total.steps);
        m.put("deadFraction", master.stats().deadFraction());
        m.put("denseFraction", master.stats().takeDenseFraction());
        m.put("learningRate", master.adam().learningRate((int) step - 1));
        m.put("sparsityCoefficient", master.lambdaAt(step - 1));
        m.put("tokensPerSecond", tokensPerSecond);
        m.put("replicas", plan.replicas());
        return m;
    }

    /** One replica's part of a round: K local steps (or one gradient) from the broadcast state. */
    static Contribution replicaRound(Configuration conf, Plan plan, StepFactory factory, int replica, int share, int k,
                                     boolean gradientMode, RoundState state) {
        TaskContext task = TaskContext.get();
        if (task != null) {
            ComputeThreads.limit(task.cpus());
        }
        DictionaryStep local = factory.create();
        Checkpoints.TrainerState restored = new Checkpoints.TrainerState();
        int features = state.tokensSinceFired.length;
        restored.architectureState = state.architectureState;
        restored.tokensSinceFired = state.tokensSinceFired;
        restored.intervalCounts = new double[features];
        restored.windowCounts = new double[features];
        local.restore(restored, state.parameters, state.adamState);

        List<String> hooks = plan.hooks();
        INDArray[] batches = new INDArray[hooks.size()];
        FloatBuffer[] floats = new FloatBuffer[hooks.size()];
        Path dir = new Path(plan.activations());
        ActivationTableReader.Options part = ActivationTableReader.Options.replica(replica, plan.replicas());
        Contribution c = new Contribution();
        c.fireCounts = new double[features];
        c.replicas = 1;
        try (ActivationSource source = new RepeatedSource(() -> ActivationTableReader.open(conf, dir, hooks, part), plan.epochs())) {
            int[] dims = source.dims();
            for (int h = 0; h < hooks.size(); h++) {
                batches[h] = Nd4j.create(DataType.FLOAT, share, dims[h]);
                floats[h] = batches[h].data().asNio().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
            }
            source.skip(state.step * share);
            for (int i = 0; i < k; i++) {
                fill(source, floats, share, state.step + i);
                for (int h = 0; h < hooks.size(); h++) {
                    batches[h].muli(plan.scales()[h]);
                }
                DictionaryStep.StepLoss loss = gradientMode ? local.gradients(batches, state.step)
                        : local.run(batches, state.step + i);
                double[] fired = local.lastFireCounts();
                for (int f = 0; f < fired.length; f++) {
                    c.fireCounts[f] += fired[f];
                }
                c.loss += loss.total();
                c.mse += loss.mse();
                c.sparsity += loss.sparsity();
                c.auxiliary += loss.auxiliary();
                c.l0 += loss.l0();
                c.fit += loss.fit();
                c.steps++;
            }
        }
        float[] first = gradientMode ? local.gradients().toFloatVector() : local.parameters().toFloatVector();
        float[] second = gradientMode ? new float[0] : local.adam().state().toFloatVector();
        c.sum = new float[first.length + second.length];
        System.arraycopy(first, 0, c.sum, 0, first.length);
        System.arraycopy(second, 0, c.sum, first.length, second.length);
        c.architectureState = local.trainingState();
        return c;
    }

    private static void fill(ActivationSource source, FloatBuffer[] floats, int rows, long step) {
        if (!RunFiles.fill(source, floats, rows)) {
            throw new IllegalStateException("a replica's share of the activations ended at step " + step
                    + "; lower `tokens`, raise `epochs`, or cache more tokens");
        }
        for (FloatBuffer f : floats) {
            for (int i = 0; i < f.capacity(); i++) {
                if (!Float.isFinite(f.get(i))) {
                    throw new IllegalStateException("a non-finite activation reached a replica at step " + step
                            + "; rebuild the activation cache (the last checkpoint is kept)");
                }
            }
        }
    }

    private static RoundState capture(DictionaryStep master, long step) {
        RoundState s = new RoundState();
        s.parameters = master.parameters().toFloatVector();
        s.adamState = master.adam().state().toFloatVector();
        s.architectureState = master.trainingState();
        s.tokensSinceFired = master.capture(step, 0, 0).tokensSinceFired;
        s.step = step;
        return s;
    }

    /** Averages the replicas' contributions into the master copy. */
    private static void applyRound(DictionaryStep master, Contribution total, boolean gradientMode, long step, int replicas,
                                   int tokens) {
        float inverse = 1f / replicas;
        int n = (int) master.parameters().length();
        for (int i = 0; i < total.architectureState.length; i++) {
            total.architectureState[i] /= replicas;
        }
        master.restoreTrainingState(total.architectureState);
        if (gradientMode) {
            master.gradients().assign(Nd4j.createFromArray(total.sum).muli(inverse).reshape(master.gradients().shape()));
            master.update(step, total.fireCounts, tokens);
            return;
        }
        float[] parameters = new float[n];
        float[] adam = new float[total.sum.length - n];
        System.arraycopy(total.sum, 0, parameters, 0, n);
        System.arraycopy(total.sum, n, adam, 0, adam.length);
        master.parameters().assign(Nd4j.createFromArray(parameters).muli(inverse).reshape(master.parameters().shape()));
        master.adam().restoreState(Nd4j.createFromArray(adam).muli(inverse));
        master.stats().update(total.fireCounts, tokens);
    }
}
