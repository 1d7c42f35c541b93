package jobs.train;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import jobs.config.Settings;
import training.sae.SaeConfig;

import java.io.Serializable;

/**
 * One SAE run's settings as HOCON keys (the defaults and their meaning are in conf/reference.conf,
 * section {@code spindle.sae}), turned into a {@link SaeConfig} once the hook's width is known.
 * Kept as a resolved key/value map so it travels to Spark tasks and is written back out as the
 * run's {@code train_config.conf}.
 */
public final class SaeSettings implements Serializable {

    static final String SECTION = "spindle.sae";

    /** The reference defaults, from conf/reference.conf on the classpath. */
    public static Config defaults() {
        return Settings.defaults(SECTION);
    }

    private final Settings settings;

    private SaeSettings(Settings settings) {
        this.settings = settings;
    }

    /** {@code overrides} (keys as in reference.conf) on top of the defaults; unknown keys fail with a suggestion. */
    public static SaeSettings of(Config overrides, String where) {
        SaeSettings sae = new SaeSettings(Settings.of(SECTION, overrides, where));
        sae.toConfig(1); // type-check every value now, before any work starts
        return sae;
    }

    public Config asConfig() {
        return settings.asConfig();
    }

    public int mixingBuffer() {
        return settings.mixingBuffer();
    }

    public int epochs() {
        return settings.epochs();
    }

    public long seed() {
        return settings.seed();
    }

    public boolean skipConnection() {
        return asConfig().getBoolean("skip-connection");
    }

    /** The run's SaeConfig for activations of width {@code dIn}. */
    public SaeConfig toConfig(int dIn) {
        Config c = asConfig();
        try {
            return SaeConfig.builder(SaeConfig.Architecture.parse(c.getString("architecture")), dIn, c.getInt("d-sae"))
                    .k(c.getInt("k"))
                    .sparsityCoefficient(c.getDouble("sparsity-coeff"))
                    .jumpReluSparsity(Settings.parseEnum(SaeConfig.JumpReluSparsity.class, c.getString("sparsity"), "sparsity"))
                    .tanhScale(c.getDouble("tanh-scale"))
                    .bandwidth(c.getDouble("bandwidth"))
                    .thresholdInit(c.getDouble("threshold-init"))
                    .preActLossCoefficient(c.getDouble("pre-act-coeff"))
                    .auxKCoefficient(c.getDouble("aux-k-coeff"))
                    .kAux(c.getInt("k-aux"))
                    .decoderInitNorm(c.getDouble("decoder-init-norm"))
                    .decoderBiasInit(Settings.parseEnum(SaeConfig.DecoderBiasInit.class, c.getString("decoder-bias-init"), "decoder-bias-init"))
                    .learningRate(learningRate(c.getDouble("lr"), c.getInt("d-sae")))
                    .adamBetas(c.getDouble("beta1"), c.getDouble("beta2"))
                    .lrWarmupSteps(c.getInt("lr-warmup-steps"))
                    .lrDecayFraction(c.getDouble("lr-decay-fraction"))
                    .sparsityWarmupSteps(c.getInt("sparsity-warmup-steps"))
                    .gradClipNorm(c.getDouble("grad-clip"))
                    .batchSize(c.getInt("batch-tokens"))
                    .totalTokens(c.getLong("tokens"))
                    .seed(c.getLong("seed"))
                    .deadWindowTokens(c.getLong("dead-window-tokens"))
                    .denseThreshold(c.getDouble("dense-threshold"))
                    .metricsEverySteps(c.getInt("metrics-every"))
                    .checkpointEverySteps(c.getInt("checkpoint-every"))
                    .normalizationBatches(c.getInt("normalization-batches"))
                    .targetL0(c.getDouble("target-l0"))
                    .thresholdLearningRate(c.getDouble("threshold-lr"))
                    .matryoshkaWidths(c.getIntList("matryoshka-widths"))
                    .build();
        } catch (ConfigException.WrongType e) {
            throw new IllegalArgumentException("wrong type in the SAE settings: " + e.getMessage());
        }
    }

    /**
     * {@code lr}, or for 0 the shared recipe's rule (REFERENCE section 2): 3e-4 at d_sae = 2^14, scaled
     * by 1/sqrt(d_sae / 2^14), so narrower dictionaries (fewer, more often updated latents) train faster.
     */
    static double learningRate(double lr, int dSae) {
        if (lr != 0) {
            return lr;
        }
        return 3e-4 / Math.sqrt(Math.max(dSae, 1) / 16384.0);
    }

    /** HOCON text of the settings, for train_config.conf. */
    public String render() {
        return settings.render();
    }
}
