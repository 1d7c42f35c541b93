package jobs.pipeline;

import activations.table.ActivationManifest;
import activations.table.ActivationTableReader;
import activations.table.TokenTableManifest;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import jobs.spark.SparkTestSession;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import training.clt.SmallShapes;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.FloatBuffer;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The pipeline: every stage once, nothing recomputed on a second run, bad configuration refused up front. */
class PipelineJobTest {

    static SparkSession spark;

    @BeforeAll
    static void start() {
        SmallShapes.singleThreaded();
        spark = SparkTestSession.start();
    }

    @AfterAll
    static void stop() {
        spark.stop();
        SmallShapes.restore();
    }

    static Config conf(Path dir) throws Exception {
        Path corpus = dir.resolve("corpus.txt");
        Files.write(corpus, Files.readAllLines(Path.of("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt")).subList(0, 60));
        return everyStage(corpus.toString(), dir.resolve("out").toString());
    }

    @Test
    void runsEveryStageOnceAndSkipsCompleteStagesOnTheNextRun(@TempDir Path dir) throws Exception {
        PipelineJob.Plan plan = PipelineJob.plan(conf(dir), "test");
        ByteArrayOutputStream first = new ByteArrayOutputStream();
        Map<String, Object> summary = PipelineJob.run(spark, plan, new PrintStream(first, true, StandardCharsets.UTF_8));
        Path out = dir.resolve("out");
        for (String file : new String[] {"tokens/_manifest.json", "activations/_manifest.json", "dictionaries/sae/cfg.json",
                "dictionaries/clt/config.yaml", "evaluations/sae/evaluation.json", "evaluations/clt/evaluation.json",
                "features/sae/dashboard/index.html", "summary.json"}) {
            assertTrue(Files.exists(out.resolve(file)), file);
        }
        assertEquals(7, ((Map<?, ?>) summary.get("stage_seconds")).size(), "tokenize, cache, 2 trainings, 2 evaluations, features");
        assertEquals(5L, activations.table.ActivationManifest.read(new org.apache.hadoop.conf.Configuration(),
                new org.apache.hadoop.fs.Path(out.resolve("activations").toString())).shuffleSeed(), "shuffle = global, seed 5");
        String index = Files.readString(out.resolve("features/sae/dashboard/index.html"));
        assertTrue(index.contains("[\"reconstruction.fvu\",") && index.contains("evaluations/sae/evaluation.json"),
                "the SAE's evaluation is on its dashboard");

        ByteArrayOutputStream second = new ByteArrayOutputStream();
        Map<String, Object> again = PipelineJob.run(spark, plan, new PrintStream(second, true, StandardCharsets.UTF_8));
        assertTrue(((Map<?, ?>) again.get("stage_seconds")).isEmpty(), "a second run recomputes nothing");
        assertEquals(7, second.toString(StandardCharsets.UTF_8).split("skipped", -1).length - 1, second.toString(StandardCharsets.UTF_8));
    }

    static Config nightly(Path dir, Path corpus, String date) {
        return night(corpus.toString(), dir.resolve("out").toString(), date);
    }

    /** A dated incremental night: one small SAE, the two newest runs kept. */
    static Config night(String corpus, String out, String date) {
        return ConfigFactory.parseString("""
                corpus = "%s"
                out = "%s"
                run-date = "%s"
                incremental = true
                keep-runs = 2
                context-size = 32
                shard-sequences = 8
                evaluate-sequences = 4
                feature-top-k = 3
                feature-context = 2
                saes = [{ name = sae, hook = "blocks.1.hook_resid_post", architecture = topk, k = 4, d-sae = 32,
                          batch-tokens = 128, tokens = 1280, checkpoint-every = 5, normalization-batches = 1 }]
                """.formatted(corpus, out, date));
    }

