package jobs.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigRenderOptions;

import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * One section of conf/reference.conf (e.g. {@code spindle.sae}) with a run's overrides applied:
 * unknown keys fail with a suggestion, every value is resolved into a plain map so the settings
 * travel to Spark tasks, and {@link #render()} writes them back out as HOCON.
 */
public final class Settings implements Serializable {

    private final Map<String, Object> values;

    private Settings(Map<String, Object> values) {
        this.values = values;
    }

    public static Config defaults(String section) {
        return ConfigFactory.defaultReference().getConfig(section);
    }

    public static Settings of(String section, Config overrides, String where) {
        Config defaults = defaults(section);
        ConfigKeys.check(overrides, defaults.root().keySet(), where);
        Config resolved = overrides.withFallback(defaults).resolve();
        Map<String, Object> values = new LinkedHashMap<>();
        for (String key : defaults.root().keySet()) {
            values.put(key, resolved.getValue(key).unwrapped());
        }
        return new Settings(values);
    }

    public Config asConfig() {
        return ConfigFactory.parseMap(values);
    }

    /** Passes over the cache (both SAE and CLT sections have it). */
    public int epochs() {
        return asConfig().getInt("epochs");
    }

    /** Rows in the shuffling buffer between the cache and the trainer. */
    public int mixingBuffer() {
        return asConfig().getInt("mixing-buffer");
    }

    public long seed() {
        return asConfig().getLong("seed");
    }

    public String render() {
        return asConfig().root().render(ConfigRenderOptions.defaults().setOriginComments(false).setJson(false));
    }

    /** An enum constant from a setting's text ("geometric-median" -> GEOMETRIC_MEDIAN), or a clear error. */
    public static <E extends Enum<E>> E parseEnum(Class<E> type, String value, String key) {
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
}
