package training.clt;

/**
 * Everything that defines one cross-layer transcoder (CLT) training run (REFERENCE section 3):
 * {@code layers} MLP layers of width {@code dModel} (input width = target width), {@code featuresPerLayer}
 * JumpReLU features per layer, Anthropic's tanh sparsity penalty
 * {@code lambda sum tanh(c a ||W_dec,concat||)} warmed up from 0, the pre-activation loss on dead
 * features, Adam with lr warmup and a linear decay over the last fraction of the run, and the
 * bookkeeping cadence. Build with {@link #builder(int, int, int)}; {@link Builder#build()} validates
 * with one-line errors.
 *
 * <p>Units: token counts are rows; step counts are optimizer steps of {@code batchSize} tokens.
 */
public record CltConfig(
        int layers,
        int dModel,
        int featuresPerLayer,
        double thresholdInit,
        double bandwidth,
        double sparsityCoefficient,
        int sparsityWarmupSteps,
        double tanhScale,
        double preActLossCoefficient,
        double learningRate,
        double beta1,
        double beta2,
        double adamEpsilon,
        int lrWarmupSteps,
        double lrDecayFraction,
        double gradClipNorm,
        int batchSize,
        long totalTokens,
        long seed,
        long deadWindowTokens,
        double denseThreshold,
        int metricsEverySteps,
        int checkpointEverySteps,
        int normalizationBatches) implements java.io.Serializable {

    public static Builder builder(int layers, int dModel, int featuresPerLayer) {
        return new Builder(layers, dModel, featuresPerLayer);
    }

    public Builder toBuilder() {
        return new Builder(this);
    }

    public CltConfig validated() {
        require(layers >= 1, "CLT layers is " + layers + "; it must be the number of MLP layers covered (>= 1)");
        require(dModel >= 1, "CLT d_model is " + dModel + "; it must be the hook width (>= 1)");
        require(featuresPerLayer >= 1, "CLT features per layer is " + featuresPerLayer + "; it must be >= 1");
        require(thresholdInit > 0, "CLT threshold init is " + thresholdInit + "; it must be > 0 (stored as a log)");
        require(bandwidth > 0, "CLT JumpReLU bandwidth is " + bandwidth + "; it must be > 0");
        require(sparsityCoefficient >= 0 && Double.isFinite(sparsityCoefficient),
                "CLT sparsity coefficient is " + sparsityCoefficient + "; it must be a finite number >= 0");
        require(sparsityWarmupSteps >= 0, "CLT sparsity warmup steps is " + sparsityWarmupSteps + "; it must be >= 0");
        require(tanhScale > 0, "CLT tanh scale c is " + tanhScale + "; it must be > 0 (Anthropic uses 4)");
        require(preActLossCoefficient >= 0, "CLT pre-activation loss coefficient is " + preActLossCoefficient + "; it must be >= 0");
        require(learningRate > 0 && Double.isFinite(learningRate), "CLT learning rate is " + learningRate + "; it must be > 0");
        require(beta1 >= 0 && beta1 < 1, "Adam beta1 is " + beta1 + "; it must be in [0, 1)");
        require(beta2 > 0 && beta2 < 1, "Adam beta2 is " + beta2 + "; it must be in (0, 1)");
        require(adamEpsilon > 0, "Adam epsilon is " + adamEpsilon + "; it must be > 0");
        require(lrWarmupSteps >= 0, "lr warmup steps is " + lrWarmupSteps + "; it must be >= 0");
        require(lrDecayFraction >= 0 && lrDecayFraction <= 1, "lr decay fraction is " + lrDecayFraction + "; it must be in [0, 1]");
        require(gradClipNorm >= 0, "gradient clip norm is " + gradClipNorm + "; use 0 to disable clipping or a positive norm");
        require(batchSize >= 1, "batch size is " + batchSize + "; it must be >= 1");
        require(totalTokens >= batchSize, "total tokens " + totalTokens + " is less than one batch of " + batchSize
                + "; raise total tokens or lower the batch size");
        require(deadWindowTokens >= 1, "dead-feature window is " + deadWindowTokens + " tokens; it must be >= 1");
        require(denseThreshold > 0 && denseThreshold <= 1, "dense threshold is " + denseThreshold + "; it must be in (0, 1]");
        require(metricsEverySteps >= 1, "metrics interval is " + metricsEverySteps + " steps; it must be >= 1");
        require(checkpointEverySteps >= 0, "checkpoint interval is " + checkpointEverySteps + " steps; use 0 to disable or a positive count");
        require(normalizationBatches >= 1, "normalization batches is " + normalizationBatches + "; it must be >= 1");
        return this;
    }

    /** Optimizer steps in the run: whole batches only. */
    public long totalSteps() {
        return totalTokens / batchSize;
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    /** Mutable builder with defaults; {@link #build()} validates. */
    public static final class Builder {
        private int layers;
        private int dModel;
        private int featuresPerLayer;
        private double thresholdInit = 0.03;
        private double bandwidth = 0.05;
        private double sparsityCoefficient = 1e-3;
        private int sparsityWarmupSteps = 0;
        private double tanhScale = 4.0;
        private double preActLossCoefficient = 3e-6;
        private double learningRate = 3e-4;
        private double beta1 = 0.9;
        private double beta2 = 0.999;
        private double adamEpsilon = 1e-8;
        private int lrWarmupSteps = 0;
        private double lrDecayFraction = 0.2;
        private double gradClipNorm = 1.0;
        private int batchSize = 4096;
        private long totalTokens = 100_000_000L;
        private long seed = 42;
        private long deadWindowTokens = 10_000_000L;
        private double denseThreshold = 0.1;
        private int metricsEverySteps = 100;
        private int checkpointEverySteps = 1000;
        private int normalizationBatches = 8;

        private Builder(int layers, int dModel, int featuresPerLayer) {
            this.layers = layers;
            this.dModel = dModel;
            this.featuresPerLayer = featuresPerLayer;
        }

        private Builder(CltConfig c) {
            layers = c.layers; dModel = c.dModel; featuresPerLayer = c.featuresPerLayer; thresholdInit = c.thresholdInit;
            bandwidth = c.bandwidth; sparsityCoefficient = c.sparsityCoefficient; sparsityWarmupSteps = c.sparsityWarmupSteps;
            tanhScale = c.tanhScale; preActLossCoefficient = c.preActLossCoefficient; learningRate = c.learningRate;
            beta1 = c.beta1; beta2 = c.beta2; adamEpsilon = c.adamEpsilon; lrWarmupSteps = c.lrWarmupSteps;
            lrDecayFraction = c.lrDecayFraction; gradClipNorm = c.gradClipNorm; batchSize = c.batchSize;
            totalTokens = c.totalTokens; seed = c.seed; deadWindowTokens = c.deadWindowTokens; denseThreshold = c.denseThreshold;
            metricsEverySteps = c.metricsEverySteps; checkpointEverySteps = c.checkpointEverySteps;
            normalizationBatches = c.normalizationBatches;
        }

        public Builder layers(int v) { layers = v; return this; }
        public Builder dModel(int v) { dModel = v; return this; }
        public Builder featuresPerLayer(int v) { featuresPerLayer = v; return this; }
        public Builder thresholdInit(double v) { thresholdInit = v; return this; }
        public Builder bandwidth(double v) { bandwidth = v; return this; }
        public Builder sparsityCoefficient(double v) { sparsityCoefficient = v; return this; }
        public Builder sparsityWarmupSteps(int v) { sparsityWarmupSteps = v; return this; }
        public Builder tanhScale(double v) { tanhScale = v; return this; }
        public Builder preActLossCoefficient(double v) { preActLossCoefficient = v; return this; }
        public Builder learningRate(double v) { learningRate = v; return this; }
        public Builder adamBetas(double b1, double b2) { beta1 = b1; beta2 = b2; return this; }
        public Builder adamEpsilon(double v) { adamEpsilon = v; return this; }
        public Builder lrWarmupSteps(int v) { lrWarmupSteps = v; return this; }
        public Builder lrDecayFraction(double v) { lrDecayFraction = v; return this; }
        /** 0 disables clipping. */
        public Builder gradClipNorm(double v) { gradClipNorm = v; return this; }
        public Builder batchSize(int v) { batchSize = v; return this; }
        public Builder totalTokens(long v) { totalTokens = v; return this; }
        public Builder seed(long v) { seed = v; return this; }
        public Builder deadWindowTokens(long v) { deadWindowTokens = v; return this; }
        public Builder denseThreshold(double v) { denseThreshold = v; return this; }
        public Builder metricsEverySteps(int v) { metricsEverySteps = v; return this; }
        /** 0 disables periodic checkpoints (the final one is still written). */
        public Builder checkpointEverySteps(int v) { checkpointEverySteps = v; return this; }
        /** Batches read at the start of a fresh run to estimate the per-layer scales (unless given to the trainer). */
        public Builder normalizationBatches(int v) { normalizationBatches = v; return this; }

        public CltConfig build() {
            return new CltConfig(layers, dModel, featuresPerLayer, thresholdInit, bandwidth, sparsityCoefficient,
                    sparsityWarmupSteps, tanhScale, preActLossCoefficient, learningRate, beta1, beta2, adamEpsilon,
                    lrWarmupSteps, lrDecayFraction, gradClipNorm, batchSize, totalTokens, seed, deadWindowTokens,
                    denseThreshold, metricsEverySteps, checkpointEverySteps, normalizationBatches).validated();
        }
    }
}
