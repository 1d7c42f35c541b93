package jobs.cli;

import jobs.analysis.AblateJob;
import jobs.spark.SparkSessions;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code spindle ablate}: what a hook, or a set of SAE features, is worth to the next-token loss; on Spark. */
@Command(name = "ablate", mixinStandardHelpOptions = true,
        description = "Mean next-token CE over held-out sequences of a token table (the last N by seq_id), clean and with a hook "
                + "ablated: zero, mean (the hook's mean over the same sequences) or resample (its value at the same position of "
                + "another sequence of the same length, seeded). With --dictionary and --features, only those SAE features are "
                + "ablated and the SAE's error term is kept. Writes ablation.json (ce_clean, ce_ablated, per-token delta histogram) "
                + "and ablation.png.")
public final class AblateCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, description = "Model directory.")
    String model;

    @Option(names = "--tokens", required = true, description = "Token table written by `spindle tokenize`.")
    String tokens;

    @Option(names = "--hook", required = true, description = "Hook to ablate (TransformerLens name, e.g. blocks.1.hook_resid_post).")
    String hook;

    @Option(names = "--mode", required = true, description = "zero, mean or resample.")
    String mode;

    @Option(names = "--dictionary", description = "SAELens SAE on --hook: ablate only --features, keep the SAE's error term.")
    String dictionary;

    @Option(names = "--features", split = ",", description = "Feature indices to ablate, comma-separated (with --dictionary).")
    int[] features;

    @Option(names = "--sequences", defaultValue = "256", description = "Use the last N sequences by seq_id (default: ${DEFAULT-VALUE}).")
    int sequences;

    @Option(names = "--batch-sequences", defaultValue = "16", description = "Sequences per forward pass (default: ${DEFAULT-VALUE}).")
    int batchSequences;

    @Option(names = "--seed", defaultValue = "0", description = "Seed of the resample donors (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--histogram-range", defaultValue = "10", description = "The delta histogram covers [-R, R) nats (default: ${DEFAULT-VALUE}).")
    double histogramRange;

    @Option(names = "--out", required = true, description = "Output directory (ablation.json, ablation.png); any Hadoop filesystem.")
    String out;

    @Option(names = "--overwrite", description = "Replace an existing result in --out.")
    boolean overwrite;

    @Option(names = "--master", description = "Spark master (default: spark-submit's, else local[*]).")
    String master;

    @Override
    public Integer call() {
        SparkSession spark = SparkSessions.create("spindle ablate", master);
        try {
            AblateJob.Result r = AblateJob.run(spark, new AblateJob.Options(model, tokens, hook, mode, dictionary, features,
                    sequences, batchSequences, seed, histogramRange, out, overwrite));
            System.out.printf(Locale.ROOT, "%s: %s ablation of %s%s over %,d positions: CE clean %.4f  ablated %.4f  (+%.4f)  KL %.4f%n",
                    out, r.report().get("mode"), r.report().get("hook"),
                    dictionary == null ? "" : " features " + java.util.Arrays.toString(features),
                    r.loss().positions, r.loss().clean(), r.loss().ablated(), r.loss().ablated() - r.loss().clean(), r.loss().kl());
            return 0;
        } finally {
            spark.stop();
        }
    }
}
