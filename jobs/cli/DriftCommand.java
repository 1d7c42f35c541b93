package jobs.cli;

import jobs.drift.DriftJob;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import training.dashboard.DriftPage;
import training.drift.DriftReport;
import training.drift.FeatureDrift;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code spindle drift}: which features are new and which vanished since the previous run (no Spark). */
@Command(name = "drift", mixinStandardHelpOptions = true,
        description = "Matches two dictionaries on the same hook by decoder cosine (e.g. last night's and tonight's run); "
                + "writes drift.json and, given --new-features with a dashboard, adds dashboard/drift.html.")
public final class DriftCommand implements Callable<Integer> {

    @Option(names = "--old", required = true, description = "The previous run's SAELens directory.")
    String old;

    @Option(names = "--new", required = true, description = "The new run's SAELens directory (same hook and width).")
    String nu;

    @Option(names = "--old-features", description = "The previous run's `spindle features` output: dead features are "
            + "left out, and vanished features link to its dashboard.")
    String oldFeatures;

    @Option(names = "--new-features", description = "The new run's `spindle features` output: dead features are left out, "
            + "and the drift page is added to its dashboard.")
    String newFeatures;

    @Option(names = "--threshold", defaultValue = "" + FeatureDrift.DEFAULT_THRESHOLD,
            description = "Decoder cosine at which two features count as the same (default: ${DEFAULT-VALUE}).")
    double threshold;

    @Option(names = "--out", required = true, description = "Output directory for drift.json (any Hadoop filesystem URI or local path).")
    String out;

    @Override
    public Integer call() {
        Configuration conf = new Configuration();
        DriftReport r = DriftJob.run(conf, old, nu, oldFeatures, newFeatures, threshold, out);
        Path dashboard = DriftJob.dashboard(conf, newFeatures);
        String live = r.oldLivenessKnown() || r.newLivenessKnown()
                ? String.format(Locale.ROOT, " (%.1f%% over the %d live new features; dead features are not listed)",
                        100 * r.matchedShareLive(), r.newLive())
                : "";
        System.out.printf(Locale.ROOT, "Drift on %s at cosine %s: %.1f%% of the %d new features match an old one%s, "
                        + "%d one-to-one; %d new features, %d vanished of %d old. Wrote %s; %s.%n",
                r.hook(), r.threshold(), 100 * r.matchedShare(), r.newDSae(), live, r.mutualMatches(), r.newFeatures().size(),
                r.vanishedFeatures().size(), r.oldDSae(), new Path(out, DriftReport.FILE_NAME),
                dashboard == null ? "no dashboard page (--new-features has no dashboard/)"
                        : "open " + new Path(dashboard, DriftPage.FILE_NAME));
        return 0;
    }
}
