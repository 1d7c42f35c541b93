package jobs.cli;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import jobs.pipeline.PipelineJob;
import jobs.spark.SparkSessions;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code spindle pipeline}: every stage from one configuration, skipping stages already complete. */
@Command(name = "pipeline", mixinStandardHelpOptions = true,
        description = "Run every stage (tokenize, cache, train, evaluate, features) from one HOCON configuration; "
                + "stages whose complete output exists are skipped. Keys and defaults: conf/reference.conf (spindle.pipeline).")
public final class PipelineCommand implements Callable<Integer> {

    @Option(names = "--conf", required = true, description = "Pipeline configuration (HOCON).")
    Path conf;

    @Option(names = "--out", description = "Override the configuration's output root.")
    String out;

    @Option(names = "--date", paramLabel = "YYYY-MM-DD|today",
            description = "A nightly run: outputs go to <out>/runs/<date>/ (overrides `run-date`).")
    String date;

    @Override
    public Integer call() {
        if (!Files.isRegularFile(conf)) {
            throw new IllegalArgumentException("--conf " + conf + ": no such file");
        }
        Config file;
        try {
            file = ConfigFactory.parseFile(conf.toFile());
        } catch (com.typesafe.config.ConfigException e) {
            throw new IllegalArgumentException(conf + ": " + e.getMessage());
        }
        return run(file, conf.toString(), out, date);
    }

    /** Checks the configuration completely, then runs it on a Spark session. */
    static int run(Config file, String where, String outOverride, String dateOverride) {
        if (outOverride != null) {
            file = ConfigFactory.parseMap(Map.of("out", outOverride)).withFallback(file);
        }
        if (dateOverride != null) {
            file = ConfigFactory.parseMap(Map.of("run-date", dateOverride)).withFallback(file);
        }
        PipelineJob.Plan plan = PipelineJob.plan(file, where);
        // Under spark-submit the submit's master wins over the configuration's.
        String master = System.getProperty("spark.master") != null ? null : plan.settings().getString("master");
        SparkSession spark = SparkSessions.create("spindle pipeline " + (plan.runDate() == null ? "" : plan.runDate()), master);
        try {
            Map<String, Object> summary = PipelineJob.run(spark, plan, System.out);
            printSummary(summary, plan);
            return 0;
        } finally {
            spark.stop();
        }
    }

    @SuppressWarnings("unchecked")
    private static void printSummary(Map<String, Object> summary, PipelineJob.Plan plan) {
        System.out.println();
        System.out.println("Summary (" + new org.apache.hadoop.fs.Path(plan.run(), "summary.json") + ")");
        if (summary.get("cache") instanceof Map<?, ?> cache) {
            System.out.printf(Locale.ROOT, "  accumulated cache: %s corpus files (%s new tonight), %s tokens%n",
                    cache.get("corpus_files"), cache.get("new_corpus_files"), cache.get("tokens"));
        }
        for (Map.Entry<String, Object> e : summary.entrySet()) {
            if (!(e.getValue() instanceof Map<?, ?> m) || e.getKey().equals("stage_seconds")) {
                continue;
            }
            Map<String, Object> ev = (Map<String, Object>) m;
            if (ev.containsKey("reconstruction")) {
                Map<String, Object> r = (Map<String, Object>) ev.get("reconstruction");
                Map<String, Object> d = (Map<String, Object>) ev.get("downstream");
                System.out.printf(Locale.ROOT, "  %-20s SAE  FVU %.3f  L0 %.1f  dead %s of %s  CE score %.3f  KL %.3f%n", e.getKey(),
                        num(r.get("fvu")), num(r.get("l0")), r.get("dead_features"), r.get("d_sae"), num(d.get("ce_score")),
                        num(d.get("kl_clean_spliced")));
            } else if (ev.containsKey("all_layers_replaced")) {
                Map<String, Object> all = (Map<String, Object>) ev.get("all_layers_replaced");
                System.out.printf(Locale.ROOT, "  %-20s CLT  NMSE by layer %s  replacement top-1 agreement %.3f  KL %.3f%n",
                        e.getKey(), ev.get("nmse_by_layer"), num(all.get("top1_agreement")), num(all.get("kl")));
            }
        }
        if (summary.get("drift") instanceof Map<?, ?> drift) {
            for (Map.Entry<?, ?> e : drift.entrySet()) {
                Map<String, Object> d = (Map<String, Object>) e.getValue();
                System.out.printf(Locale.ROOT, "  %-20s drift since %s: %.1f%% of features matched (cosine >= %s; %.1f%% of live ones), "
                        + "%s new, %s vanished%n", e.getKey(), d.get("since"), 100 * num(d.get("matched_share")), d.get("threshold"),
                        100 * num(d.get("matched_share_live")), d.get("new_features"), d.get("vanished_features"));
            }
        }
        for (Object dashboard : (List<Object>) summary.get("dashboards")) {
            System.out.println("  dashboard: " + dashboard);
        }
        if (summary.get("pruned_runs") instanceof List<?> pruned && !pruned.isEmpty()) {
            System.out.println("  deleted old runs (keep-runs): " + pruned);
        }
        System.out.printf(Locale.ROOT, "  wall %.0f s, stage time %.0f s%n", num(summary.get("wall_seconds")),
                ((Map<String, Double>) summary.get("stage_seconds")).values().stream().mapToDouble(Double::doubleValue).sum());
    }

    private static double num(Object o) {
        return o instanceof Number n ? n.doubleValue() : Double.NaN;
    }
}