    /** Every stage: tokenize, cache (globally shuffled), a TopK SAE and a 2-layer CLT, evaluations, features. */
    static Config everyStage(String corpus, String out) {
        return ConfigFactory.parseString("""
                corpus = "%s"
                out = "%s"
                context-size = 32
                shard-sequences = 8
                shuffle = global
                shuffle-seed = 5
                evaluate-sequences = 4
                feature-top-k = 3
                feature-context = 2
                saes = [{ name = sae, hook = "blocks.1.hook_resid_post", architecture = topk, k = 4, d-sae = 32,
                          batch-tokens = 128, tokens = 1280, checkpoint-every = 5, normalization-batches = 1 }]
                clts = [{ name = clt, layers = 2, features-per-layer = 16, batch-tokens = 128, tokens = 640,
                          checkpoint-every = 5 }]
                """.formatted(corpus, out));
    }

    @Test
    void nightlyRunsCacheEachCorpusFileOnceTrainOnEverythingAndKeepTheNewestRuns(@TempDir Path dir) throws Exception {
        List<String> lines = Files.readAllLines(Path.of("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt"));
        Path corpus = Files.createDirectories(dir.resolve("corpus"));
        Files.write(corpus.resolve("day1.txt"), lines.subList(0, 40));
        Path out = dir.resolve("out");
        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);

        Map<String, Object> first = PipelineJob.run(spark, PipelineJob.plan(nightly(dir, corpus, "2026-11-20"), "test"), quiet);
        assertTrue(Files.exists(out.resolve("runs/2026-11-20/dictionaries/sae/cfg.json")));
        assertTrue(Files.exists(out.resolve("runs/2026-11-20/summary.json")));
        ActivationManifest night1 = ActivationManifest.read(hadoop, new org.apache.hadoop.fs.Path(out.resolve("cache/activations").toString()));
        Path dayOneShard = out.resolve("cache/activations").resolve(night1.shards().get(0).file());
        long dayOneModified = Files.getLastModifiedTime(dayOneShard).toMillis();
        assertEquals(1, ((Map<?, ?>) first.get("cache")).get("corpus_files"));
        assertEquals(1, ((Map<?, ?>) first.get("cache")).get("new_corpus_files"));

        // The same night again: nothing recomputed, nothing added.
        Map<String, Object> again = PipelineJob.run(spark, PipelineJob.plan(nightly(dir, corpus, "2026-11-20"), "test"), quiet);
        assertTrue(((Map<?, ?>) again.get("stage_seconds")).isEmpty(), "the same night twice recomputes nothing");
        assertEquals(night1.tokenCount(), ActivationManifest.read(hadoop,
                new org.apache.hadoop.fs.Path(out.resolve("cache/activations").toString())).tokenCount(), "no duplicate rows");

        // A new corpus file arrives: only it is tokenized and cached; the night trains on both files.
        Files.write(corpus.resolve("day2.txt"), lines.subList(40, 80));
        Map<String, Object> second = PipelineJob.run(spark, PipelineJob.plan(nightly(dir, corpus, "2026-11-21"), "test"), quiet);
        assertEquals(2, ((Map<?, ?>) second.get("cache")).get("corpus_files"));
        assertEquals(1, ((Map<?, ?>) second.get("cache")).get("new_corpus_files"));
        assertEquals(dayOneModified, Files.getLastModifiedTime(dayOneShard).toMillis(), "day 1's cache is not rewritten");
        org.apache.hadoop.fs.Path accumulated = new org.apache.hadoop.fs.Path(out.resolve("cache/activations").toString());
        ActivationManifest night2 = ActivationManifest.read(hadoop, accumulated);
        ActivationManifest dayTwo = ActivationManifest.read(hadoop, new org.apache.hadoop.fs.Path(
                out.resolve("cache/activations/parts/00001-day2.txt").toString()));
        assertEquals(night1.tokenCount() + dayTwo.tokenCount(), night2.tokenCount());
        assertEquals(night1.statistics().get("blocks.1.hook_resid_post").count() + dayTwo.statistics().get("blocks.1.hook_resid_post").count(),
                night2.statistics().get("blocks.1.hook_resid_post").count(), "statistics merged over both files");
        assertAccumulatedReadsBothParts(hadoop, accumulated, night1.tokenCount(), new org.apache.hadoop.fs.Path(
                out.resolve("cache/activations/parts/00001-day2.txt").toString()));
        TokenTableManifest tokens = TokenTableManifest.read(hadoop, new org.apache.hadoop.fs.Path(out.resolve("cache/tokens").toString()));
        assertEquals(2, tokens.parts().size());
        assertEquals(1L << 32, tokens.parts().get(1).firstSeqId(), "day 2's sequences have their own ids");
        long distinct = spark.read().parquet(tokens.dataPaths(new org.apache.hadoop.fs.Path(out.resolve("cache/tokens").toString())))
                .select("seq_id").distinct().count();
        assertEquals(tokens.sequences(), distinct, "seq ids are unique over the accumulated table");
        assertTrue(Files.exists(out.resolve("runs/2026-11-21/features/sae/dashboard/index.html")));
        assertFalse(first.containsKey("drift"), "the first night has nothing to compare with");
        Map<?, ?> drift = (Map<?, ?>) ((Map<?, ?>) second.get("drift")).get("sae");
        assertEquals("2026-11-20", drift.get("since"));
        assertTrue(Files.exists(out.resolve("runs/2026-11-21/drift/sae/drift.json")));
        assertTrue(Files.readString(out.resolve("runs/2026-11-21/features/sae/dashboard/index.html")).contains("drift.html"),
                "the night's dashboard links its drift page");
        assertTrue(Files.exists(out.resolve("runs/2026-11-21/features/sae/dashboard/drift.html")));

