package jobs.cli;

import jobs.attribute.AttributeJob;
import jobs.spark.SparkSessions;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code spindle attribute}: attribution graphs of prompts through a model's transcoders, on Spark. */
@Command(name = "attribute", mixinStandardHelpOptions = true,
        description = "Attribution graphs of one text or a JSONL prompt set through transcoders (circuit-tracer's method: the local "
                + "replacement model with frozen attention and norms, error nodes, direct effects, pruning by influence). Writes "
                + "graphs/SLUG.json in circuit-tracer's frontend format, pages/SLUG.html, graphs.parquet (node and link rows of every "
                + "prompt) and summary.json (replacement and completeness scores, pruned and unpruned).")
public final class AttributeCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, description = "Model directory.")
    String model;

    @Option(names = "--transcoders", required = true,
            description = "Transcoders in circuit-tracer's layout: a `train-clt` directory or an `export-transcoders` set.")
    String transcoders;

    @Option(names = "--text", description = "One prompt (its graph is named 'prompt').")
    String text;

    @Option(names = "--prompts", description = "JSONL file: one {\"prompt\": TEXT, \"id\": NAME} object per line (id optional).")
    String prompts;

    @Option(names = "--out", required = true, description = "Output directory.")
    String out;

    @Option(names = "--node-threshold", defaultValue = "0.8", description = "Keep nodes carrying this share of the influence (default: ${DEFAULT-VALUE}).")
    double nodeThreshold;

    @Option(names = "--edge-threshold", defaultValue = "0.98", description = "Keep links carrying this share of the influence (default: ${DEFAULT-VALUE}).")
    double edgeThreshold;

    @Option(names = "--max-logits", defaultValue = "10", description = "At most this many logit targets (default: ${DEFAULT-VALUE}).")
    int maxLogits;

    @Option(names = "--logit-mass", defaultValue = "0.95", description = "Logit targets cover this probability (default: ${DEFAULT-VALUE}).")
    double logitMass;

    @Option(names = "--batch-size", defaultValue = "256", description = "Targets per backward pass (default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = "--prompts-per-task", defaultValue = "8", description = "Prompts per Spark task (default: ${DEFAULT-VALUE}).")
    int promptsPerTask;

    @Option(names = "--features", description = "A `spindle features` output whose dashboard the pages link features to; "
            + "{layer} in it stands for the feature's layer (per-layer dashboards).")
    String features;

    @Option(names = "--overwrite", description = "Replace an existing output in --out.")
    boolean overwrite;

    @Option(names = "--master", description = "Spark master (default: spark-submit's, else local[*]).")
    String master;

    @Override
    public Integer call() {
        AttributeJob.Options options = new AttributeJob.Options(model, transcoders, text, prompts, out, nodeThreshold, edgeThreshold,
                maxLogits, logitMass, batchSize, promptsPerTask, features, overwrite);
        AttributeJob.prepare(new org.apache.hadoop.conf.Configuration(), options); // bad input fails before Spark starts
        SparkSession spark = SparkSessions.create("spindle attribute", master);
        try {
            AttributeJob.Result r = AttributeJob.run(spark, options);
            Map<String, Double> m = r.means();
            System.out.printf(Locale.ROOT, "%s: %d graphs  replacement %.4f (pruned %.4f)  completeness %.4f (pruned %.4f)%n", out,
                    r.prompts().size(), m.get("replacement_score"), m.get("pruned_replacement_score"), m.get("completeness_score"),
                    m.get("pruned_completeness_score"));
            return 0;
        } finally {
            spark.stop();
        }
    }
}
