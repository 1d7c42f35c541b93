package jobs.cli;

import jobs.evaluate.EvaluateJob;
import jobs.spark.SparkSessions;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code spindle evaluate}: reconstruction and spliced-CE metrics of a dictionary, on Spark. */
@Command(name = "evaluate", mixinStandardHelpOptions = true,
        description = "Evaluate a SAELens dictionary on held-out sequences (the last N by seq_id): MSE, FVU, cosine, L0, "
                + "dead/dense features, spliced and zero-ablated next-token CE, CE score, KL; writes evaluation.json and PNG plots.")
public final class EvaluateCommand implements Callable<Integer> {

    @Option(names = "--dictionary", required = true, description = "SAELens directory (cfg.json, sae_weights.safetensors).")
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
        SparkSession spark = SparkSessions.create("spindle evaluate", master);
        try {
            EvaluateJob.Result r = EvaluateJob.run(spark, new EvaluateJob.Options(dictionary, model, tokens, sequences,
                    batchSequences, out, overwrite));
            Map<String, Object> rec = (Map<String, Object>) r.report().get("reconstruction");
            System.out.printf(Locale.ROOT, "%s: %,d tokens  FVU %.4f  cos %.4f  L0 %.2f  dead %s  dense %s  "
                            + "CE clean %.4f spliced %.4f zero %.4f  CE score %.4f  KL %.4g%n",
                    out, r.statistics().tokens, r.statistics().fvu(), r.statistics().cosineSimilarity(), r.statistics().l0(),
                    rec.get("dead_features"), rec.get("dense_features"), r.loss().clean(), r.loss().spliced(),
                    r.loss().zeroAblated(), r.loss().ceScore(), r.loss().kl());
            return 0;
        } finally {
            spark.stop();
        }
    }
}
