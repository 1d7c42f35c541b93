package jobs.evaluate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import jobs.cli.Spindle;
import jobs.spark.SparkTestSession;
import jobs.tokenize.TokenizeJob;
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
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class EvaluateJobTest {

    static final String MODEL = "models/tinystories-656k";
    static final String HOOK = "blocks.0.hook_resid_post";
    static SparkSession spark;
    static Path work;
    static Path tokens;

    @BeforeAll
    static void start(@TempDir Path dir) throws Exception {
        spark = SparkTestSession.start();
        work = dir;
        Path corpus = dir.resolve("corpus.txt");
        Files.write(corpus, Files.readAllLines(Path.of("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt")).subList(0, 30));
        tokens = dir.resolve("tokens");
        TokenizeJob.run(spark, new TokenizeJob.Options(MODEL, corpus.toString(), TokenizeJob.InputFormat.TEXT,
                TokenizeJob.TextSplit.LINE, "text", 32, false, null, false, tokens.toString(), false));
    }

    @AfterAll
    static void stop() {
        spark.stop();
    }

    static EvaluateJob.Result evaluate(Path dictionary, String out) {
        return EvaluateJob.run(spark, new EvaluateJob.Options(dictionary.toString(), MODEL, tokens.toString(), 6, 4,
                work.resolve(out).toString(), false));
    }

    @Test
    void anExactDictionaryLosesNothingAndAZeroDictionaryIsZeroAblation() throws Exception {
        EvaluateJob.Result exact = evaluate(DictionaryFixtures.identity(work.resolve("identity"), HOOK, 128), "eval-identity");
        assertEquals(6 * 32, exact.statistics().tokens);
        assertEquals(6 * 31, exact.loss().positions);
        assertEquals(0.0, exact.statistics().fvu());
        assertEquals(0.0, exact.statistics().mse());
        assertEquals(1.0, exact.statistics().cosineSimilarity(), 1e-12);
        assertEquals(exact.loss().clean(), exact.loss().spliced());
        assertEquals(1.0, exact.loss().ceScore());
        assertEquals(0.0, exact.loss().kl(), 1e-12);
        assertTrue(exact.loss().zeroAblated() > exact.loss().clean() + 0.1, "ablating the residual stream hurts");
        // Every position has some nonzero coordinate, each coordinate fires as relu(x) or relu(-x): L0 = d minus zeros.
        assertTrue(exact.statistics().l0() > 100 && exact.statistics().l0() <= 128);

        EvaluateJob.Result zero = evaluate(DictionaryFixtures.zero(work.resolve("zero"), HOOK, 128), "eval-zero");
        assertEquals(zero.loss().zeroAblated(), zero.loss().spliced());
        assertEquals(0.0, zero.loss().ceScore());
        // A zero reconstruction misses the mean too: FVU = 1 + n||mean||^2 / sum||x - mean||^2 > 1.
        assertTrue(zero.statistics().fvu() > 1, "fvu " + zero.statistics().fvu());
        assertEquals(4, zero.statistics().deadFeatures());
        assertEquals(0.0, zero.statistics().l0());
        assertEquals(exact.loss().clean(), zero.loss().clean(), 1e-9, "same held-out sequences");

        JsonNode json = new ObjectMapper().readTree(work.resolve("eval-identity/evaluation.json").toFile());
        assertEquals(1.0, json.at("/downstream/ce_score").asDouble());
        assertEquals(0.0, json.at("/reconstruction/fvu").asDouble());
        assertTrue(Files.size(work.resolve("eval-identity/feature_density.png")) > 1000);
    }

    @Test
    void fvuIsAgainstTheMeanAndTrainingCurvesArePlottedFromMetrics() throws Exception {
        // Reconstruction = relu(x) only: error = relu(-x); check FVU against a direct computation.
        Path dir = work.resolve("half");
        int d = 128;
        float[] wEnc = new float[d * d];
        float[] wDec = new float[d * d];
        for (int i = 0; i < d; i++) {
            wEnc[i * d + i] = 1;
            wDec[i * d + i] = 1;
        }
        DictionaryFixtures.write(dir, HOOK, d, d, wEnc, wDec);
        Files.writeString(dir.resolve("metrics.jsonl"), "{\"step\":10,\"l0\":30,\"fvu\":0.5}\n{\"step\":20,\"l0\":20,\"fvu\":0.3}\n");
        EvaluateJob.Result r = evaluate(dir, "eval-half");
        // Independent check on the driver: same sequences through the model.
        activations.model.TransformerModel model = activations.model.TransformerModel.load(Path.of(MODEL));
        List<org.apache.spark.sql.Row> rows = spark.read().parquet(tokens.toString()).orderBy(org.apache.spark.sql.functions.col("seq_id").desc())
                .limit(6).collectAsList();
        double err = 0;
        double[] sum = new double[d];
        double sq = 0;
        long n = 0;
        for (org.apache.spark.sql.Row row : rows) {
            int[] ids = row.<Integer>getList(1).stream().mapToInt(Integer::intValue).toArray();
            float[] x = model.forward(new int[][] {ids}, activations.hooks.ForwardRequest.capture(
                    activations.hooks.HookPoint.parse(HOOK, model.config()))).get(activations.hooks.HookPoint.parse(HOOK, model.config()));
            for (int i = 0; i < x.length; i++) {
                err += x[i] < 0 ? (double) x[i] * x[i] : 0;
                sum[i % d] += x[i];
                sq += (double) x[i] * x[i];
            }
            n += ids.length;
        }
        double centered = sq;
        for (double s : sum) {
            centered -= s * s / n;
        }
        // Batched and single-sequence forwards differ in float summation order only.
        assertEquals(err / centered, r.statistics().fvu(), 1e-6 * err / centered);
        assertTrue(Files.size(work.resolve("eval-half/training_l0.png")) > 1000);
        assertTrue(Files.size(work.resolve("eval-half/training_fvu.png")) > 1000);
    }

    @Test
    void aDictionaryForAnotherWidthIsRefusedInOneLine() {
        Path wrong = DictionaryFixtures.zero(work.resolve("wrong"), "blocks.0.mlp.hook_post", 128);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> evaluate(wrong, "eval-wrong"));
        assertTrue(e.getMessage().contains("width is 128") && e.getMessage().contains("blocks.0.mlp.hook_post"), e.getMessage());
        assertFalse(e.getMessage().contains("\n"));
        assertFalse(Files.exists(work.resolve("eval-wrong")));
        assertEquals(2, Spindle.run("evaluate", "--dictionary", wrong.toString(), "--model", MODEL, "--tokens", tokens.toString(),
                "--out", work.resolve("eval-wrong-cli").toString(), "--master", "local[1]"));
    }
}
