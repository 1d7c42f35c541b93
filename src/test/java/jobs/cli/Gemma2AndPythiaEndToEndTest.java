package jobs.cli;

import activations.safetensors.SafeTensors;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.ConfigFactory;
import jobs.bench.RandomCheckpoints;
import jobs.pipeline.PipelineJob;
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
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A tiny random Gemma-2 checkpoint (HF layout, GPT-2's tokenizer.json) through the real jobs in
 * local[2]: forward, then the pipeline (tokenize, cache, an SAE on hook_resid_post, a CLT reading
 * Gemma Scope's transcoder hooks mlp.hook_in / hook_mlp_out, the spliced-CE and replacement
 * evaluations, feature tables), then a per-layer transcoder with train-sae on the same cache; and
 * a random Pythia-shaped checkpoint through forward.
 */
class Gemma2AndPythiaEndToEndTest {

    static SparkSession spark;
    static Path model;

    @BeforeAll
    static void start(@TempDir Path dir) {
        SmallShapes.singleThreaded();
        spark = SparkTestSession.start();
        model = RandomCheckpoints.gemma2(dir.resolve("gemma2-random"),
                new RandomCheckpoints.Shape(2, 32, 4, 2, 16, 64, 50257, 256), Path.of("models/tokenizers/gpt2"));
    }

    @AfterAll
    static void stop() {
        spark.stop();
        SmallShapes.restore();
    }

    /** GPT-NeoX from the command line: forward writes its hooks; a hook it lacks is one line, exit 2. */
    @Test
    void forwardOnAPythiaShapedCheckpoint(@TempDir Path dir) throws Exception {
        Path pythia = RandomCheckpoints.gptNeox(dir.resolve("pythia-random"),
                new RandomCheckpoints.Shape(2, 32, 4, 4, 8, 128, 50257, 256), Path.of("models/tokenizers/gpt2"));
        Path out = dir.resolve("forward.safetensors");
        CliRun ok = CliRun.spindle("forward", "--model", pythia.toString(), "--text", "Once upon a time",
                "--hooks", "blocks.1.mlp.hook_in,blocks.1.hook_attn_out", "--out", out.toString());
        assertEquals(0, ok.exitCode(), ok.err());
        try (SafeTensors st = SafeTensors.open(out)) {
            assertTrue(st.contains("blocks.1.mlp.hook_in") && st.contains("logits"));
        }
        CliRun missing = CliRun.spindle("forward", "--model", pythia.toString(), "--text", "Once upon a time",
                "--hooks", "blocks.1.hook_resid_mid", "--out", dir.resolve("nothing.safetensors").toString());
        assertEquals(2, missing.exitCode(), missing.err());
        assertTrue(missing.err().contains("parallel residual") && missing.err().strip().lines().count() == 1, missing.err());
        assertTrue(!Files.exists(dir.resolve("nothing.safetensors")));
    }

    @Test
    void forwardPipelineAndTranscoderRunOnAGemma2Checkpoint(@TempDir Path dir) throws Exception {
        Path forwardOut = dir.resolve("forward.safetensors");
        CliRun forward = CliRun.spindle("forward", "--model", model.toString(), "--text", "Once upon a time there was",
                "--hooks", "blocks.1.mlp.hook_in,blocks.1.hook_mlp_out,blocks.0.ln1_post.hook_normalized", "--out", forwardOut.toString());
        assertEquals(0, forward.exitCode(), forward.err());
        try (SafeTensors st = SafeTensors.open(forwardOut)) {
            for (String name : new String[] {"blocks.1.mlp.hook_in", "blocks.1.hook_mlp_out", "blocks.0.ln1_post.hook_normalized", "logits"}) {
                assertTrue(st.contains(name), name);
            }
            for (float logit : st.floats("logits")) {
                assertTrue(Math.abs(logit) <= 30f, "final_logit_softcapping 30 bounds every logit: " + logit);
            }
        }

        Path corpus = dir.resolve("corpus.txt");
        Files.write(corpus, Files.readAllLines(Path.of("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt")).subList(0, 40));
        Path out = dir.resolve("out");
        PipelineJob.Plan plan = PipelineJob.plan(ConfigFactory.parseString("""
                model = "%s"
                corpus = "%s"
                out = "%s"
                context-size = 32
                shard-sequences = 8
                evaluate-sequences = 4
                feature-top-k = 3
                feature-context = 2
                saes = [{ name = sae, hook = "blocks.1.hook_resid_post", architecture = topk, k = 4, d-sae = 32,
                          batch-tokens = 128, tokens = 1280, checkpoint-every = 5, normalization-batches = 1 }]
                clts = [{ name = clt, layers = 2, hook-in = "mlp.hook_in", features-per-layer = 16, batch-tokens = 128,
                          tokens = 640, checkpoint-every = 5 }]
                """.formatted(model, corpus, out)), "test");
        Map<String, Object> summary = PipelineJob.run(spark, plan, new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8));
        for (String file : new String[] {"activations/_manifest.json", "dictionaries/sae/cfg.json", "dictionaries/clt/config.yaml",
                "evaluations/sae/evaluation.json", "evaluations/clt/evaluation.json", "features/sae/dashboard/index.html"}) {
            assertTrue(Files.exists(out.resolve(file)), file);
        }
        assertEquals(7, ((Map<?, ?>) summary.get("stage_seconds")).size(), summary.toString());
        JsonNode evaluation = new ObjectMapper().readTree(out.resolve("evaluations/sae/evaluation.json").toFile());
        String text = evaluation.toString();
        assertTrue(text.contains("\"ce_score\"") && text.contains("\"ce_clean\""), text);
        double ceClean = evaluation.findValue("ce_clean").asDouble();
        // A random model over GPT-2's vocabulary predicts about uniformly: CE near ln(50257) = 10.8.
        assertTrue(ceClean > 9 && ceClean < 12.5, "clean CE " + ceClean);
        assertTrue(Double.isFinite(evaluation.findValue("ce_score").asDouble()), text);
        String config = Files.readString(out.resolve("dictionaries/clt/config.yaml"));
        assertTrue(config.contains("mlp.hook_in") && config.contains("hook_mlp_out"), config);

        Path transcoder = dir.resolve("transcoder");
        CliRun train = CliRun.spindle("train-sae", "--activations", out.resolve("activations").toString(),
                "--hook-in", "blocks.0.mlp.hook_in", "--hook-out", "blocks.0.hook_mlp_out", "--arch", "relu", "--d-sae", "16",
                "--batch-tokens", "128", "--tokens", "640", "--out", transcoder.toString(),
                "--set", "checkpoint-every=5", "--set", "normalization-batches=1");
        assertEquals(0, train.exitCode(), train.err());
        String cfg = Files.readString(transcoder.resolve("cfg.json"));
        assertTrue(cfg.contains("blocks.0.mlp.hook_in") && cfg.contains("blocks.0.hook_mlp_out"), cfg);
    }
}
