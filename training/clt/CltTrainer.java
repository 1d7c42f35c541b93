package training.clt;

import activations.table.ActivationSource;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.optim.AdamOptimizer;
import training.trainer.Checkpoints;
import training.trainer.ProgressBar;
import training.trainer.RunFiles;
import training.trainer.FeatureStatistics;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Trains a {@link CrossLayerTranscoder} from an {@link ActivationSource} whose hooks come in
 * per-layer pairs, INTERLEAVED: {@code [in_0, out_0, in_1, out_1, ...]} (e.g.
 * {@code blocks.0.ln2.hook_normalized, blocks.0.hook_mlp_out, blocks.1.ln2.hook_normalized, ...}).
 * Same shape as {@link training.trainer.SaeTrainer}: batches decoded straight into preallocated
 * native arrays, per-layer and per-side scaling (E||x_l|| = sqrt(d), from the first
 * {@code normalizationBatches} batches, which are then not trained on, or given with
 * {@link #normalizationScales}), global-norm clipping, ND4J Adam over the one flat parameter array,
 * lr and lambda warmups, dead/dense tracking per layer, {@code metrics.jsonl} + listeners, atomic
 * checkpoints, and {@link #resume(boolean)} to the same result as an uninterrupted run.
 */
public final class CltTrainer {

    /** One metrics record (loss parts averaged over the interval; NMSE of the interval's last batch). */
    public record Metrics(long step, long totalSteps, long tokens, double loss, double mse, double sparsity,
                          double preActivation, double[] nmseByLayer, double[] l0ByLayer, double[] deadFractionByLayer,
                          double denseFraction, double learningRate, double sparsityCoefficient, double tokensPerSecond) {
    }

    public interface Listener {
        void onMetrics(Metrics metrics);

        default void onCheckpoint(long step, Path directory) {
        }

        /**
         * After every optimizer step (0-based {@code step} just applied). A data-parallel driver may
         * average {@code clt.parameters()} and {@code adam.state()} across replicas here, in place.
         */
        default void onStep(long step, CrossLayerTranscoder clt, AdamOptimizer adam) {
        }
    }

    /** What a finished run hands to the exporter: scales per layer for inputs and targets. */
    public record Result(CrossLayerTranscoder clt, double[] inputScales, double[] targetScales, long steps, long tokens,
                         double[] featureDensity) {
    }

    public static Listener consoleProgress(PrintStream out) {
        return m -> out.printf(Locale.ROOT, "%s  step %d/%d  tokens %d  loss %.4g  mse %.4g  nmse %s  l0 %s  dead %s  lr %.2e  %.0f tok/s%n",
                ProgressBar.render(m.step(), m.totalSteps(), m.tokensPerSecond(), m.step() == 0 ? 0 : m.tokens() / m.step()),
                m.step(), m.totalSteps(), m.tokens(), m.loss(), m.mse(), format(m.nmseByLayer(), "%.3f"),
                format(m.l0ByLayer(), "%.1f"), format(m.deadFractionByLayer(), "%.2f"), m.learningRate(), m.tokensPerSecond());
    }

    private static String format(double[] values, String pattern) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < values.length; i++) {
            sb.append(i > 0 ? " " : "").append(String.format(Locale.ROOT, pattern, values[i]));
        }
        return sb.append(']').toString();
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern LAYER = Pattern.compile("blocks\\.(\\d+)\\.");

    private final CltConfig config;
    private final Path output;
    private final List<Listener> listeners = new ArrayList<>();
    private boolean resume;
    private double[] givenInputScales;
    private double[] givenTargetScales;

    public CltTrainer(CltConfig config, Path output) {
        this.config = config.validated();
        this.output = output;
    }

    public CltTrainer listener(Listener listener) {
        listeners.add(listener);
        return this;
    }

    /** Continue from the newest checkpoint in the output directory (a fresh start if there is none). */
    public CltTrainer resume(boolean value) {
        resume = value;
        return this;
    }

    /**
     * Fixed per-layer scales (e.g. sqrt(d) / mean norm from the cache manifest's statistics) instead
     * of estimating them from the first batches; then no batch is spent on estimation.
     */
    public CltTrainer normalizationScales(double[] inputScales, double[] targetScales) {
        if (inputScales.length != config.layers() || targetScales.length != config.layers()) {
            throw new IllegalArgumentException("need one input and one target scale per layer (" + config.layers() + ")");
        }
        for (double s : concat(inputScales, targetScales)) {
            if (!(s > 0) || !Double.isFinite(s)) {
                throw new IllegalArgumentException("normalization scale " + s + " must be a positive finite number");
            }
        }
        givenInputScales = inputScales.clone();
        givenTargetScales = targetScales.clone();
        return this;
    }

    /**
     * The per-layer scales sqrt(d) / mean ||v|| from an activation cache's manifest statistics,
     * for {@link #normalizationScales}: {inputScales, targetScales} for the interleaved hooks
     * {@code [in_0, out_0, in_1, out_1, ...]}.
     */
    public static double[][] scalesFromManifest(activations.table.ActivationManifest manifest, List<String> interleavedHooks) {
        if (interleavedHooks.size() % 2 != 0) {
            throw new IllegalArgumentException("hooks must come in [in, out] pairs per layer, got " + interleavedHooks.size());
        }
        int layers = interleavedHooks.size() / 2;
        double[][] scales = new double[2][layers];
        for (int h = 0; h < interleavedHooks.size(); h++) {
            String hook = interleavedHooks.get(h);
            activations.table.HookStatistics stats = manifest.statistics() == null ? null : manifest.statistics().get(hook);
            if (stats == null || !(stats.meanNorm() > 0)) {
                throw new IllegalArgumentException("the cache manifest has no norm statistics for " + hook
                        + "; let the trainer estimate the scales from the first batches instead");
            }
            scales[h % 2][h / 2] = Math.sqrt(stats.dim()) / stats.meanNorm();
        }
        return scales;
    }

    public Result train(ActivationSource source) {
        int layers = config.layers();
        int d = config.dModel();
        int features = config.featuresPerLayer();
        checkSource(source);
        Optional<Path> checkpoint = RunFiles.prepareOutput(output, resume);
        int batchSize = config.batchSize();
        long totalSteps = config.totalSteps();
        CltStep stepper = new CltStep(config);
        CrossLayerTranscoder clt = stepper.clt();
        AdamOptimizer adam = stepper.adam();
        FeatureStatistics stats = stepper.stats();

        INDArray[] x = new INDArray[layers];
        INDArray[] y = new INDArray[layers];
        FloatBuffer[] destinations = new FloatBuffer[2 * layers];
        for (int l = 0; l < layers; l++) {
            x[l] = Nd4j.create(DataType.FLOAT, batchSize, d);
            y[l] = Nd4j.create(DataType.FLOAT, batchSize, d);
            destinations[2 * l] = x[l].data().asNio().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
            destinations[2 * l + 1] = y[l].data().asNio().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        }

        long step;
        long tokens;
        double[] inScale;
        double[] outScale;
        if (checkpoint.isPresent()) {
            RunFiles.checkSameConfig(Checkpoints.readState(checkpoint.get()).config, config, checkpoint.get());
            Checkpoints.TrainerState saved = stepper.restoreFrom(checkpoint.get());
            step = saved.step;
            tokens = saved.tokens;
            double[] scales = saved.normalizationScales;
            inScale = Arrays.copyOfRange(scales, 0, layers);
            outScale = Arrays.copyOfRange(scales, layers, 2 * layers);
            long skip = saved.dataPosition - source.position();
            if (skip < 0) {
                throw new IllegalStateException("the activation source is already past the checkpoint's data position "
                        + saved.dataPosition + "; resume with a freshly opened source");
            }
            source.skip(skip);
            RunFiles.truncateMetrics(output, step);
        } else {
            if (givenInputScales != null) {
                inScale = givenInputScales.clone();
                outScale = givenTargetScales.clone();
            } else {
                double[][] scales = estimateScales(source, destinations, x, y);
                inScale = scales[0];
                outScale = scales[1];
            }
            clt.initialize(config.seed());
            step = 0;
            tokens = 0;
            RunFiles.resetMetrics(output);
        }

        Interval interval = new Interval(layers);
        long lastCheckpointStep = step;
        try (BufferedWriter metrics = Files.newBufferedWriter(output.resolve("metrics.jsonl"), StandardCharsets.UTF_8,
                StandardOpenOption.CREATE, StandardOpenOption.APPEND)) {
            while (step < totalSteps) {
                long batchStart = source.position();
                if (!RunFiles.fill(source, destinations, batchSize)) {
                    break; // activations ended: finish with what was trained
                }
                for (int l = 0; l < layers; l++) {
                    x[l].muli(inScale[l]);
                    y[l].muli(outScale[l]);
                    checkFinite(x[l], destinations[2 * l], 2 * l, source, step, batchStart);
                    checkFinite(y[l], destinations[2 * l + 1], 2 * l + 1, source, step, batchStart);
                }
                double lambda = stepper.lambdaAt(step);
                CrossLayerTranscoder.LossParts parts = stepper.gradients(x, y, step);
                stepper.update(step, stepper.lastFireCounts(), batchSize);
                for (Listener listener : listeners) {
                    listener.onStep(step, clt, adam);
                }
                tokens += batchSize;
                step++;
                interval.add(parts);
                if (step % config.metricsEverySteps() == 0 || step == totalSteps) {
                    Metrics m = interval.metrics(step, totalSteps, tokens, CltStep.nmse(clt, y), deadByLayer(stats),
                            stats.takeDenseFraction(), adam.learningRate((int) step - 1), lambda, batchSize);
                    metrics.write(JSON.writeValueAsString(m));
                    metrics.newLine();
                    metrics.flush();
                    listeners.forEach(l -> l.onMetrics(m));
                    interval = new Interval(layers);
                }
                if (config.checkpointEverySteps() > 0 && step % config.checkpointEverySteps() == 0) {
                    writeCheckpoint(stepper, step, tokens, source.position(), inScale, outScale);
                    lastCheckpointStep = step;
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write metrics in " + output + ": " + e.getMessage(), e);
        }
        if (lastCheckpointStep != step) {
            writeCheckpoint(stepper, step, tokens, source.position(), inScale, outScale);
        }
        return new Result(clt, inScale, outScale, step, tokens, stats.featureDensity());
    }

    // ---- data ----

    private void checkSource(ActivationSource source) {
        int layers = config.layers();
        int[] dims = source.dims();
        List<String> hooks = source.hooks();
        if (dims.length != 2 * layers) {
            throw new IllegalArgumentException("a CLT over " + layers + " layers reads " + 2 * layers
                    + " hooks [in_0, out_0, in_1, out_1, ...], but the activation source has " + dims.length + " (" + hooks + ")");
        }
        for (int h = 0; h < dims.length; h++) {
            if (dims[h] != config.dModel()) {
                throw new IllegalArgumentException("hook " + hooks.get(h) + " has width " + dims[h] + " but the CLT's d_model is "
                        + config.dModel() + "; set d_model to the hook width");
            }
            Matcher m = LAYER.matcher(hooks.get(h));
            if (m.lookingAt() && Integer.parseInt(m.group(1)) != h / 2 + firstLayer(hooks)) {
                throw new IllegalArgumentException("hook " + h + " is " + hooks.get(h) + " but the CLT expects the pairs in layer order"
                        + " [in_0, out_0, in_1, out_1, ...]; open the cache with the hooks interleaved by layer");
            }
        }
    }

    private static int firstLayer(List<String> hooks) {
        Matcher m = LAYER.matcher(hooks.get(0));
        return m.lookingAt() ? Integer.parseInt(m.group(1)) : 0;
    }

    /** sqrt(d) / mean ||v|| per layer and side over the first normalization batches. */
    private double[][] estimateScales(ActivationSource source, FloatBuffer[] destinations, INDArray[] x, INDArray[] y) {
        int layers = config.layers();
        double[] inNorms = new double[layers];
        double[] outNorms = new double[layers];
        int batches = 0;
        for (int b = 0; b < config.normalizationBatches(); b++) {
            long start = source.position();
            if (!RunFiles.fill(source, destinations, config.batchSize())) {
                break;
            }
            for (int l = 0; l < layers; l++) {
                checkFinite(x[l], destinations[2 * l], 2 * l, source, -1, start);
                checkFinite(y[l], destinations[2 * l + 1], 2 * l + 1, source, -1, start);
                inNorms[l] += x[l].norm2(1).meanNumber().doubleValue();
                outNorms[l] += y[l].norm2(1).meanNumber().doubleValue();
            }
            batches++;
        }
        if (batches == 0) {
            throw new IllegalStateException("the activation source holds less than one batch of " + config.batchSize()
                    + " rows; lower the batch size or cache more tokens");
        }
        double[][] scales = new double[2][layers];
        for (int l = 0; l < layers; l++) {
            for (int side = 0; side < 2; side++) {
                double mean = (side == 0 ? inNorms[l] : outNorms[l]) / batches;
                if (!(mean > 0)) {
                    throw new IllegalStateException("hook " + source.hooks().get(2 * l + side) + " is all zero in the first batches;"
                            + " cannot estimate its normalization scale (check the hook, or pass the scales)");
                }
                scales[side][l] = Math.sqrt(config.dModel()) / mean;
            }
        }
        return scales;
    }

    private void checkFinite(INDArray batch, FloatBuffer floats, int hook, ActivationSource source, long step, long firstRow) {
        if (Double.isFinite(batch.sumNumber().doubleValue())) {
            return;
        }
        int d = config.dModel();
        for (int r = 0; r < config.batchSize(); r++) {
            for (int j = 0; j < d; j++) {
                float v = floats.get(r * d + j);
                if (!Float.isFinite(v)) {
                    throw new IllegalStateException("activation row " + (firstRow + r) + " of hook " + source.hooks().get(hook)
                            + " (step " + (step < 0 ? "before training" : step) + ", column " + j + ") is " + v
                            + "; the cache is corrupt or the model overflowed there. Rebuild that part of the activation cache; the last checkpoint is kept");
                }
            }
        }
        throw new IllegalStateException("activations at step " + step + " are too large to sum in fp32; pass normalization scales");
    }

    private double[] deadByLayer(FeatureStatistics stats) {
        boolean[] dead = stats.deadMask();
        int features = config.featuresPerLayer();
        double[] out = new double[config.layers()];
        for (int k = 0; k < dead.length; k++) {
            out[k / features] += dead[k] ? 1.0 / features : 0;
        }
        return out;
    }

    // ---- checkpoints ----

    private void writeCheckpoint(CltStep stepper, long step, long tokens, long dataPosition, double[] inScale,
                                 double[] outScale) {
        Checkpoints.TrainerState state = stepper.capture(step, tokens, dataPosition);
        state.normalizationScales = concat(inScale, outScale);
        state.config = RunFiles.configMap(config);
        stepper.checkpoint(output, state);
        listeners.forEach(l -> l.onCheckpoint(step, Checkpoints.latest(output).orElse(null)));
    }

    private static double[] concat(double[] a, double[] b) {
        double[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    // ---- metrics file ----

    private static final class Interval {
        private final long startNanos = System.nanoTime();
        private final double[] l0;
        private int steps;
        private double loss;
        private double mse;
        private double sparsity;
        private double preActivation;

        Interval(int layers) {
            l0 = new double[layers];
        }

        void add(CrossLayerTranscoder.LossParts parts) {
            steps++;
            loss += parts.total();
            mse += parts.mse();
            sparsity += parts.sparsity();
            preActivation += parts.preActivation();
            for (int l = 0; l < l0.length; l++) {
                l0[l] += parts.l0ByLayer()[l];
            }
        }

        Metrics metrics(long step, long totalSteps, long tokens, double[] nmse, double[] dead, double dense, double lr,
                        double lambda, int batchSize) {
            double seconds = (System.nanoTime() - startNanos) / 1e9;
            double[] meanL0 = l0.clone();
            for (int l = 0; l < meanL0.length; l++) {
                meanL0[l] /= steps;
            }
            return new Metrics(step, totalSteps, tokens, loss / steps, mse / steps, sparsity / steps, preActivation / steps,
                    nmse, meanL0, dead, dense, lr, lambda, seconds > 0 ? steps * (double) batchSize / seconds : 0);
        }
    }
}
