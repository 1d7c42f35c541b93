package jobs.cli;

import jobs.evaluate.EvaluateJob;
import jobs.evaluate.TranscoderEvaluateJob;
import training.clt.ReplacementEvaluation;
import jobs.spark.SparkSessions;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code spindle evaluate}: reconstruction and spliced-CE metrics of a dictionary, on Spark. */
@Command(name = "evaluate", mixinStandardHelpOptions = true,
        description = "Evaluate a dictionary on held-out sequences (the last N by seq_id). A SAELens SAE gets MSE, FVU, cosine, L0, "
                + "dead/dense features, explained variance, l2_ratio, relative reconstruction bias, fraction alive, spliced and zero-ablated next-token CE, "
                + "CE loss score, KL and KL score (evaluation.json, formulas in docs/EVALUATION.md, and PNG plots). Several SAE directories "
                + "(comma-separated) are each evaluated into --out/NAME and compared in a sweep report (--out/sweep.md, sweep.json, "
                + "fvu_vs_l0.png, ce_score_vs_l0.png). A transcoder in circuit-tracer's layout gets the replacement model's top-1 agreement and KL (all layers, and one at a time) and per-layer NMSE and L0.")
public final class EvaluateCommand implements Callable<Integer> {

    @Option(names = "--dictionary", required = true, description = "SAELens directory (cfg.json, ...) or circuit-tracer transcoder directory (config.yaml, ...); "
            + "several SAELens directories, comma-separated, for a sweep report.")
    String dictionary;

    @Option(names = "--model", required = true, description = "Model directory.")
    String model;

    @Option(names = "--tokens", required = true, description = "Token table written by `spindle tokenize`.")
    String tokens;

    @Option(names = "--sequences", defaultValue = "256", description = "Evaluate on the last N sequences by seq_id (default: ${DEFAULT-VALUE}).")
    int sequences;

    @Option(names = "--batch-sequences", defaultValue = "16", description = "Sequences per forward pass (default: ${DEFAULT-VALUE}).")
    int batchSequences;

    @Option(names = "--out", required = true, description = "Output directory (evaluation.json, *.png).")
    String out;

    @Option(names = "--overwrite", description = "Replace an existing evaluation in --out.")
    boolean overwrite;

    @Option(names = "--master", description = "Spark master (default: spark-submit's, else local[*]).")
    String master;

    @Override
    @SuppressWarnings("unchecked")
    public Integer call() {
        java.util.List<String> dictionaries = java.util.Arrays.stream(dictionary.split(",")).map(String::trim)
                .filter(d -> !d.isEmpty()).toList();
        SparkSession spark = SparkSessions.create("spindle evaluate", master);
        try {
            if (dictionaries.size() > 1) {
                return sweepReport(spark, dictionaries);
            }
            if (TranscoderEvaluateJob.isTranscoderDirectory(dictionary)) {
                ReplacementEvaluation.Report t = TranscoderEvaluateJob.run(spark, new TranscoderEvaluateJob.Options(
                        dictionary, model, tokens, sequences, out, overwrite));
                System.out.printf(Locale.ROOT, "%s: %,d positions  all layers replaced: top-1 agreement %.4f  KL %.4f;"
                                + "  per layer NMSE %s  L0 %s  dead %s  agreement %s%n", out, t.positions(), t.allLayersAgreement(),
                        t.allLayersKl(), java.util.Arrays.toString(t.nmseByLayer()), java.util.Arrays.toString(t.l0ByLayer()),
                        java.util.Arrays.toString(t.deadByLayer()), java.util.Arrays.toString(t.singleLayerAgreement()));
                return 0;
            }
            EvaluateJob.Result r = EvaluateJob.run(spark, new EvaluateJob.Options(dictionary, model, tokens, sequences,
                    batchSequences, out, overwrite));
            print(out, r);
            return 0;
        } finally {
            spark.stop();
        }
    }

    /** Each dictionary into out/NAME (NAME: its directory's name), then the report over all of them in out. */
    private int sweepReport(SparkSession spark, java.util.List<String> dictionaries) {
        java.util.Set<String> names = new java.util.HashSet<>();
        for (String d : dictionaries) {
            String name = new org.apache.hadoop.fs.Path(d).getName();
            if (!names.add(name)) {
                throw new IllegalArgumentException("two dictionaries are named '" + name + "'; each is evaluated into --out/NAME,"
                        + " so give directories with distinct names");
            }
            if (TranscoderEvaluateJob.isTranscoderDirectory(d)) {
                throw new IllegalArgumentException(d + " is a circuit-tracer transcoder; a sweep report compares SAELens SAEs,"
                        + " evaluate it on its own");
            }
        }
        java.util.List<training.evaluation.SweepReport.Row> rows = new java.util.ArrayList<>();
        for (String d : dictionaries) {
            String name = new org.apache.hadoop.fs.Path(d).getName();
            String dir = new org.apache.hadoop.fs.Path(out, name).toString();
            EvaluateJob.Result r = EvaluateJob.run(spark, new EvaluateJob.Options(d, model, tokens, sequences, batchSequences,
                    dir, overwrite));
            print(dir, r);
            rows.add(training.evaluation.SweepReport.row(name, jobs.spark.ExecutorResources.localDirectory(d),
                    jobs.spark.ExecutorResources.localDirectory(dir)));
        }
        jobs.output.StagedOutput.files(spark.sparkContext().hadoopConfiguration(), out,
                report -> training.evaluation.SweepReport.write(report, rows));
        System.out.println("sweep report: " + new org.apache.hadoop.fs.Path(out, "sweep.md") + " (and sweep.json, fvu_vs_l0.png, ce_score_vs_l0.png)");
        return 0;
    }

    @SuppressWarnings("unchecked")
    private static void print(String out, EvaluateJob.Result r) {
            Map<String, Object> rec = (Map<String, Object>) r.report().get("reconstruction");
            System.out.printf(Locale.ROOT, "%s: %,d tokens  FVU %.4f  cos %.4f  L0 %.2f  dead %s  dense %s  "
                            + "CE clean %.4f spliced %.4f zero %.4f  CE score %.4f  KL %.4g%n",
                    out, r.statistics().tokens, r.statistics().fvu(), r.statistics().cosineSimilarity(), r.statistics().l0(),
                    rec.get("dead_features"), rec.get("dense_features"), r.loss().clean(), r.loss().spliced(),
                    r.loss().zeroAblated(), r.loss().ceScore(), r.loss().kl());
    }
}
