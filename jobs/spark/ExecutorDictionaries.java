package jobs.spark;

import training.evaluation.FeatureDictionary;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** One loaded dictionary per executor JVM and directory, shared by its tasks (like {@link ExecutorResources}). */
public final class ExecutorDictionaries {

    private static final Map<String, FeatureDictionary> DICTIONARIES = new ConcurrentHashMap<>();
    private static final Map<String, training.export.CircuitTracerDictionary> TRANSCODERS = new ConcurrentHashMap<>();

    private ExecutorDictionaries() {
    }

    public static FeatureDictionary get(String directory) {
        return DICTIONARIES.computeIfAbsent(directory, dir -> FeatureDictionary.load(ExecutorResources.localDirectory(dir)));
    }

    /** A circuit-tracer transcoder directory (CLT or per-layer set), loaded once per executor JVM. */
    public static training.export.CircuitTracerDictionary transcoder(String directory) {
        return TRANSCODERS.computeIfAbsent(directory,
                dir -> training.export.CircuitTracerDictionary.load(ExecutorResources.localDirectory(dir)));
    }
}
