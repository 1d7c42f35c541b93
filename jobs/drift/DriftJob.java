package jobs.drift;

import jobs.output.StagedOutput;
import jobs.spark.ExecutorResources;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.FileUtil;
import org.apache.hadoop.fs.Path;
import training.dashboard.DriftPage;
import training.drift.DriftReport;
import training.drift.FeatureDrift;
import training.drift.FeatureLiveness;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;

/**
 * {@code spindle drift} and the pipeline's drift stage: how the new run's dictionary drifted from
 * the previous run's. Spark-free: one GEMM-based comparison on the driver (seconds for 16k x 16k).
 * Every path may be on any Hadoop filesystem: what the comparison reads is brought to local disk
 * first (the dictionaries, the two feature tables, the new dashboard's index page).
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
    public static DriftReport run(Configuration conf, String oldDictionary, String newDictionary, String oldFeaturesOrNull,
                                  String newFeaturesOrNull, double threshold, String out) {
        java.nio.file.Path scratch = null;
        try {
            scratch = Files.createTempDirectory("spindle-drift-");
            DriftReport report = FeatureDrift.compare(ExecutorResources.localDirectory(oldDictionary),
                    ExecutorResources.localDirectory(newDictionary), featureTable(conf, oldFeaturesOrNull, scratch.resolve("old")),
                    featureTable(conf, newFeaturesOrNull, scratch.resolve("new")), threshold)
                    .naming(userName(oldDictionary), userName(newDictionary));
            StagedOutput.directory(conf, out, DriftReport.FILE_NAME, true, report::write);
            Path dashboard = dashboard(conf, newFeaturesOrNull);
            if (dashboard != null) {
                addDriftPage(conf, report, dashboard, dashboard(conf, oldFeaturesOrNull), scratch.resolve("pages"));
            }
            return report;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the drift report " + out + ": " + e.getMessage(), e);
        } finally {
            if (scratch != null) {
                FileUtil.fullyDelete(scratch.toFile());
            }
        }
    }

    /** Local directories as absolute paths (as the comparison names them), others as given. */
    private static String userName(String dictionary) {
        return dictionary.contains("://") ? dictionary : java.nio.file.Path.of(dictionary).toString();
    }

    /** The dashboard directory of a features output, or null when there is none. */
    public static Path dashboard(Configuration conf, String featuresOrNull) {
        if (featuresOrNull == null) {
            return null;
        }
        try {
            Path dir = new Path(featuresOrNull, "dashboard");
            FileSystem fs = dir.getFileSystem(conf);
            return fs.isFile(new Path(dir, "index.html")) ? fs.makeQualified(dir) : null;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + featuresOrNull + ": " + e.getMessage(), e);
        }
    }

    /** A local directory holding the features output's table (all the comparison reads of it), or null. */
    private static java.nio.file.Path featureTable(Configuration conf, String features, java.nio.file.Path into) throws IOException {
        if (features == null) {
            return null;
        }
        Path table = new Path(features, FeatureLiveness.TABLE);
        FileSystem fs = table.getFileSystem(conf);
        Files.createDirectories(into);
        if (fs.isFile(table)) {
            try (InputStream in = fs.open(table)) {
                Files.copy(in, into.resolve(FeatureLiveness.TABLE));
            }
        }
        return into; // without the table FeatureLiveness names the missing file
    }

    /**
     * The drift page is written beside a local copy of the new index page, placed at the same
     * relative position to the old dashboard as on the filesystem, so its links are the real
     * relative paths; then uploaded, the page before the index that links it.
     */
    private static void addDriftPage(Configuration conf, DriftReport report, Path newDashboard, Path oldDashboardOrNull,
                                     java.nio.file.Path scratch) throws IOException {
        java.nio.file.Path localNew = scratch.resolve(newDashboard.toUri().getPath().replaceAll("^/+", ""));
        java.nio.file.Path localOld = oldDashboardOrNull == null ? null
                : scratch.resolve(oldDashboardOrNull.toUri().getPath().replaceAll("^/+", ""));
        Files.createDirectories(localNew);
        FileSystem fs = newDashboard.getFileSystem(conf);
        try (InputStream in = fs.open(new Path(newDashboard, "index.html"))) {
            Files.copy(in, localNew.resolve("index.html"));
        }
        java.nio.file.Path page = DriftPage.write(localNew, report, localOld);
        for (String name : new String[] {page.getFileName().toString(), "index.html"}) {
            StagedOutput.fileFrom(conf, localNew.resolve(name), new Path(newDashboard, name).toString());
        }
    }
}
