package training.trainer;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.schedule.ISchedule;
import training.optim.AdamOptimizer;
import training.optim.GradientClipping;
import training.optim.Schedules;
import training.sae.SaeConfig;
import training.sae.SparseAutoencoder;

/**
 * One SAE with its optimizer and feature statistics, advanced one optimizer step at a time: the
 * arithmetic that {@link SaeTrainer}'s loop and data-parallel replicas share. A step is split in
 * two so replicas can average gradients before the update: {@link #gradients} (forward and
 * backward on a normalized batch) and {@link #update} (clip, Adam, firing statistics).
 */
public final class SaeStep implements DictionaryStep {

    private final SaeConfig config;
    private final SparseAutoencoder sae;
    private final AdamOptimizer adam;
    private final ISchedule lambdaSchedule;
    private final FeatureStatistics stats;
    private final boolean needsDeadMask;

    public SaeStep(SaeConfig config) {
        this.config = config.validated();
        this.sae = SparseAutoencoder.create(config, DataType.FLOAT);
        ISchedule lrSchedule = Schedules.learningRate(config.learningRate(), config.lrWarmupSteps(), config.totalSteps(),
                config.lrDecayFraction());
        this.lambdaSchedule = Schedules.sparsityCoefficient(config.sparsityCoefficient(), config.sparsityWarmupSteps());
        this.adam = new AdamOptimizer(sae.parameters().length(), lrSchedule, config.beta1(), config.beta2(),
                config.adamEpsilon(), DataType.FLOAT);
        this.stats = new FeatureStatistics(config.dSae(), config.deadWindowTokens(), config.denseThreshold());
        this.needsDeadMask = config.usesAuxK()
                || (config.architecture() == SaeConfig.Architecture.JUMPRELU && config.preActLossCoefficient() > 0);
    }

    public SaeConfig config() {
        return config;
    }

    public SparseAutoencoder sae() {
        return sae;
    }

    @Override
    public INDArray parameters() {
        return sae.parameters();
    }

    @Override
    public INDArray gradients() {
        return sae.gradients();
    }

    /** Batches: the input, and for a transcoder its target. */
    @Override
    public StepLoss gradients(INDArray[] batches, long step) {
        INDArray target = batches.length > 1 ? batches[1] : null;
        SparseAutoencoder.LossParts parts = gradients(batches[0], target, step);
        return new StepLoss(parts.total(), parts.mse(), parts.sparsity(), parts.auxiliary(), parts.l0(),
                fvu(target == null ? batches[0] : target, sae.lastReconstruction()));
    }

    @Override
    public double[] lastFireCounts() {
        return sae.lastFireCounts().toDoubleVector();
    }

    @Override
    public double[] trainingState() {
        return sae.trainingState();
    }

    @Override
    public void restoreTrainingState(double[] state) {
        sae.restoreTrainingState(state);
    }

    @Override
    public Checkpoints.TrainerState capture(long step, long tokens, long dataPosition) {
        return capture(step, tokens, dataPosition, 0, 0);
    }

    @Override
    public AdamOptimizer adam() {
        return adam;
    }

    @Override
    public FeatureStatistics stats() {
        return stats;
    }

    @Override
    public double lambdaAt(long step) {
        return lambdaSchedule.valueAt((int) step, 0);
    }

    /** Forward and backward on a normalized batch; the gradients stay in {@code sae().gradients()}. */
    public SparseAutoencoder.LossParts gradients(INDArray batch, long step) {
        return gradients(batch, null, step);
    }

    /** As {@link #gradients(INDArray, long)}; a transcoder's normalized {@code target} (null: an autoencoder). */
    public SparseAutoencoder.LossParts gradients(INDArray batch, INDArray target, long step) {
        sae.setSparsityCoefficient(lambdaAt(step));
        if (needsDeadMask) {
            sae.setDeadFeatures(stats.deadMask());
        }
        SparseAutoencoder.LossParts parts = target == null ? sae.forwardBackward(batch) : sae.forwardBackward(batch, target);
        if (!Double.isFinite(parts.total())) {
            throw new IllegalStateException("loss became " + parts.total() + " at step " + step
                    + " (activations were finite); lower the learning rate or raise the gradient clipping, and resume from the last checkpoint");
        }
        return parts;
    }

