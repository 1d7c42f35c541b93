package jobs.cli;

import jobs.features.FeaturesJob;
import jobs.spark.SparkSessions;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.concurrent.Callable;

/** {@code spindle features}: feature tables, Neuronpedia-style JSON and a static dashboard, on Spark. */
@Command(name = "features", mixinStandardHelpOptions = true,
        description = "One pass over an activation cache: per-feature frequency, histogram, top-k and quantile examples with "
                + "context windows, logit tables; writes features.parquet, examples.parquet, SCHEMA.md, neuronpedia.json "
                + "and dashboard/index.html (opens from the file system).")
public final class FeaturesCommand implements Callable<Integer> {

    @Option(names = "--dictionary", required = true, description = "SAELens directory (cfg.json, sae_weights.safetensors).")
    String dictionary;

    @Option(names = "--activations", required = true, description = "Activation cache with the dictionary's hook.")
    String activations;

    @Option(names = "--tokens", required = true, description = "The token table the cache was made from.")
    String tokens;

    @Option(names = "--model", description = "Model directory for the tokenizer and logit tables (default: the token table's).")
    String model;

    @Option(names = "--top-k", defaultValue = "20", description = "Top examples per feature (default: ${DEFAULT-VALUE}).")
    int topK;

    @Option(names = "--context", defaultValue = "10", description = "Tokens each side of an example (default: ${DEFAULT-VALUE}).")
    int context;

    @Option(names = "--partitions", description = "Parts of the cache, one Spark task each (default: Spark's default parallelism).")
    Integer partitions;

    @Option(names = "--evaluation", description = "The dictionary's evaluation.json (from `spindle evaluate`): every numeric "
            + "field is shown in a table on the dashboard's index page.")
    String evaluation;

    @Option(names = "--out", required = true, description = "Output directory.")
    String out;

    @Option(names = "--overwrite", description = "Replace an existing result in --out.")
    boolean overwrite;

    @Option(names = "--master", description = "Spark master (default: spark-submit's, else local[*]).")
    String master;

    @Override
    public Integer call() {
        SparkSession spark = SparkSessions.create("spindle features", master);
        try {
            int parts = partitions != null ? partitions : spark.sparkContext().defaultParallelism();
            FeaturesJob.Result r = FeaturesJob.run(spark, new FeaturesJob.Options(dictionary, activations, tokens, model, topK,
                    context, parts, out, overwrite, evaluation));
            long live = r.features().stream().filter(f -> f.firings() > 0).count();
            System.out.printf("%s: %d features (%d fired) at %s; logit tables %s; open %s/dashboard/index.html%n", out,
                    r.features().size(), live, r.hook(), r.logitsComputed() ? "computed" : "skipped (not residual width)", out);
            return 0;
        } finally {
            spark.stop();
        }
    }
}
