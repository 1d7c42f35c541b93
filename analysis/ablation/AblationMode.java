package analysis.ablation;

import java.util.Locale;

/** What an ablated hook (or feature) is replaced with. */
public enum AblationMode {
    /** Zero. */
    ZERO,
    /** Its mean over the evaluated data (every position of every sequence). */
    MEAN,
    /** Its value at the same position of another sequence of the data, drawn with a seed. */
    RESAMPLE;

    public String userName() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static AblationMode parse(String name) {
        for (AblationMode mode : values()) {
            if (mode.userName().equals(name == null ? null : name.trim().toLowerCase(Locale.ROOT))) {
                return mode;
            }
        }
        throw new IllegalArgumentException("unknown ablation mode '" + name + "'; use zero, mean or resample");
    }
}