    /** Clips the gradients in {@code sae().gradients()}, applies Adam and records which features fired. */
    @Override
    public void update(long step, double[] fireCounts, int rows) {
        GradientClipping.clipGlobalNorm(sae.gradients(), config.gradClipNorm());
        if (config.architecture() == SaeConfig.Architecture.JUMPRELU) {
            // Log-thresholds (the parameters after the shared ones) at their own rate.
            adam.step(sae.parameters(), sae.gradients(), (int) step, sae.sharedParameterCount(),
                    config.effectiveThresholdLearningRate() / config.learningRate());
        } else {
            adam.step(sae.parameters(), sae.gradients(), (int) step);
        }
        stats.update(fireCounts, rows);
    }

    /** A whole step on one batch. */
    public SparseAutoencoder.LossParts run(INDArray batch, long step) {
        return run(batch, null, step);
    }

    /** A whole step on one batch; {@code target} as in {@link #gradients(INDArray, INDArray, long)}. */
    public SparseAutoencoder.LossParts run(INDArray batch, INDArray target, long step) {
        SparseAutoencoder.LossParts parts = gradients(batch, target, step);
        update(step, sae.lastFireCounts().toDoubleVector(), (int) batch.rows());
        return parts;
    }

    /** Everything a checkpoint or a replica needs to continue exactly from here. */
    public Checkpoints.TrainerState capture(long step, long tokens, long dataPosition, double scale) {
        return capture(step, tokens, dataPosition, scale, 0);
    }

    /** As above, with a transcoder's target normalization scale. */
    public Checkpoints.TrainerState capture(long step, long tokens, long dataPosition, double scale, double targetScale) {
        Checkpoints.TrainerState state = new Checkpoints.TrainerState();
        state.step = step;
        state.tokens = tokens;
        state.dataPosition = dataPosition;
        state.normalizationScale = scale;
        state.targetNormalizationScale = targetScale;
        state.seed = config.seed();
        state.architectureState = sae.trainingState();
        state.tokensSinceFired = stats.tokensSinceFired.clone();
        state.intervalCounts = stats.intervalCounts.clone();
        state.intervalTokens = stats.intervalTokens;
        state.windowCounts = stats.windowCounts.clone();
        state.windowTokens = stats.windowTokens;
        state.lastWindowDensity = stats.lastWindowDensity == null ? null : stats.lastWindowDensity.clone();
        return state;
    }

    /** Restores parameters, optimizer moments, architecture state and statistics. */
    @Override
    public void restore(Checkpoints.TrainerState state, float[] parameters, float[] adamState) {
        sae.parameters().assign(Nd4j.createFromArray(parameters).reshape(sae.parameters().shape()));
        adam.restoreState(Nd4j.createFromArray(adamState));
        sae.restoreTrainingState(state.architectureState);
        stats.tokensSinceFired = state.tokensSinceFired.clone();
        stats.intervalCounts = state.intervalCounts.clone();
        stats.intervalTokens = state.intervalTokens;
        stats.windowCounts = state.windowCounts.clone();
        stats.windowTokens = state.windowTokens;
        stats.lastWindowDensity = state.lastWindowDensity == null ? null : state.lastWindowDensity.clone();
    }

    /** Fraction of variance unexplained of a batch and its reconstruction. */
    public static double fvu(INDArray x, INDArray reconstruction) {
        double residual = x.squaredDistance(reconstruction);
        INDArray centered = x.subRowVector(x.mean(0));
        double variance = centered.norm2Number().doubleValue();
        return variance > 0 ? residual / (variance * variance) : Double.NaN;
    }
}
