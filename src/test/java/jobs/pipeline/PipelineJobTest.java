package jobs.pipeline;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import jobs.spark.SparkTestSession;
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
import java.util.Map;

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
        return ConfigFactory.parseString("""
                corpus = "%s"
                out = "%s"
                context-size = 32
                shard-sequences = 8
                evaluate-sequences = 4
                feature-top-k = 3
                feature-context = 2
                saes = [{ name = sae, hook = "blocks.1.hook_resid_post", architecture = topk, k = 4, d-sae = 32,
                          batch-tokens = 128, tokens = 1280, checkpoint-every = 5, normalization-batches = 1 }]
                clts = [{ name = clt, layers = 2, features-per-layer = 16, batch-tokens = 128, tokens = 640,
                          checkpoint-every = 5 }]
                """.formatted(corpus, dir.resolve("out")));
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

        ByteArrayOutputStream second = new ByteArrayOutputStream();
        Map<String, Object> again = PipelineJob.run(spark, plan, new PrintStream(second, true, StandardCharsets.UTF_8));
        assertTrue(((Map<?, ?>) again.get("stage_seconds")).isEmpty(), "a second run recomputes nothing");
        assertEquals(7, second.toString(StandardCharsets.UTF_8).split("skipped", -1).length - 1, second.toString(StandardCharsets.UTF_8));
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
        assertFalse(Files.exists(dir.resolve("out")), "nothing written");
    }
}
