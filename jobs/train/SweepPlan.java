package jobs.train;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValue;
import com.typesafe.config.ConfigValueType;
import jobs.config.ConfigKeys;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A sweep file: shared {@code sae} settings, then either a {@code sweep} grid (any SAE key, plus
 * {@code hooks}, each a list; every combination is a run) or explicit {@code runs}. Example:
 * <pre>
 * activations = "out/activations"
 * out = "out/sweep"
 * sae { architecture = jumprelu, tokens = 2000000 }
 * sweep { hooks = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"], d-sae = [512, 1024], sparsity-coeff = [0.5, 1] }
 * </pre>
 */
public record SweepPlan(String activations, String out, List<TrainSaeJob.Run> runs) {

    static final Set<String> TOP_LEVEL = Set.of("activations", "out", "sae", "sweep", "runs");

    public static SweepPlan read(Path file, String activationsOverride, String outOverride) {
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException("--conf " + file + ": no such file");
        }
        Config conf;
        try {
            conf = ConfigFactory.parseFile(file.toFile()).resolve();
        } catch (com.typesafe.config.ConfigException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage());
        }
        ConfigKeys.check(conf, TOP_LEVEL, file.toString());
        String activations = activationsOverride != null ? activationsOverride : string(conf, "activations", file);
        String out = outOverride != null ? outOverride : string(conf, "out", file);
        Config shared = conf.hasPath("sae") ? conf.getConfig("sae") : ConfigFactory.empty();
        ConfigKeys.check(shared, SaeSettings.defaults().root().keySet(), file + " (sae)");
        List<TrainSaeJob.Run> runs = new ArrayList<>();
        if (conf.hasPath("sweep")) {
            Config grid = conf.getConfig("sweep");
            Set<String> known = new java.util.HashSet<>(SaeSettings.defaults().root().keySet());
            known.add("hooks");
            ConfigKeys.check(grid, known, file + " (sweep)");
            if (!grid.hasPath("hooks")) {
                throw new IllegalArgumentException(file + ": the sweep needs 'hooks = [...]'");
            }
            List<Map<String, Object>> combos = new ArrayList<>();
            combos.add(new LinkedHashMap<>());
            for (Map.Entry<String, ConfigValue> e : grid.root().entrySet()) {
                List<Object> options = e.getValue().valueType() == ConfigValueType.LIST
                        ? new ArrayList<>(grid.getAnyRefList(e.getKey())) : List.of(e.getValue().unwrapped());
                List<Map<String, Object>> next = new ArrayList<>();
                for (Map<String, Object> combo : combos) {
                    for (Object option : options) {
                        Map<String, Object> extended = new LinkedHashMap<>(combo);
                        extended.put(e.getKey(), option);
                        next.add(extended);
                    }
                }
                combos = next;
            }
            for (Map<String, Object> combo : combos) {
                String hook = String.valueOf(combo.remove("hooks"));
                runs.add(run(hook, combo, shared, out, file));
            }
        }
        if (conf.hasPath("runs")) {
            for (Config r : conf.getConfigList("runs")) {
                if (!r.hasPath("hook")) {
                    throw new IllegalArgumentException(file + ": every entry of 'runs' needs a hook");
                }
                Map<String, Object> values = new LinkedHashMap<>(r.root().unwrapped());
                String hook = String.valueOf(values.remove("hook"));
                runs.add(run(hook, values, shared, out, file));
            }
        }
        if (runs.isEmpty()) {
            throw new IllegalArgumentException(file + " defines no runs: add a 'sweep { hooks = [...] ... }' grid or a 'runs = [...]' list");
        }
        return new SweepPlan(activations, out, runs);
    }

    private static TrainSaeJob.Run run(String hook, Map<String, Object> values, Config shared, String out, Path file) {
        StringBuilder name = new StringBuilder(hook);
        values.forEach((k, v) -> name.append('-').append(k).append('=').append(v));
        Config overrides = ConfigFactory.parseMap(values).withFallback(shared);
        SaeSettings settings = SaeSettings.of(overrides, file + " (run " + name + ")");
        String dir = name.toString().replaceAll("[^A-Za-z0-9._=-]", "_");
        return new TrainSaeJob.Run(name.toString(), hook, settings, out + "/" + dir);
    }

    private static String string(Config conf, String key, Path file) {
        if (!conf.hasPath(key)) {
            throw new IllegalArgumentException(file + ": '" + key + "' is missing (or pass --" + key + ")");
        }
        return conf.getString(key);
    }
}
