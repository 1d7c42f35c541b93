package jobs.train;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import jobs.config.ConfigKeys;
import training.sae.SaeConfig;

import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * One SAE run's settings as HOCON keys (the defaults and their meaning are in conf/reference.conf,
 * section {@code spindle.sae}), turned into a {@link SaeConfig} once the hook's width is known.
 * Kept as a resolved key/value map so it travels to Spark tasks and is written back out as the
 * run's {@code train_config.conf}.
 */
public final class SaeSettings implements Serializable {

    /** The reference defaults, from conf/reference.conf on the classpath. */
    public static Config defaults() {
        return ConfigFactory.defaultReference().getConfig("spindle.sae");
    }

    private final Map<String, Object> values;

    private SaeSettings(Map<String, Object> values) {
        this.values = values;
    }

    /** {@code overrides} (keys as in reference.conf) on top of the defaults; unknown keys fail with a suggestion. */
    public static SaeSettings of(Config overrides, String where) {
        Config defaults = defaults();
        ConfigKeys.check(overrides, defaults.root().keySet(), where);
        Config resolved = overrides.withFallback(defaults).resolve();
        Map<String, Object> values = new LinkedHashMap<>();
        for (String key : defaults.root().keySet()) {
            values.put(key, resolved.getValue(key).unwrapped());
        }
        SaeSettings settings = new SaeSettings(values);
        settings.toConfig(1); // type-check every value now, before any work starts
        return settings;
    }

    public Config asConfig() {
        return ConfigFactory.parseMap(values);
    }

    public int mixingBuffer() {
        return intValue("mixing-buffer");
    }

    public int epochs() {
        return intValue("epochs");
    }

    public long seed() {
        return longValue("seed");
    }

    /** The run's SaeConfig for activations of width {@code dIn}. */
    public SaeConfig toConfig(int dIn) {
        Config c = asConfig();
        try {
            return SaeConfig.builder(SaeConfig.Architecture.parse(c.getString("architecture")), dIn, c.getInt("d-sae"))
                    .k(c.getInt("k"))
                    .sparsityCoefficient(c.getDouble("sparsity-coeff"))
                    .jumpReluSparsity(parseEnum(SaeConfig.JumpReluSparsity.class, c.getString("sparsity"), "sparsity"))
                    .tanhScale(c.getDouble("tanh-scale"))
                    .bandwidth(c.getDouble("bandwidth"))
                    .thresholdInit(c.getDouble("threshold-init"))
                    .preActLossCoefficient(c.getDouble("pre-act-coeff"))
                    .auxKCoefficient(c.getDouble("aux-k-coeff"))
                    .kAux(c.getInt("k-aux"))
                    .decoderInitNorm(c.getDouble("decoder-init-norm"))
                    .decoderBiasInit(parseEnum(SaeConfig.DecoderBiasInit.class, c.getString("decoder-bias-init"), "decoder-bias-init"))
                    .learningRate(c.getDouble("lr"))
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
                    .build();
        } catch (ConfigException.WrongType e) {
            throw new IllegalArgumentException("wrong type in the SAE settings: " + e.getMessage());
        }
    }

    private int intValue(String key) {
        return asConfig().getInt(key);
    }

    private long longValue(String key) {
        return asConfig().getLong(key);
    }

    private static <E extends Enum<E>> E parseEnum(Class<E> type, String value, String key) {
        try {
            return Enum.valueOf(type, value.trim().toUpperCase(Locale.ROOT).replace('-', '_'));
        } catch (IllegalArgumentException e) {
            StringBuilder options = new StringBuilder();
            for (E constant : type.getEnumConstants()) {
                options.append(options.length() == 0 ? "" : ", ").append(constant.name().toLowerCase(Locale.ROOT));
            }
            throw new IllegalArgumentException("'" + key + " = " + value + "' is not one of: " + options);
        }
    }

    /** HOCON text of the settings, for train_config.conf. */
    public String render() {
        return asConfig().root().render(com.typesafe.config.ConfigRenderOptions.defaults()
                .setOriginComments(false).setJson(false));
    }
}
