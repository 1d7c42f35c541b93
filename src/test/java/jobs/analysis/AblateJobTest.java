package jobs.analysis;

import activations.hooks.ForwardRequest;
import activations.hooks.HookPoint;
import activations.hooks.Intervention;
import activations.model.TransformerModel;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import jobs.evaluate.EvaluateJob;
import jobs.spark.SparkTestSession;
import jobs.tokenize.TokenizeJob;
import activations.table.TokenTableManifest;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import training.evaluation.DictionaryFixtures;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class AblateJobTest {

    static final String MODEL = "models/tinystories-656k";
    static final String HOOK = "blocks.0.hook_resid_post";
    static SparkSession spark;
    static Path work;
    static Path tokens;
    static int[][] held;

    @BeforeAll
    static void start(@TempDir Path dir) throws Exception {
        spark = SparkTestSession.start();
        work = dir;
        Path corpus = dir.resolve("corpus.txt");
        Files.write(corpus, Files.readAllLines(Path.of("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt")).subList(0, 30));
        tokens = dir.resolve("tokens");
        TokenizeJob.run(spark, new TokenizeJob.Options(MODEL, corpus.toString(), TokenizeJob.InputFormat.TEXT,
                TokenizeJob.TextSplit.LINE, "text", 32, false, null, false, tokens.toString(), false));
        List<Row> rows = EvaluateJob.lastSequences(spark, TokenTableManifest.read(spark.sparkContext().hadoopConfiguration(),
                new org.apache.hadoop.fs.Path(tokens.toString())), tokens.toString(), 6);
        held = rows.stream().map(r -> r.<Integer>getList(1).stream().mapToInt(Integer::intValue).toArray()).toArray(int[][]::new);
    }

    @AfterAll
    static void stop() {
        spark.stop();
    }

    static AblateJob.Result ablate(String mode, String dictionary, int[] features, long seed, String out) {
        return AblateJob.run(spark, new AblateJob.Options(MODEL, tokens.toString(), HOOK, mode, dictionary, features, 6, 4, seed,
                10, work.resolve(out).toString(), false));
    }

    /** Mean next-token CE over the held-out sequences with an optional intervention, computed here in double. */
    static double ce(Intervention intervention) {
        TransformerModel model = jobs.spark.ExecutorResources.model(MODEL);
        HookPoint logits = new HookPoint(HookPoint.Kind.LOGITS, -1);
        double sum = 0;
        int n = 0;
        int vocab = model.config().vocabSize();
        for (int[] seq : held) {
            ForwardRequest r = ForwardRequest.capture(logits);
            if (intervention != null) {
                r.intervene(HookPoint.parse(HOOK, model.config()), intervention);
            }
            float[] l = model.forward(new int[][]{seq}, r).get(logits);
            for (int t = 0; t + 1 < seq.length; t++) {
                double max = Double.NEGATIVE_INFINITY;
                for (int v = 0; v < vocab; v++) {
                    max = Math.max(max, l[t * vocab + v]);
                }
                double z = 0;
                for (int v = 0; v < vocab; v++) {
                    z += Math.exp(l[t * vocab + v] - max);
                }
                sum += max + Math.log(z) - l[t * vocab + seq[t + 1]];
                n++;
            }
        }
        return sum / n;
    }

    @Test
    void zeroAblationMatchesADirectForwardAndWritesTheContract() throws Exception {
        AblateJob.Result r = ablate("zero", null, null, 0, "zero");
        assertEquals(6 * 31, r.loss().positions);
        assertEquals(ce(null), r.loss().clean(), 1e-6);
        assertEquals(ce(Intervention.zero()), r.loss().ablated(), 1e-6);
        JsonNode json = new ObjectMapper().readTree(work.resolve("zero/ablation.json").toFile());
        assertEquals(r.loss().clean(), json.get("ce_clean").asDouble());
        assertEquals(r.loss().ablated(), json.get("ce_ablated").asDouble());
        assertTrue(json.get("ce_ablated").asDouble() > json.get("ce_clean").asDouble() + 0.5);
        JsonNode h = json.get("delta_histogram");
        long total = h.get("below").asLong() + h.get("above").asLong();
        for (JsonNode c : h.get("counts")) {
            total += c.asLong();
        }
        assertEquals(6 * 31, total);
        assertEquals(100, h.get("counts").size());
        assertTrue(Files.size(work.resolve("zero/ablation.png")) > 1000);

        IllegalArgumentException again = assertThrows(IllegalArgumentException.class, () -> ablate("zero", null, null, 0, "zero"));
        assertTrue(again.getMessage().contains("already holds a complete result"), again.getMessage());
    }

    @Test
    void resampleIsSeededAndAnSaeWithNoFeaturesRemovedLosesNothing() {
        double a = ablate("resample", null, null, 1, "resample-1").loss().ablated();
        double b = ablate("resample", null, null, 1, "resample-1b").loss().ablated();
        double c = ablate("resample", null, null, 2, "resample-2").loss().ablated();
        assertEquals(a, b, 1e-12, "same seed, same donors");
        assertNotEquals(a, c, 1e-9, "another seed, other donors");

        Path sae = DictionaryFixtures.identity(work.resolve("identity"), HOOK, 128);
        AblateJob.Result none = ablate("mean", sae.toString(), new int[0], 0, "sae-none");
        assertEquals(none.loss().clean(), none.loss().ablated(), 1e-12);
        // The identity SAE's features are relu(x_i) and relu(-x_i): removing all of them is zero ablation.
        int[] all = java.util.stream.IntStream.range(0, 256).toArray();
        AblateJob.Result everything = ablate("zero", sae.toString(), all, 0, "sae-all");
        assertEquals(ce(Intervention.zero()), everything.loss().ablated(), 1e-4);
    }

    @Test
    void meanAblationReplacesTheHookWithItsMeanOverTheSequences() {
        TransformerModel model = jobs.spark.ExecutorResources.model(MODEL);
        HookPoint hook = HookPoint.parse(HOOK, model.config());
        double[] mean = new double[128];
        long rows = 0;
        for (int[] seq : held) {
            float[] x = model.forward(new int[][]{seq}, ForwardRequest.capture(hook)).get(hook);
            for (int r = 0; r < seq.length; r++) {
                for (int i = 0; i < 128; i++) {
                    mean[i] += x[r * 128 + i];
                }
            }
            rows += seq.length;
        }
        float[] m = new float[128];
        for (int i = 0; i < 128; i++) {
            m[i] = (float) (mean[i] / rows);
        }
        Intervention toMean = (h, values, batch, seqLen, dim) -> {
            for (int r = 0; r < batch * seqLen; r++) {
                values.put(r * dim, m, 0, dim);
            }
        };
        assertEquals(ce(toMean), ablate("mean", null, null, 0, "mean").loss().ablated(), 1e-4);
    }

    @Test
    void badInputIsRefusedInOneLine() {
        assertEquals("unknown ablation mode 'half'; use zero, mean or resample",
                assertThrows(IllegalArgumentException.class, () -> ablate("half", null, null, 0, "bad")).getMessage());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> AblateJob.run(spark, new AblateJob.Options(MODEL,
                tokens.toString(), "blocks.0.hook_nothing", "zero", null, null, 6, 4, 0, 10, work.resolve("bad").toString(), false)))
                .getMessage().startsWith("unknown hook 'blocks.0.hook_nothing'"));
        Path sae = DictionaryFixtures.identity(work.resolve("identity-bad"), HOOK, 128);
        assertEquals("feature 256 is out of range: the dictionary has features 0..255", assertThrows(IllegalArgumentException.class,
                () -> ablate("zero", sae.toString(), new int[]{256}, 0, "bad")).getMessage());
        String missing = assertThrows(IllegalArgumentException.class, () -> AblateJob.run(spark, new AblateJob.Options(MODEL,
                work.resolve("no-such-table").toString(), HOOK, "zero", null, null, 6, 4, 0, 10, work.resolve("bad").toString(), false)))
                .getMessage();
        assertTrue(missing.contains("no-such-table"), missing);
        assertTrue(!Files.exists(work.resolve("bad")), "nothing written");
    }
}
