package jobs.drift;

import training.dashboard.DriftPage;
import training.drift.DriftReport;
import training.drift.FeatureDrift;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * {@code spindle drift} and the pipeline's drift stage: how the new run's dictionary drifted from
 * the previous run's. Spark-free: one GEMM-based comparison on the driver (seconds for 16k x 16k).
 */
public final class DriftJob {

    private DriftJob() {
    }

    /**
     * Compares the two dictionaries, writes {@code out/drift.json} and, if {@code newFeaturesOrNull/dashboard}
     * exists, adds {@code drift.html} to that dashboard (vanished features link into
     * {@code oldFeaturesOrNull/dashboard} when it exists).
     *
     * @param oldFeaturesOrNull {@code spindle features} output of the old run (liveness and dashboard), or null
     * @param newFeaturesOrNull likewise for the new run
     */
    public static DriftReport run(Path oldDictionary, Path newDictionary, Path oldFeaturesOrNull, Path newFeaturesOrNull,
                                  double threshold, Path out) {
        DriftReport report = FeatureDrift.compare(oldDictionary, newDictionary, oldFeaturesOrNull, newFeaturesOrNull, threshold);
        report.write(out);
        Path dashboard = dashboard(newFeaturesOrNull);
        if (dashboard != null) {
            DriftPage.write(dashboard, report, dashboard(oldFeaturesOrNull));
        }
        return report;
    }

    /** The dashboard directory of a features output, or null when there is none. */
    public static Path dashboard(Path featuresOrNull) {
        if (featuresOrNull == null) {
            return null;
        }
        Path dir = featuresOrNull.resolve("dashboard");
        return Files.isRegularFile(dir.resolve("index.html")) ? dir : null;
    }
}
