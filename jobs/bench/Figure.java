package jobs.bench;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One benchmark figure: a value (a ratio against a baseline measured in the same run wherever a
 * target exists), its target, whether it holds, and the raw measurements behind it.
 */
public record Figure(String name, double value, Double target, boolean higherIsBetter, String unit,
                     Map<String, Object> details) {

    public static Figure measured(String name, double value, String unit, Map<String, Object> details) {
        return new Figure(name, value, null, true, unit, details);
    }

    public static Figure atLeast(String name, double value, double target, Map<String, Object> details) {
        return new Figure(name, value, target, true, "ratio", details);
    }

    public static Figure atMost(String name, double value, double target, Map<String, Object> details) {
        return new Figure(name, value, target, false, "ratio", details);
    }

    /** Null when the figure has no target. */
    public Boolean holds() {
        if (target == null) {
            return null;
        }
        return higherIsBetter ? value >= target : value <= target;
    }

    Map<String, Object> toJson() {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("value", value);
        json.put("unit", unit);
        json.put("target", target == null ? null : (higherIsBetter ? ">= " : "<= ") + target);
        json.put("holds", holds());
        json.put("details", details);
        return json;
    }
}
