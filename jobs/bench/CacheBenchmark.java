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

    private static CacheJob.Result cache(SparkSession spark, Path model, Path tokens, List<String> hooks, Path out,
                                         int shardSequences) {
        return CacheJob.run(spark, new CacheJob.Options(model.toString(), tokens.toString(), hooks, DType.BF16,
                shardSequences, shardSequences, null, false, false, out.toString(), true, CacheJob.Fault.NONE, -1));
    }
}
