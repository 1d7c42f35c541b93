package jobs.spark;

import training.evaluation.FeatureDictionary;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** One loaded dictionary per executor JVM and directory, shared by its tasks (like {@link ExecutorResources}). */
public final class ExecutorDictionaries {

    private static final Map<String, FeatureDictionary> DICTIONARIES = new ConcurrentHashMap<>();

    private ExecutorDictionaries() {
    }

    public static FeatureDictionary get(String directory) {
        return DICTIONARIES.computeIfAbsent(directory, dir -> FeatureDictionary.load(ExecutorResources.localDirectory(dir)));
    }
}
