package jobs.bench;

import activations.safetensors.DType;
import jobs.cache.CacheJob;
import jobs.spark.SparkSessions;
import jobs.tokenize.TokenizeJob;
import org.apache.spark.sql.SparkSession;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The caching stage as users run it (Spark local mode, the real job): how much of the task time
 * goes to encoding and writing Parquet, and how tokens/s scale from local[1] to local[2].
 */
final class CacheBenchmark {

    record Figures(Figure writeShare, Figure scaling) {
    }

    private CacheBenchmark() {
    }

    static Figures run(Path work, Path modelDir, Path corpus, int corpusLines, int context, int layers) {
        try {
            Files.createDirectories(work);
            Path text = work.resolve("corpus.txt");
            List<String> lines = Files.readAllLines(corpus);
            Files.write(text, lines.subList(0, Math.min(corpusLines, lines.size())));
            List<String> hooks = new ArrayList<>();
            for (int l = 0; l < layers; l++) {
                hooks.add("blocks." + l + ".hook_resid_post");
            }
            Path tokens = work.resolve("tokens");
            SparkSession two = SparkSessions.create("spindle bench", "local[2]");
            CacheJob.Result parallel;
            try {
                TokenizeJob.run(two, new TokenizeJob.Options(modelDir.toString(), text.toString(), TokenizeJob.InputFormat.TEXT,
                        TokenizeJob.TextSplit.LINE, "text", context, false, null, false, tokens.toString(), false));
                cache(two, modelDir, tokens, hooks, work.resolve("warm-up"), 4); // loads the model, JIT
                parallel = cache(two, modelDir, tokens, hooks, work.resolve("local2"), 4);
            } finally {
                two.stop();
            }
            SparkSession one = SparkSessions.create("spindle bench", "local[1]");
            CacheJob.Result serial;
            try {
                serial = cache(one, modelDir, tokens, hooks, work.resolve("local1"), 4);
            } finally {
                one.stop();
            }
            Map<String, Object> write = new LinkedHashMap<>();
            write.put("hooks", hooks.size() + " x resid_post, bfloat16");
            write.put("tokens", parallel.computedRows());
            write.put("tokens_per_second_local2", parallel.tokensPerSecond());
            write.put("forward_seconds", parallel.forwardSeconds());
            write.put("write_seconds", parallel.writeSeconds());
            write.put("task_seconds", parallel.taskSeconds());
            Map<String, Object> scale = new LinkedHashMap<>();
            scale.put("tokens_per_second_local1", serial.tokensPerSecond());
            scale.put("tokens_per_second_local2", parallel.tokensPerSecond());
            return new Figures(Figure.atMost("cache_write_share", parallel.writeShare(), 0.15, write),
                    Figure.atLeast("spark_scaling", parallel.tokensPerSecond() / serial.tokensPerSecond(), 1.7, scale));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * {@code global_shuffle_cost}: the extra wall time of {@code --shuffle global} over the same cache
     * stage without it, as a ratio to the latter: (global - none) / none, both the real job in
     * local[2] on the same token table of at least {@code rows} rows (the corpus repeated as needed).
     */
    static Figure globalShuffleCost(Path work, Path modelDir, Path corpus, long rows, int context, int layers) {
        try {
            Files.createDirectories(work);
            List<String> lines = Files.readAllLines(corpus);
            List<String> hooks = new ArrayList<>();
            for (int l = 0; l < layers; l++) {
                hooks.add("blocks." + l + ".hook_resid_post");
            }
            SparkSession spark = SparkSessions.create("spindle bench", "local[2]");
            try {
                long sequencesWanted = (rows + context - 1) / context;
                Path tokens = null;
                long sequences = 0;
                for (int copies = 1; sequences < sequencesWanted; copies *= 2) {
                    Path text = work.resolve("corpus-" + copies + ".txt");
                    List<String> repeated = new ArrayList<>();
                    for (int c = 0; c < copies; c++) {
                        repeated.addAll(lines);
                    }
                    Files.write(text, repeated);
                    tokens = work.resolve("tokens-" + copies);
                    sequences = TokenizeJob.run(spark, new TokenizeJob.Options(modelDir.toString(), text.toString(),
                            TokenizeJob.InputFormat.TEXT, TokenizeJob.TextSplit.LINE, "text", context, false, null, false,
                            tokens.toString(), false)).sequences();
                }
                long heldOut = sequences - sequencesWanted;
                int batch = 8;
                int shard = 64;
                CacheJob.Options base = new CacheJob.Options(modelDir.toString(), tokens.toString(), hooks, DType.BF16, batch, shard,
                        null, false, false, work.resolve("none").toString(), true, CacheJob.Fault.NONE, -1, heldOut);
                // Warm-up: loads the model and JITs the forward pass, on a few sequences.
                CacheJob.run(spark, base.withHeldOut(sequences - 2L * batch).forPart(tokens.toString(), work.resolve("warm").toString()));
                CacheJob.Result none = CacheJob.run(spark, base);
                CacheJob.Result global = CacheJob.run(spark, base.withShuffle(CacheJob.Shuffle.GLOBAL, 1L)
                        .forPart(tokens.toString(), work.resolve("global").toString()));
                Map<String, Object> details = new LinkedHashMap<>();
                details.put("rows", none.manifest().tokenCount());
                details.put("hooks", hooks.size() + " x resid_post, d 768, bfloat16");
                details.put("shards", none.manifest().shards().size());
                details.put("cache_seconds_without", none.wallSeconds());
                details.put("cache_seconds_global", global.wallSeconds());
                details.put("shuffle_phase_seconds", global.shuffleSeconds());
                details.put("shuffle_phase_over_model_phase", global.shuffleSeconds() / (global.wallSeconds() - global.shuffleSeconds()));
                return Figure.atMost("global_shuffle_cost", (global.wallSeconds() - none.wallSeconds()) / none.wallSeconds(), 0.25,
                        details);
            } finally {
                spark.stop();
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static CacheJob.Result cache(SparkSession spark, Path model, Path tokens, List<String> hooks, Path out,
                                         int shardSequences) {
        return CacheJob.run(spark, new CacheJob.Options(model.toString(), tokens.toString(), hooks, DType.BF16,
                shardSequences, shardSequences, null, false, false, out.toString(), true, CacheJob.Fault.NONE, -1));
    }
}
