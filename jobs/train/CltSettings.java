package jobs.train;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import jobs.config.Settings;
import training.clt.CltConfig;

import java.io.Serializable;

/** A CLT run's settings: section {@code spindle.clt} of conf/reference.conf with overrides. */
public final class CltSettings implements Serializable {

    static final String SECTION = "spindle.clt";

    private final Settings settings;

    private CltSettings(Settings settings) {
        this.settings = settings;
    }

    public static CltSettings of(Config overrides, String where) {
        CltSettings clt = new CltSettings(Settings.of(SECTION, overrides, where));
        clt.toConfig(1, 1); // type-check every value now
        return clt;
    }

    public Config asConfig() {
        return settings.asConfig();
    }

    public String hookIn() {
        return asConfig().getString("hook-in");
    }

    public String hookOut() {
        return asConfig().getString("hook-out");
    }

    public int epochs() {
        return settings.epochs();
    }

    public int mixingBuffer() {
        return settings.mixingBuffer();
    }

    public long seed() {
        return settings.seed();
    }

    public double memoryBudgetGb() {
        return asConfig().getDouble("memory-budget-gb");
    }

    public CltConfig toConfig(int layers, int dModel) {
        Config c = asConfig();
        try {
            return CltConfig.builder(layers, dModel, c.getInt("features-per-layer"))
                    .thresholdInit(c.getDouble("threshold-init"))
                    .bandwidth(c.getDouble("bandwidth"))
                    .sparsityCoefficient(c.getDouble("sparsity-coeff"))
                    .sparsityWarmupSteps(c.getInt("sparsity-warmup-steps"))
                    .tanhScale(c.getDouble("tanh-scale"))
                    .preActLossCoefficient(c.getDouble("pre-act-coeff"))
                    .learningRate(c.getDouble("lr"))
                    .adamBetas(c.getDouble("beta1"), c.getDouble("beta2"))
                    .lrWarmupSteps(c.getInt("lr-warmup-steps"))
                    .lrDecayFraction(c.getDouble("lr-decay-fraction"))
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
            throw new IllegalArgumentException("wrong type in the CLT settings: " + e.getMessage());
        }
    }

    public String render() {
        return settings.render();
    }
}
