package jobs.cli;

import activations.safetensors.DType;
import activations.table.ActivationManifest;
import jobs.cache.CacheJob;
import jobs.spark.SparkSessions;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code spindle cache}: token table to activation cache, on Spark. */
@Command(name = "cache", mixinStandardHelpOptions = true,
        description = "Run the model over a token table on Spark and write the activation cache (Parquet, exactly once, resumable).")
public final class CacheCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, description = "Model directory (local or any Hadoop filesystem).")
    String model;

    @Option(names = "--tokens", required = true, description = "Token table written by `spindle tokenize`.")
    String tokens;

    @Option(names = "--hooks", required = true, split = ",", description = "Hook points to cache, comma-separated, or 'all'.")
    List<String> hooks;

    @Option(names = "--dtype", defaultValue = "bfloat16", description = "Storage type: bfloat16, float16 or float32 (default: ${DEFAULT-VALUE}).")
    String dtype;

    @Option(names = "--batch-sequences", defaultValue = "32", description = "Sequences per forward pass (default: ${DEFAULT-VALUE}).")
    int batchSequences;

    @Option(names = "--shard-sequences", defaultValue = "256", description = "Sequences per shard file, one Spark task each (default: ${DEFAULT-VALUE}).")
    int shardSequences;

    @Option(names = "--shuffle", description = "Row order: none; shards (sequences spread over shards by a seeded hash, rows "
            + "shuffled within each shard; the default when only --shuffle-seed is given); global (every row's position a seeded "
            + "uniform permutation of the whole cache, by Spark's shuffle).")
    String shuffle;

    @Option(names = "--shuffle-seed", description = "Seed of the shuffle (default 0). Alone, it means --shuffle shards, as it always has.")
    Long shuffleSeed;

    @Option(names = "--skip-bos", description = "Leave out position 0 when it is the BOS token.")
    boolean skipBos;

    @Option(names = "--skip-special", description = "Leave out BOS and document-separator tokens at every position.")
    boolean skipSpecial;

    @Option(names = "--out", required = true, description = "Output directory for the activation cache.")
    String out;

    @Option(names = "--overwrite", description = "Replace an existing complete cache, or discard an interrupted run with other settings.")
    boolean overwrite;

    @Option(names = "--master", description = "Spark master (default: spark-submit's, else local[*]).")
    String master;

    @Override
    public Integer call() {
        DType storage = DType.parse(dtype);
        CacheJob.Options options = new CacheJob.Options(model, tokens, hooks, storage, batchSequences, shardSequences,
                shuffleSeed, skipBos, skipSpecial, out, overwrite, CacheJob.Fault.NONE, -1, 0,
                shuffle == null ? null : CacheJob.Shuffle.parse(shuffle));
        SparkSession spark = SparkSessions.create("spindle cache", master);
        try {
            CacheJob.Result result = CacheJob.run(spark, options);
            ActivationManifest m = result.manifest();
            System.out.printf(Locale.ROOT, "activation cache %s: %,d tokens x %d hooks (%s) in %d shards; "
                            + "%,.0f tokens/s, %.1f%% of task time encoding and writing Parquet%n",
                    out, m.tokenCount(), m.hooks().size(), m.dtype(), m.shards().size(), result.tokensPerSecond(),
                    100 * result.writeShare());
            return 0;
        } finally {
            spark.stop();
        }
    }
}