        // A third night with no new file: the cache stage is skipped, and the oldest run goes (keep-runs = 2).
        Map<String, Object> third = PipelineJob.run(spark, PipelineJob.plan(nightly(dir, corpus, "2026-11-22"), "test"), quiet);
        assertFalse(((Map<?, ?>) third.get("stage_seconds")).keySet().stream().anyMatch(k -> k.toString().startsWith("cache")));
        assertEquals(List.of("2026-11-20"), third.get("pruned_runs"));
        // Same accumulated cache, same seed: the same dictionary, so every feature matches.
        Map<?, ?> unchanged = (Map<?, ?>) ((Map<?, ?>) third.get("drift")).get("sae");
        assertEquals("2026-11-21", unchanged.get("since"));
        assertEquals(1.0, ((Number) unchanged.get("matched_share")).doubleValue(), 1e-12);
        assertEquals(0, unchanged.get("new_features"));
        assertEquals(0, unchanged.get("vanished_features"));
        assertEquals(List.of("2026-11-21", "2026-11-22"), RunRetention.runs(new org.apache.hadoop.conf.Configuration(), new org.apache.hadoop.fs.Path(out.resolve("runs").toString())));
        assertTrue(Files.exists(out.resolve("cache/activations/_manifest.json")), "retention never touches the cache");

