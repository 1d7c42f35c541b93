package training.trainer;

import activations.table.ActivationSource;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.optim.AdamOptimizer;
import training.sae.SaeConfig;
import training.sae.SparseAutoencoder;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Trains one SAE on one hook of an {@link ActivationSource}: batches are decoded straight into the
 * native memory of a preallocated fp32 batch array, scaled so that E||x|| = sqrt(d_in), then
 * forward/backward, global-norm clipping and ND4J Adam, with lr and sparsity-coefficient warmup,
 * dead/dense feature tracking, metrics to {@code metrics.jsonl} and checkpoints under the output
 * directory. {@link #resume(boolean)} continues from the newest checkpoint to the same result as an
 * uninterrupted run.
 *
 * <p>Transcoders ({@link SaeConfig#isTranscoder()}) read a two-hook source, hooks {@code [in, out]}
 * (e.g. {@code blocks.l.ln2.hook_normalized} and {@code blocks.l.hook_mlp_out}); input and target
 * each get their own scale (E||x|| = sqrt(d_in), E||y|| = sqrt(d_out)).
 *
 * <p>The first {@code normalizationBatches} batches of a fresh run are read to estimate the scale
 * (unless given) and to initialize b_dec; they are not trained on.
 */
public final class SaeTrainer {

    /** One metrics record, as written to metrics.jsonl; loss parts, FVU and L0 are averages over the interval's steps. */
    public record Metrics(long step, long totalSteps, long tokens, double loss, double mse, double sparsity,
                          double auxiliary, double fvu, double l0, double deadFraction, double denseFraction,
                          double learningRate, double sparsityCoefficient, double tokensPerSecond) {
    }

    /** Gets every metrics record (e.g. to draw a progress bar). */
    public interface Listener {
        void onMetrics(Metrics metrics);

        default void onCheckpoint(long step, Path directory) {
        }
    }

    /** What a finished run hands to the exporter. */
    public record Result(SparseAutoencoder sae, double normalizationScale, long steps, long tokens,
                         double[] featureDensity, double targetNormalizationScale) {
    }

    /** A one-line progress printer for consoles. */
    public static Listener consoleProgress(java.io.PrintStream out) {
        return m -> out.printf(java.util.Locale.ROOT,
                "%s  step %d/%d  tokens %s  loss %.4g  mse %.4g  fvu %.3f  l0 %.1f  dead %.1f%%  dense %.1f%%  lr %.2e  %s tok/s%n",
                ProgressBar.render(m.step(), m.totalSteps(), m.tokensPerSecond(), m.step() == 0 ? 0 : m.tokens() / m.step()),
                m.step(), m.totalSteps(), human(m.tokens()), m.loss(), m.mse(), m.fvu(), m.l0(),
                100 * m.deadFraction(), 100 * m.denseFraction(), m.learningRate(), human((long) m.tokensPerSecond()));
    }

    private static String human(long n) {
        if (n >= 1_000_000_000L) {
            return String.format(java.util.Locale.ROOT, "%.2fG", n / 1e9);
        }
        if (n >= 1_000_000L) {
            return String.format(java.util.Locale.ROOT, "%.2fM", n / 1e6);
        }
        if (n >= 10_000L) {
            return String.format(java.util.Locale.ROOT, "%.1fk", n / 1e3);
        }
        return Long.toString(n);
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    private final SaeConfig config;
    private final Path output;
    private final List<Listener> listeners = new ArrayList<>();
    private boolean resume;

    public SaeTrainer(SaeConfig config, Path output) {
        this.config = config.validated();
        this.output = output;
    }

    public SaeTrainer listener(Listener listener) {
        listeners.add(listener);
        return this;
    }

    /** Continue from the newest checkpoint in the output directory (a fresh start if there is none). */
    public SaeTrainer resume(boolean value) {
        resume = value;
        return this;
    }

    /** Runs to {@code config.totalSteps()} or the end of the activations, whichever comes first. */
    public Result train(ActivationSource source) {
        int hooks = config.isTranscoder() ? 2 : 1;
        if (source.dims().length != hooks) {
            throw new IllegalArgumentException(config.isTranscoder()
                    ? "a transcoder trains on two hooks [input, target], but the activation source has " + source.dims().length
                            + " (" + source.hooks() + "); open the cache for the input hook then the target hook"
                    : "an SAE trains on one hook, but the activation source has " + source.dims().length + " ("
                            + source.hooks() + "); open the cache for a single hook");
        }
        int hookWidth = source.dims()[0];
        if (hookWidth != config.dIn()) {
            throw new IllegalArgumentException("hook " + source.hooks().get(0) + " has width " + hookWidth
                    + " but the SAE's d_in is " + config.dIn() + "; set d_in to " + hookWidth);
        }
        if (config.isTranscoder() && source.dims()[1] != config.dOut()) {
            throw new IllegalArgumentException("target hook " + source.hooks().get(1) + " has width " + source.dims()[1]
                    + " but the transcoder's d_out is " + config.dOut() + "; set d_out to " + source.dims()[1]);
        }
        Optional<Path> checkpoint = RunFiles.prepareOutput(output, resume);

        int batchSize = config.batchSize();
        int dIn = config.dIn();
        long totalSteps = config.totalSteps();
        SaeStep stepper = new SaeStep(config);
        SparseAutoencoder sae = stepper.sae();
        AdamOptimizer adam = stepper.adam();
        FeatureStatistics stats = stepper.stats();

        INDArray batch = Nd4j.create(DataType.FLOAT, batchSize, dIn);
        FloatBuffer batchFloats = batch.data().asNio().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        // An autoencoder's target is its input; a transcoder's has its own buffer.
        INDArray target = config.isTranscoder() ? Nd4j.create(DataType.FLOAT, batchSize, config.dOut()) : batch;
        FloatBuffer targetFloats = config.isTranscoder()
                ? target.data().asNio().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer() : batchFloats;
        FloatBuffer[] destinations = config.isTranscoder() ? new FloatBuffer[] {batchFloats, targetFloats} : new FloatBuffer[] {batchFloats};

        long step;
        long tokens;
        double scale;
        double targetScale;
        if (checkpoint.isPresent()) {
            Checkpoints.Loaded loaded = Checkpoints.read(checkpoint.get());
            RunFiles.checkSameConfig(loaded.state().config, config, checkpoint.get());
            stepper.restore(loaded.state(), loaded.parameters(), loaded.adamState());
            step = loaded.state().step;
            tokens = loaded.state().tokens;
            scale = loaded.state().normalizationScale;
            targetScale = config.isTranscoder() ? loaded.state().targetNormalizationScale : scale;
            long skip = loaded.state().dataPosition - source.position();
            if (skip < 0) {
                throw new IllegalStateException("the activation source is already past the checkpoint's data position "
                        + loaded.state().dataPosition + "; resume with a freshly opened source");
            }
            source.skip(skip);
            RunFiles.truncateMetrics(output, step);
        } else {
            float[][] sample = readSample(source, destinations, batch, target);
            int sampleRows = sample[0].length / dIn;
            INDArray sampleArray = Nd4j.createFromArray(sample[0]).reshape(sampleRows, dIn);
            scale = config.normalizationScale() > 0 ? config.normalizationScale() : estimateScale(sampleArray, dIn);
            if (config.isTranscoder()) {
                INDArray targetSample = Nd4j.createFromArray(sample[1]).reshape(sampleRows, config.dOut());
                targetScale = config.targetNormalizationScale() > 0 ? config.targetNormalizationScale()
                        : estimateScale(targetSample, config.dOut());
                sae.initialize(sampleArray.muli(scale), targetSample.muli(targetScale), config.seed());
            } else {
                targetScale = scale;
                sae.initialize(sampleArray.muli(scale), config.seed());
            }
            step = 0;
            tokens = 0;
            RunFiles.resetMetrics(output);
        }

        Interval interval = new Interval();
        long lastCheckpointStep = step;
        try (BufferedWriter metrics = Files.newBufferedWriter(output.resolve("metrics.jsonl"), StandardCharsets.UTF_8,
                StandardOpenOption.CREATE, StandardOpenOption.APPEND)) {
            while (step < totalSteps) {
                long batchStart = source.position();
                if (!RunFiles.fill(source, destinations, batchSize)) {
                    break; // activations ended: finish with what was trained
                }
                batch.muli(scale);
                checkFinite(batch, batchFloats, step, batchStart);
                if (config.isTranscoder()) {
                    target.muli(targetScale);
                    checkFinite(target, targetFloats, step, batchStart);
                }
                double lambda = stepper.lambdaAt(step);
                SparseAutoencoder.LossParts parts = stepper.run(batch, config.isTranscoder() ? target : null, step);
                tokens += batchSize;
                step++;
                interval.add(parts, SaeStep.fvu(target, sae.lastReconstruction()), lambda);
                if (step % config.metricsEverySteps() == 0 || step == totalSteps) {
                    writeMetrics(metrics, interval.metrics(step, totalSteps, tokens, stats, adam.learningRate((int) step - 1), batchSize));
                    interval = new Interval();
                }
                if (config.checkpointEverySteps() > 0 && step % config.checkpointEverySteps() == 0) {
                    writeCheckpoint(stepper, step, tokens, source.position(), scale, targetScale);
                    lastCheckpointStep = step;
                }
            }
            if (interval.steps > 0) {
                // The activations ended inside a metrics window: its steps are reported too.
                writeMetrics(metrics, interval.metrics(step, totalSteps, tokens, stats, adam.learningRate((int) step - 1), batchSize));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write metrics in " + output + ": " + e.getMessage(), e);
        }
        if (lastCheckpointStep != step) {
            writeCheckpoint(stepper, step, tokens, source.position(), scale, targetScale);
        }
        return new Result(sae, scale, step, tokens, stats.featureDensity(), targetScale);
    }

    // ---- data ----

    /** The first normalization batches of every hook, concatenated per hook. */
    private float[][] readSample(ActivationSource source, FloatBuffer[] destinations, INDArray batch, INDArray target) {
        int batches = config.normalizationBatches();
        INDArray[] arrays = destinations.length == 1 ? new INDArray[] {batch} : new INDArray[] {batch, target};
        List<float[][]> parts = new ArrayList<>();
        for (int b = 0; b < batches; b++) {
            long start = source.position();
            if (!RunFiles.fill(source, destinations, config.batchSize())) {
                break;
            }
            float[][] copy = new float[arrays.length][];
            for (int h = 0; h < arrays.length; h++) {
                checkFinite(arrays[h], destinations[h], -1, start);
                copy[h] = new float[(int) arrays[h].length()];
                destinations[h].get(0, copy[h]);
            }
            parts.add(copy);
        }
        if (parts.isEmpty()) {
            throw new IllegalStateException("the activation source holds less than one batch of " + config.batchSize()
                    + " rows; lower the batch size or cache more tokens");
        }
        float[][] all = new float[arrays.length][];
        for (int h = 0; h < arrays.length; h++) {
            int perBatch = (int) arrays[h].length();
            all[h] = new float[parts.size() * perBatch];
            for (int i = 0; i < parts.size(); i++) {
                System.arraycopy(parts.get(i)[h], 0, all[h], i * perBatch, perBatch);
            }
        }
        return all;
    }

    /** sqrt(d) / mean ||x||: the factor that makes the average norm sqrt(d). */
    private static double estimateScale(INDArray sample, int width) {
        double meanNorm = sample.norm2(1).meanNumber().doubleValue();
        if (!(meanNorm > 0)) {
            throw new IllegalStateException("the first activation batches are all zero; cannot estimate the normalization scale"
                    + " (check the hook, or pass a normalization scale)");
        }
        return Math.sqrt(width) / meanNorm;
    }

    private void checkFinite(INDArray batch, FloatBuffer floats, long step, long firstRow) {
        if (Double.isFinite(batch.sumNumber().doubleValue())) {
            return;
        }
        int dIn = (int) batch.size(1);
        for (int r = 0; r < config.batchSize(); r++) {
            for (int j = 0; j < dIn; j++) {
                float v = floats.get(r * dIn + j);
                if (!Float.isFinite(v)) {
                    throw new IllegalStateException("activation row " + (firstRow + r) + " (step " + (step < 0 ? "before training" : step)
                            + ", column " + j + ") is " + v + "; the cache is corrupt or the model overflowed there."
                            + " Rebuild that part of the activation cache; the last checkpoint is kept");
                }
            }
        }
        // The sum overflowed although every value is finite.
        throw new IllegalStateException("activations at step " + step + " are too large to sum in fp32; pass a normalization scale");
    }


    // ---- checkpoints ----

    private void writeCheckpoint(SaeStep stepper, long step, long tokens, long dataPosition, double scale,
                                 double targetScale) {
        Checkpoints.TrainerState state = stepper.capture(step, tokens, dataPosition, scale, targetScale);
        state.config = RunFiles.configMap(config);
        Checkpoints.write(output, state, stepper.sae().parameters().toFloatVector(), stepper.adam().state().toFloatVector());
        listeners.forEach(l -> l.onCheckpoint(step, Checkpoints.latest(output).orElse(null)));
    }

    // ---- metrics ----

    private void writeMetrics(BufferedWriter metrics, Metrics m) throws IOException {
        metrics.write(JSON.writeValueAsString(m));
        metrics.newLine();
        metrics.flush();
        listeners.forEach(l -> l.onMetrics(m));
    }

    private static final class Interval {
        private final long startNanos = System.nanoTime();
        private int steps;
        private double loss;
        private double mse;
        private double sparsity;
        private double auxiliary;
        private double l0;
        private double fvu;
        private double lambda;

        void add(SparseAutoencoder.LossParts parts, double batchFvu, double coefficient) {
            steps++;
            fvu += batchFvu;
            lambda = coefficient;
            loss += parts.total();
            mse += parts.mse();
            sparsity += parts.sparsity();
            auxiliary += parts.auxiliary();
            l0 += parts.l0();
        }

        /** Averages over the interval's steps (FVU too: the mean of each batch's). */
        Metrics metrics(long step, long totalSteps, long tokens, FeatureStatistics stats, double lr, int batchSize) {
            double seconds = (System.nanoTime() - startNanos) / 1e9;
            return new Metrics(step, totalSteps, tokens, loss / steps, mse / steps, sparsity / steps, auxiliary / steps,
                    fvu / steps, l0 / steps, stats.deadFraction(), stats.takeDenseFraction(), lr, lambda,
                    seconds > 0 ? steps * (double) batchSize / seconds : 0);
        }
    }
}
