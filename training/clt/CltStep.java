package training.clt;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.schedule.ISchedule;
import training.optim.AdamOptimizer;
import training.optim.GradientClipping;
import training.optim.Schedules;
import training.trainer.Checkpoints;
import training.trainer.DictionaryStep;
import training.trainer.FeatureStatistics;

/**
 * One cross-layer transcoder with its optimizer and feature statistics, advanced one step at a
 * time: shared by {@link CltTrainer}'s loop and data-parallel replicas. Hooks come interleaved,
 * [in_0, out_0, in_1, out_1, ...].
 */
public final class CltStep implements DictionaryStep {

    private final CltConfig config;
    private final CrossLayerTranscoder clt;
    private final AdamOptimizer adam;
    private final ISchedule lambdaSchedule;
    private final FeatureStatistics stats;

    public CltStep(CltConfig config) {
        this.config = config;
        this.clt = new CrossLayerTranscoder(config, DataType.FLOAT);
        ISchedule lrSchedule = Schedules.learningRate(config.learningRate(), config.lrWarmupSteps(), config.totalSteps(),
                config.lrDecayFraction());
        this.lambdaSchedule = Schedules.sparsityCoefficient(config.sparsityCoefficient(), config.sparsityWarmupSteps());
        this.adam = new AdamOptimizer(clt.parameters().length(), lrSchedule, config.beta1(), config.beta2(),
                config.adamEpsilon(), DataType.FLOAT);
        this.stats = new FeatureStatistics(config.layers() * config.featuresPerLayer(), config.deadWindowTokens(),
                config.denseThreshold());
    }

    public CrossLayerTranscoder clt() {
        return clt;
    }

    @Override
    public INDArray parameters() {
        return clt.parameters();
    }

    @Override
    public INDArray gradients() {
        return clt.gradients();
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

    /** Forward and backward on normalized inputs and targets per layer. */
    public CrossLayerTranscoder.LossParts gradients(INDArray[] x, INDArray[] y, long step) {
        clt.setSparsityCoefficient(lambdaAt(step));
        if (config.preActLossCoefficient() > 0) {
            clt.setDeadFeatures(stats.deadMask());
        }
        CrossLayerTranscoder.LossParts parts = clt.forwardBackward(x, y);
        if (!Double.isFinite(parts.total())) {
            throw new IllegalStateException("loss became " + parts.total() + " at step " + step
                    + " (activations were finite); lower the learning rate or raise the gradient clipping, and resume from the last checkpoint");
        }
        return parts;
    }

    @Override
    public StepLoss gradients(INDArray[] batches, long step) {
        int layers = config.layers();
        INDArray[] x = new INDArray[layers];
        INDArray[] y = new INDArray[layers];
        for (int l = 0; l < layers; l++) {
            x[l] = batches[2 * l];
            y[l] = batches[2 * l + 1];
        }
        CrossLayerTranscoder.LossParts parts = gradients(x, y, step);
        double meanNmse = 0;
        for (double v : nmse(clt, y)) {
            meanNmse += v / layers;
        }
        return new StepLoss(parts.total(), parts.mse(), parts.sparsity(), parts.preActivation(), parts.l0(), meanNmse);
    }

    @Override
    public void update(long step, double[] fireCounts, int rows) {
        GradientClipping.clipGlobalNorm(clt.gradients(), config.gradClipNorm());
        adam.step(clt.parameters(), clt.gradients(), (int) step);
        stats.update(fireCounts, rows);
    }

    @Override
    public double[] lastFireCounts() {
        return clt.lastFireCounts().toDoubleVector();
    }

    @Override
    public double[] trainingState() {
        return new double[0]; // thresholds live in the parameters; nothing else to carry
    }

    @Override
    public void restoreTrainingState(double[] state) {
        // nothing beyond the parameters
    }

    @Override
    public Checkpoints.TrainerState capture(long step, long tokens, long dataPosition) {
        Checkpoints.TrainerState state = new Checkpoints.TrainerState();
        state.step = step;
        state.tokens = tokens;
        state.dataPosition = dataPosition;
        state.seed = config.seed();
        state.architectureState = new double[0];
        FeatureStatistics.State s = stats.state();
        state.tokensSinceFired = s.tokensSinceFired();
        state.intervalCounts = s.intervalCounts();
        state.intervalTokens = s.intervalTokens();
        state.windowCounts = s.windowCounts();
        state.windowTokens = s.windowTokens();
        state.lastWindowDensity = s.lastWindowDensity();
        return state;
    }

    @Override
    public void restore(Checkpoints.TrainerState state, float[] parameters, float[] adamState) {
        clt.parameters().assign(Nd4j.createFromArray(parameters).reshape(clt.parameters().shape()));
        adam.restoreState(Nd4j.createFromArray(adamState));
        restoreStatistics(state);
    }

    /** Resumes from a checkpoint directory (sharded or not), reading the arrays in place. */
    public Checkpoints.TrainerState restoreFrom(java.nio.file.Path checkpoint) {
        Checkpoints.TrainerState state = Checkpoints.readInto(checkpoint, clt.parameters(), adam.state());
        restoreStatistics(state);
        return state;
    }

    /** Writes this step's state as a checkpoint sharded per layer (see {@link CrossLayerTranscoder#checkpointSegments}). */
    public void checkpoint(java.nio.file.Path output, Checkpoints.TrainerState state) {
        Checkpoints.writeSharded(output, state, clt.parameters(), adam.state(), clt.checkpointSegments());
    }

    private void restoreStatistics(Checkpoints.TrainerState state) {
        stats.restore(new FeatureStatistics.State(state.tokensSinceFired, state.intervalCounts, state.intervalTokens,
                state.windowCounts, state.windowTokens, state.lastWindowDensity));
    }

    /** Per-layer MSE / target variance on the last batch (normalized units; the ratio is scale-free). */
    static double[] nmse(CrossLayerTranscoder clt, INDArray[] y) {
        double[] out = new double[y.length];
        for (int l = 0; l < y.length; l++) {
            double residual = y[l].squaredDistance(clt.lastPrediction(l));
            double variance = y[l].subRowVector(y[l].mean(0)).norm2Number().doubleValue();
            out[l] = variance > 0 ? residual / (variance * variance) : Double.NaN;
        }
        return out;
    }
}