        // A cached corpus file that changed is refused before any work.
        Files.write(corpus.resolve("day1.txt"), lines.subList(0, 45));
        var changed = assertThrows(IllegalArgumentException.class,
                () -> PipelineJob.run(spark, PipelineJob.plan(nightly(dir, corpus, "2026-11-23"), "test"), quiet));
        assertTrue(changed.getMessage().contains("day1.txt changed since it was cached"), changed.getMessage());
        assertFalse(Files.exists(out.resolve("runs/2026-11-23")), "nothing written for the refused night");
    }

    /** Reading the accumulated cache gives day 1's rows, then exactly day 2's. */
    private static void assertAccumulatedReadsBothParts(Configuration hadoop, org.apache.hadoop.fs.Path accumulated, long dayOneRows,
                                                        org.apache.hadoop.fs.Path dayTwo) {
        String hook = "blocks.1.hook_resid_post";
        try (ActivationTableReader all = ActivationTableReader.open(hadoop, accumulated, List.of(hook));
             ActivationTableReader second = ActivationTableReader.open(hadoop, dayTwo, List.of(hook))) {
            int d = all.dims()[0];
            all.skip(dayOneRows);
            FloatBuffer[] a = {FloatBuffer.allocate(16 * d)};
            FloatBuffer[] b = {FloatBuffer.allocate(16 * d)};
            assertEquals(16, all.read(a, 16));
            assertEquals(16, second.read(b, 16));
            assertArrayEquals(b[0].array(), a[0].array());
        }
    }

    @Test
    void theShippedPipelineConfigurationsAreValid() {
        for (String file : List.of("conf/demo.conf", "conf/gpt2-small-gpu.conf")) {
            Config shipped = ConfigFactory.parseFile(Path.of(file).toFile());
            // The cluster example names paths of a cluster and runs with --date; every other key must plan as written.
            Config local = ConfigFactory.parseString("model = models/tinystories-656k, corpus = corpora, run-date = today").withFallback(shipped);
            PipelineJob.Plan plan = PipelineJob.plan(local, file);
            assertFalse(plan.dictionaries().isEmpty(), file);
        }
        PipelineJob.Plan gpu = PipelineJob.plan(ConfigFactory.parseString("model = models/tinystories-656k, corpus = corpora, run-date = today")
                .withFallback(ConfigFactory.parseFile(Path.of("conf/gpt2-small-gpu.conf").toFile())), "gpu");
        assertTrue(gpu.incremental());
        assertEquals(25, PipelineJob.hooks(gpu).size(), "one SAE hook and the MLP input and output of 12 layers");
    }

    @Test
    void badConfigurationIsRefusedBeforeAnyWork(@TempDir Path dir) throws Exception {
        Config good = conf(dir);
        var unknown = assertThrows(IllegalArgumentException.class,
                () -> PipelineJob.plan(ConfigFactory.parseString("contex-size = 64").withFallback(good), "test.conf"));
        assertTrue(unknown.getMessage().contains("unknown key 'contex-size'") && unknown.getMessage().contains("did you mean 'context-size'?"),
                unknown.getMessage());
        var type = assertThrows(IllegalArgumentException.class,
                () -> PipelineJob.plan(ConfigFactory.parseString("context-size = big").withFallback(good), "test.conf"));
        assertTrue(type.getMessage().contains("context-size"), type.getMessage());
        var model = assertThrows(IllegalArgumentException.class,
                () -> PipelineJob.plan(ConfigFactory.parseString("model = nowhere").withFallback(good), "test.conf"));
        assertTrue(model.getMessage().contains("model nowhere is not a directory"), model.getMessage());
        var saeKey = assertThrows(IllegalArgumentException.class, () -> PipelineJob.plan(ConfigFactory.parseString(
                "saes = [{ name = a, hook = \"blocks.0.hook_resid_post\", d-sea = 8 }]").withFallback(good), "test.conf"));
        assertTrue(saeKey.getMessage().contains("did you mean 'd-sae'?"), saeKey.getMessage());
        var split = assertThrows(IllegalArgumentException.class,
                () -> PipelineJob.plan(ConfigFactory.parseString("split = paragrahp").withFallback(good), "test.conf"));
        assertTrue(split.getMessage().contains("split paragrahp is not one of: line, blank-line"), split.getMessage());
        var dtype = assertThrows(IllegalArgumentException.class,
                () -> PipelineJob.plan(ConfigFactory.parseString("dtype = int32").withFallback(good), "test.conf"));
        assertTrue(dtype.getMessage().contains("bfloat16, float16 or float32"), dtype.getMessage());
        var shuffle = assertThrows(IllegalArgumentException.class,
                () -> PipelineJob.plan(ConfigFactory.parseString("shuffle = globl").withFallback(good), "test.conf"));
        assertTrue(shuffle.getMessage().contains("unknown shuffle 'globl'; use none, shards or global"), shuffle.getMessage());
        var incremental = assertThrows(IllegalArgumentException.class,
                () -> PipelineJob.plan(ConfigFactory.parseString("incremental = true").withFallback(good), "test.conf"));
        assertTrue(incremental.getMessage().contains("needs a run date"), incremental.getMessage());
        var date = assertThrows(IllegalArgumentException.class,
                () -> PipelineJob.plan(ConfigFactory.parseString("run-date = yesterday").withFallback(good), "test.conf"));
        assertTrue(date.getMessage().contains("use YYYY-MM-DD or today"), date.getMessage());
        assertFalse(Files.exists(dir.resolve("out")), "nothing written");
    }
}
