package training.trainer;

import activations.table.ActivationSource;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * What every trainer (SAE, CLT) does the same way around its loop: filling whole batches from a
 * source, keeping {@code metrics.jsonl} consistent with the checkpoint a run resumes from, and
 * refusing to resume a checkpoint made with other settings.
 */
public final class RunFiles {

    private static final ObjectMapper JSON = new ObjectMapper();
    static final String METRICS = "metrics.jsonl";

    private RunFiles() {
    }

    /** Fills {@code rows} rows of every hook; false if the source ends first (a partial batch is dropped). */
    public static boolean fill(ActivationSource source, FloatBuffer[] destinations, int rows) {
        for (FloatBuffer d : destinations) {
            d.clear();
        }
        int filled = 0;
        while (filled < rows) {
            int n = source.read(destinations, rows - filled);
            if (n == 0) {
                return false;
            }
            filled += n;
        }
        return true;
    }

    /**
     * Makes sure {@code output} exists and returns its newest checkpoint; a checkpoint there is
     * another run's unless {@code resume}, and is refused rather than overwritten.
     */
    public static java.util.Optional<Path> prepareOutput(Path output, boolean resume) {
        java.util.Optional<Path> checkpoint = Checkpoints.latest(output);
        if (checkpoint.isPresent() && !resume) {
            throw new IllegalStateException("output directory " + output + " already holds a run's checkpoint ("
                    + checkpoint.get().getFileName() + "); resume that run (--resume) or choose an empty output directory");
        }
        try {
            Files.createDirectories(output);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create output directory " + output + ": " + e.getMessage(), e);
        }
        return checkpoint;
    }

    /** A fresh run starts without old metrics. */
    public static void resetMetrics(Path output) {
        try {
            Files.deleteIfExists(output.resolve(METRICS));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot reset " + output.resolve(METRICS), e);
        }
    }

    /** Drops metrics lines written after the checkpoint being resumed (they will be recomputed). */
    public static void truncateMetrics(Path output, long step) {
        Path file = output.resolve(METRICS);
        if (!Files.exists(file)) {
            return;
        }
        try {
            List<String> kept = new ArrayList<>();
            for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                if (!line.isBlank() && JSON.readTree(line).path("step").asLong(Long.MAX_VALUE) <= step) {
                    kept.add(line);
                }
            }
            Path temp = file.resolveSibling(".metrics.jsonl.tmp");
            Files.write(temp, kept, StandardCharsets.UTF_8);
            Files.move(temp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot rewrite " + file + ": " + e.getMessage(), e);
        }
    }

    /** A config record as the key/value map checkpoints store. */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> configMap(Object config) {
        return JSON.convertValue(config, LinkedHashMap.class);
    }

    /** Cadences may change on resume; everything that shapes the result may not. */
    public static void checkSameConfig(Map<String, Object> saved, Object config, Path checkpoint) {
        Map<String, Object> current = configMap(config);
        TreeSet<String> differing = new TreeSet<>();
        for (String key : current.keySet()) {
            if (key.equals("metricsEverySteps") || key.equals("checkpointEverySteps")) {
                continue;
            }
            if (saved == null || !String.valueOf(current.get(key)).equals(String.valueOf(saved.get(key)))) {
                differing.add(key);
            }
        }
        if (!differing.isEmpty()) {
            throw new IllegalStateException("checkpoint " + checkpoint + " was made with a different config (" + differing
                    + "); resume with the run's original settings or choose a new output directory");
        }
    }
}
