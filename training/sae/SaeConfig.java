package training.sae;

import java.util.Locale;

/**
 * Everything that defines one SAE training run: the dictionary's architecture and shape, its
 * losses, the optimizer and schedules, the batch/token budget and the bookkeeping cadence.
 * Immutable; build with {@link #builder(Architecture, int, int)}, which fills in the published
 * defaults (REFERENCE section 2), and {@link Builder#build()} validates with one-line errors.
 *
 * <p>Transcoders: with {@code dOut > 0} the dictionary is a (per-layer) transcoder that reads an
 * input {@code x} of width d_in and predicts a different target {@code y} of width d_out
 * ({@code y_hat = f W_dec + b_dec}, plus {@code x W_skip} with {@code skipConnection}); the encoder
 * then does not subtract b_dec from its input. {@code dOut = 0} is an ordinary SAE (target = input).
 *
 * <p>Units: {@code deadWindowTokens} and {@code totalTokens} count tokens (rows); step counts are
 * optimizer steps of {@code batchSize} tokens.
 */
public record SaeConfig(
        Architecture architecture,
        int dIn,
        int dSae,
        int k,
        double sparsityCoefficient,
        JumpReluSparsity jumpReluSparsity,
        double tanhScale,
        double bandwidth,
        double thresholdInit,
        double preActLossCoefficient,
        double auxKCoefficient,
        int kAux,
        double decoderInitNorm,
        DecoderBiasInit decoderBiasInit,
        double learningRate,
        double beta1,
        double beta2,
        double adamEpsilon,
        int lrWarmupSteps,
        double lrDecayFraction,
        int sparsityWarmupSteps,
        double gradClipNorm,
        int batchSize,
        long totalTokens,
        long seed,
        long deadWindowTokens,
        double denseThreshold,
        int metricsEverySteps,
        int checkpointEverySteps,
        double normalizationScale,
        int normalizationBatches,
        int dOut,
        boolean skipConnection,
        double targetNormalizationScale,
        double targetL0,
        double thresholdLearningRate,
        java.util.List<Integer> matryoshkaWidths) implements java.io.Serializable {

    public enum Architecture {
        RELU, JUMPRELU, TOPK, BATCHTOPK, MATRYOSHKA, GATED;

        public static Architecture parse(String name) {
            try {
                String key = name.trim().toUpperCase(Locale.ROOT).replace("-", "").replace("_", "");
                return valueOf(key.equals("MATRYOSHKABATCHTOPK") ? "MATRYOSHKA" : key);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("unknown SAE architecture '" + name + "'; use relu, jumprelu, topk, batchtopk, matryoshka or gated");
            }
        }
    }

    /**
     * JumpReLU sparsity penalty: DeepMind's L0 count, Anthropic's tanh of decoder-weighted
     * activations, or the quadratic penalty on the gap to a target L0 (Gemma Scope 2, SAELens 6):
     * {@code lambda * (L0_batch / target - 1)^2}.
     */
    public enum JumpReluSparsity { L0, TANH, QUADRATIC }

    /** How b_dec starts: the data sample's mean, its geometric median, or zero. */
    public enum DecoderBiasInit { MEAN, GEOMETRIC_MEDIAN, ZERO }

    /**
     * Checks every field, throwing an IllegalArgumentException naming the first bad one. The
     * builder calls it; code that uses the canonical constructor directly should too.
     */
    public SaeConfig validated() {
        validate(this);
        return this;
    }

    public static Builder builder(Architecture architecture, int dIn, int dSae) {
        return new Builder(architecture, dIn, dSae);
    }

    public Builder toBuilder() {
        return new Builder(this);
    }

    /** Optimizer steps in the run: whole batches only. */
    public long totalSteps() {
        return totalTokens / batchSize;
    }

    /** True for a transcoder (target differs from the input), false for an autoencoder. */
    public boolean isTranscoder() {
        return dOut > 0;
    }

    /** Width of the target: d_out for a transcoder, d_in for an autoencoder. */
    public int targetWidth() {
        return dOut > 0 ? dOut : dIn;
    }

    /** k_aux with its default (d_in / 2) applied. */
    public int effectiveKAux() {
        return Math.min(kAux > 0 ? kAux : Math.max(1, dIn / 2), dSae);
    }

    public boolean usesAuxK() {
        return architecture == Architecture.TOPK || architecture == Architecture.BATCHTOPK || architecture == Architecture.MATRYOSHKA;
    }

    /** True for the architectures whose sparsity is a top-k (k latents per token, or on average). */
    public boolean usesK() {
        return usesAuxK();
    }

    /** Adam's learning rate for JumpReLU log-thresholds: {@code thresholdLearningRate}, or the lr when 0. */
    public double effectiveThresholdLearningRate() {
        return thresholdLearningRate > 0 ? thresholdLearningRate : THRESHOLD_LR_FACTOR * learningRate;
    }

    /**
     * Log-thresholds train at this multiple of the lr unless told otherwise. Adam moves a
     * log-threshold by at most about lr per step, i.e. by a factor e^lr, while an encoder row
     * starting at norm 0.1 grows by far more per step in relative terms: at the shared lr the
     * pre-activations outgrow thresholds that cannot follow (measured in docs/TRAINING.md).
     */
    public static final double THRESHOLD_LR_FACTOR = 10;

    /**
     * Matryoshka prefix widths, strictly increasing, ending at d_sae (appended when missing, as
     * SAELens does); empty lists give the default d_sae/16, d_sae/4, d_sae.
     */
    public int[] effectiveMatryoshkaWidths() {
        java.util.List<Integer> widths = new java.util.ArrayList<>(matryoshkaWidths == null ? java.util.List.of() : matryoshkaWidths);
        if (widths.isEmpty()) {
            for (int w : new int[] {dSae / 16, dSae / 4}) {
                if (w >= 1 && (widths.isEmpty() || w > widths.get(widths.size() - 1))) {
                    widths.add(w);
                }
            }
        }
        if (widths.isEmpty() || widths.get(widths.size() - 1) != dSae) {
            widths.add(dSae);
        }
        return widths.stream().mapToInt(Integer::intValue).toArray();
    }

    private static void validate(SaeConfig c) {
        require(c.architecture != null, "architecture is missing; use relu, jumprelu, topk or batchtopk");
        require(c.dIn >= 1, "d_in is " + c.dIn + "; it must be the activation width (>= 1)");
        require(c.dOut >= 0, "d_out is " + c.dOut + "; use 0 for an autoencoder or the target hook's width for a transcoder");
        require(!c.skipConnection || c.dOut > 0, "a skip connection needs a transcoder; set d_out to the target hook's width or disable the skip");
        require(c.targetNormalizationScale >= 0 && Double.isFinite(c.targetNormalizationScale),
                "target normalization scale is " + c.targetNormalizationScale + "; use 0 to estimate it or a positive factor");
        require(c.dSae >= 1, "d_sae is " + c.dSae + "; it must be >= 1 (typically 4-64 x d_in)");
        if (c.usesK()) {
            require(c.k >= 1, "k is " + c.k + "; " + c.architecture.name().toLowerCase(Locale.ROOT) + " needs k >= 1 active latents per token");
            require(c.k <= c.dSae, "k is " + c.k + " but d_sae is " + c.dSae + "; k must not exceed d_sae");
            require(c.kAux >= 0, "k_aux is " + c.kAux + "; use 0 for the default d_in/2 or a positive count");
            require(c.auxKCoefficient >= 0, "AuxK coefficient is " + c.auxKCoefficient + "; it must be >= 0");
        }
        require(c.sparsityCoefficient >= 0 && Double.isFinite(c.sparsityCoefficient),
                "sparsity coefficient is " + c.sparsityCoefficient + "; it must be a finite number >= 0");
        if (c.architecture == Architecture.JUMPRELU) {
            require(c.jumpReluSparsity != null, "jumprelu sparsity kind is missing; use l0 or tanh");
            require(c.bandwidth > 0, "jumprelu bandwidth is " + c.bandwidth + "; it must be > 0 (e.g. 0.05 on normalized inputs)");
            require(c.thresholdInit >= 0 && Double.isFinite(c.thresholdInit), "jumprelu threshold init is " + c.thresholdInit
                    + "; use 0 to initialize each threshold from the data or a positive constant (it is stored as a log)");
            require(c.thresholdLearningRate >= 0 && Double.isFinite(c.thresholdLearningRate), "threshold learning rate is "
                    + c.thresholdLearningRate + "; use 0 for the lr or a positive rate");
            require(c.thresholdInit > 0 || c.targetL0 > 0, "jumprelu thresholds initialized from the data (threshold-init = 0)"
                    + " need a positive target-l0: each starts at the quantile its feature exceeds on target-l0 / d_sae of tokens");
            require(c.jumpReluSparsity != JumpReluSparsity.QUADRATIC || c.targetL0 > 0,
                    "target L0 is " + c.targetL0 + "; the quadratic penalty needs a positive target-l0 (active latents per token)");
            require(c.targetL0 >= 0 && c.targetL0 <= c.dSae, "target L0 is " + c.targetL0 + " but d_sae is " + c.dSae
                    + "; it must be in [0, d_sae]");
            require(c.tanhScale > 0, "tanh scale c is " + c.tanhScale + "; it must be > 0 (Anthropic uses 4)");
            require(c.preActLossCoefficient >= 0, "pre-activation loss coefficient is " + c.preActLossCoefficient + "; it must be >= 0");
        }
        require(c.architecture != Architecture.GATED || c.dOut == 0,
                "a gated transcoder has no SAELens layout to export to; use relu, jumprelu, topk, batchtopk or matryoshka for transcoders");
        if (c.architecture == Architecture.MATRYOSHKA && c.matryoshkaWidths != null) {
            int previous = 0;
            for (int w : c.matryoshkaWidths) {
                require(w > previous && w <= c.dSae, "matryoshka widths " + c.matryoshkaWidths
                        + " must be strictly increasing, each in [1, d_sae = " + c.dSae + "]");
                previous = w;
            }
        }
        require(c.decoderInitNorm > 0, "decoder init norm is " + c.decoderInitNorm + "; it must be > 0 (0.1 is usual)");
        require(c.decoderBiasInit != null, "decoder bias init is missing; use mean, geometric_median or zero");
        require(c.learningRate > 0 && Double.isFinite(c.learningRate), "learning rate is " + c.learningRate + "; it must be > 0");
        require(c.beta1 >= 0 && c.beta1 < 1, "Adam beta1 is " + c.beta1 + "; it must be in [0, 1)");
        require(c.beta2 > 0 && c.beta2 < 1, "Adam beta2 is " + c.beta2 + "; it must be in (0, 1)");
        require(c.adamEpsilon > 0, "Adam epsilon is " + c.adamEpsilon + "; it must be > 0");
        require(c.lrWarmupSteps >= 0, "lr warmup steps is " + c.lrWarmupSteps + "; it must be >= 0");
        require(c.lrDecayFraction >= 0 && c.lrDecayFraction <= 1, "lr decay fraction is " + c.lrDecayFraction + "; it must be in [0, 1]");
        require(c.sparsityWarmupSteps >= 0, "sparsity warmup steps is " + c.sparsityWarmupSteps + "; it must be >= 0");
        require(c.gradClipNorm >= 0, "gradient clip norm is " + c.gradClipNorm + "; use 0 to disable clipping or a positive norm");
        require(c.batchSize >= 1, "batch size is " + c.batchSize + "; it must be >= 1 (about 4096 tokens is usual)");
        require(c.totalTokens >= c.batchSize, "total tokens " + c.totalTokens + " is less than one batch of " + c.batchSize
                + "; raise total tokens or lower the batch size");
        require(c.deadWindowTokens >= 1, "dead-feature window is " + c.deadWindowTokens + " tokens; it must be >= 1");
        require(c.denseThreshold > 0 && c.denseThreshold <= 1, "dense threshold is " + c.denseThreshold + "; it must be in (0, 1]");
        require(c.metricsEverySteps >= 1, "metrics interval is " + c.metricsEverySteps + " steps; it must be >= 1");
        require(c.checkpointEverySteps >= 0, "checkpoint interval is " + c.checkpointEverySteps + " steps; use 0 to disable or a positive count");
        require(c.normalizationScale >= 0 && Double.isFinite(c.normalizationScale),
                "normalization scale is " + c.normalizationScale + "; use 0 to estimate it or a positive factor");
        require(c.normalizationBatches >= 1, "normalization batches is " + c.normalizationBatches + "; it must be >= 1");
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    /** Mutable builder holding the defaults; {@link #build()} validates. */
    public static final class Builder {
        private Architecture architecture;
        private int dIn;
        private int dSae;
        private int k = 32;
        private double sparsityCoefficient = 1.0;
        private JumpReluSparsity jumpReluSparsity = JumpReluSparsity.L0;
        private double tanhScale = 4.0;
        private double bandwidth = 0.05;
        private double thresholdInit = 0.01;
        private double preActLossCoefficient = 3e-6;
        private double auxKCoefficient = 1.0 / 32;
        private int kAux = 0;
        private double decoderInitNorm = 0.1;
        private DecoderBiasInit decoderBiasInit = DecoderBiasInit.MEAN;
        private double learningRate = 3e-4;
        private double beta1 = 0.9;
        private double beta2 = 0.999;
        private double adamEpsilon = 1e-8;
        private int lrWarmupSteps = 0;
        private double lrDecayFraction = 0.2;
        private int sparsityWarmupSteps = 0;
        private double gradClipNorm = 1.0;
        private int batchSize = 4096;
        private long totalTokens = 100_000_000L;
        private long seed = 42;
        private long deadWindowTokens = 10_000_000L;
        private double denseThreshold = 0.1;
        private int metricsEverySteps = 100;
        private int checkpointEverySteps = 1000;
        private double normalizationScale = 0;
        private int normalizationBatches = 8;
        private int dOut = 0;
        private boolean skipConnection = false;
        private double targetNormalizationScale = 0;
        private double targetL0 = 0;
        private double thresholdLearningRate = 0;
        private java.util.List<Integer> matryoshkaWidths = java.util.List.of();

        private Builder(Architecture architecture, int dIn, int dSae) {
            this.architecture = architecture;
            this.dIn = dIn;
            this.dSae = dSae;
        }

        private Builder(SaeConfig c) {
            architecture = c.architecture; dIn = c.dIn; dSae = c.dSae; k = c.k;
            sparsityCoefficient = c.sparsityCoefficient; jumpReluSparsity = c.jumpReluSparsity; tanhScale = c.tanhScale;
            bandwidth = c.bandwidth; thresholdInit = c.thresholdInit; preActLossCoefficient = c.preActLossCoefficient;
            auxKCoefficient = c.auxKCoefficient; kAux = c.kAux; decoderInitNorm = c.decoderInitNorm;
            decoderBiasInit = c.decoderBiasInit; learningRate = c.learningRate; beta1 = c.beta1; beta2 = c.beta2;
            adamEpsilon = c.adamEpsilon; lrWarmupSteps = c.lrWarmupSteps; lrDecayFraction = c.lrDecayFraction;
            sparsityWarmupSteps = c.sparsityWarmupSteps; gradClipNorm = c.gradClipNorm; batchSize = c.batchSize;
            totalTokens = c.totalTokens; seed = c.seed; deadWindowTokens = c.deadWindowTokens;
            denseThreshold = c.denseThreshold; metricsEverySteps = c.metricsEverySteps;
            checkpointEverySteps = c.checkpointEverySteps; normalizationScale = c.normalizationScale;
            normalizationBatches = c.normalizationBatches; dOut = c.dOut; skipConnection = c.skipConnection;
            targetNormalizationScale = c.targetNormalizationScale;
            targetL0 = c.targetL0; thresholdLearningRate = c.thresholdLearningRate; matryoshkaWidths = c.matryoshkaWidths;
        }

        public Builder architecture(Architecture v) { architecture = v; return this; }
        public Builder dIn(int v) { dIn = v; return this; }
        public Builder dSae(int v) { dSae = v; return this; }
        public Builder k(int v) { k = v; return this; }
        public Builder sparsityCoefficient(double v) { sparsityCoefficient = v; return this; }
        public Builder jumpReluSparsity(JumpReluSparsity v) { jumpReluSparsity = v; return this; }
        public Builder tanhScale(double v) { tanhScale = v; return this; }
        public Builder bandwidth(double v) { bandwidth = v; return this; }
        public Builder thresholdInit(double v) { thresholdInit = v; return this; }
        public Builder preActLossCoefficient(double v) { preActLossCoefficient = v; return this; }
        public Builder auxKCoefficient(double v) { auxKCoefficient = v; return this; }
        /** 0 means d_in / 2. */
        public Builder kAux(int v) { kAux = v; return this; }
        public Builder decoderInitNorm(double v) { decoderInitNorm = v; return this; }
        public Builder decoderBiasInit(DecoderBiasInit v) { decoderBiasInit = v; return this; }
        public Builder learningRate(double v) { learningRate = v; return this; }
        public Builder adamBetas(double b1, double b2) { beta1 = b1; beta2 = b2; return this; }
        public Builder adamEpsilon(double v) { adamEpsilon = v; return this; }
        public Builder lrWarmupSteps(int v) { lrWarmupSteps = v; return this; }
        public Builder lrDecayFraction(double v) { lrDecayFraction = v; return this; }
        public Builder sparsityWarmupSteps(int v) { sparsityWarmupSteps = v; return this; }
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
        /** 0 means: estimate so that E||x|| = sqrt(d_in) from the first {@link #normalizationBatches} batches. */
        public Builder normalizationScale(double v) { normalizationScale = v; return this; }
        public Builder normalizationBatches(int v) { normalizationBatches = v; return this; }
        /** Target width of a transcoder; 0 (the default) makes an autoencoder. */
        public Builder dOut(int v) { dOut = v; return this; }
        /** Adds a linear skip path x W_skip (transcoders only; W_skip starts at 0). */
        public Builder skipConnection(boolean v) { skipConnection = v; return this; }
        /** 0 means: estimate so that E||y|| = sqrt(d_out) (transcoders). */
        public Builder targetNormalizationScale(double v) { targetNormalizationScale = v; return this; }
        /** JumpReLU quadratic penalty: the L0 (active latents per token) it aims at; also sets data-initialized thresholds. */
        public Builder targetL0(double v) { targetL0 = v; return this; }
        /** Adam lr of JumpReLU log-thresholds; 0 = {@link #THRESHOLD_LR_FACTOR} x the lr. */
        public Builder thresholdLearningRate(double v) { thresholdLearningRate = v; return this; }
        /** Matryoshka prefix widths; empty = d_sae/16, d_sae/4, d_sae. */
        public Builder matryoshkaWidths(java.util.List<Integer> v) { matryoshkaWidths = java.util.List.copyOf(v); return this; }

        public SaeConfig build() {
            return new SaeConfig(architecture, dIn, dSae, k, sparsityCoefficient, jumpReluSparsity, tanhScale, bandwidth,
                    thresholdInit, preActLossCoefficient, auxKCoefficient, kAux, decoderInitNorm, decoderBiasInit,
                    learningRate, beta1, beta2, adamEpsilon, lrWarmupSteps, lrDecayFraction, sparsityWarmupSteps,
                    gradClipNorm, batchSize, totalTokens, seed, deadWindowTokens, denseThreshold, metricsEverySteps,
                    checkpointEverySteps, normalizationScale, normalizationBatches, dOut, skipConnection,
                    targetNormalizationScale, targetL0, thresholdLearningRate, matryoshkaWidths).validated();
        }
    }
}
