package jobs.analysis;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.model.TransformerModel;
import activations.safetensors.SafeTensors;
import activations.tokenizer.TextTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import jobs.spark.SparkTestSession;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code spindle contrast} on local[2] against mean differences computed here from forward captures. */
class ContrastJobTest {

    static final String MODEL = "models/tinystories-656k";
    static final String[][] PAIRS = {
            {"Once upon a time, there was a", " happy", " sad"},
            {"Lily went to the park. She felt", " happy", " sad"},
            {"Tom saw a big dog and was", " glad", " scared"},
            {"The sun was warm and the birds were", " singing", " quiet"},
            {"Mom gave Ben a hug. He was", " happy", " angry"},
    };
    static final List<String> HOOKS = List.of("blocks.0.hook_resid_post", "blocks.1.hook_mlp_out");
    static SparkSession spark;

    @BeforeAll
    static void start() {
        spark = SparkTestSession.start();
    }

    @AfterAll
    static void stop() {
        spark.stop();
    }

    @Test
    void vectorsAreMeansOfLastTokenDifferences(@TempDir Path dir) throws IOException {
        Path pairs = dir.resolve("pairs.jsonl");
        StringBuilder lines = new StringBuilder();
        ObjectMapper json = new ObjectMapper();
        for (String[] p : PAIRS) {
            lines.append(json.writeValueAsString(java.util.Map.of("prompt", p[0], "positive", p[1], "negative", p[2]))).append('\n');
        }
        lines.append('\n'); // a trailing blank line is not a pair
        Files.writeString(pairs, lines.toString());
        double[][] expected = expectedVectors();
        int d = expected[0].length;
        Path sae = writeDictionary(dir.resolve("sae"), expected[0]);
        Path out = dir.resolve("contrast");
        ContrastJob.Result r = ContrastJob.run(spark, new ContrastJob.Options(MODEL, pairs.toUri().toString(), HOOKS,
                sae.toString(), true, out.toString(), false));
        assertEquals(PAIRS.length, r.pairs());

        try (SafeTensors st = SafeTensors.open(out.resolve("vectors.safetensors"))) {
            assertEquals(2, st.tensors().size());
            for (int h = 0; h < HOOKS.size(); h++) {
                float[] v = st.floats(HOOKS.get(h));
                assertArrayEquals(new long[] {d}, st.info(HOOKS.get(h)).shape());
                for (int i = 0; i < d; i++) {
                    assertEquals(expected[h][i], v[i], 1e-4, HOOKS.get(h) + "[" + i + "]");
                }
            }
        }
        JsonNode report = json.readTree(out.resolve("contrast.json").toFile());
        assertEquals(PAIRS.length, report.get("pairs").asInt());
        double norm = 0;
        for (double x : expected[0]) {
            norm += x * x;
        }
        assertEquals(Math.sqrt(norm), report.get("vectors").get(0).get("norm").asDouble(), 1e-4);
        // the dictionary's decoder row 3 is the blocks.0 vector itself (times 2), so it ranks first with cosine 1
        JsonNode top = report.get("dictionary").get("top_features");
        assertEquals(8, top.size()); // fewer features than 20
        assertEquals(3, top.get(0).get("index").asInt());
        assertEquals(1.0, top.get(0).get("cosine").asDouble(), 1e-5);
        assertTrue(top.get(1).get("cosine").asDouble() <= top.get(0).get("cosine").asDouble());
    }

    @Test
    void badPairsFilesAreOneLineErrors(@TempDir Path dir) throws IOException {
        Path empty = dir.resolve("empty.jsonl");
        Files.writeString(empty, "\n\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ContrastJob.run(spark,
                new ContrastJob.Options(MODEL, empty.toString(), HOOKS, null, true, dir.resolve("o").toString(), false)));
        assertTrue(e.getMessage().contains("has no pairs"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ContrastJob.run(spark,
                new ContrastJob.Options(MODEL, dir.resolve("none.jsonl").toString(), HOOKS, null, true, dir.resolve("o").toString(), false)));
        assertTrue(e.getMessage().contains("no such file"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ContrastJob.run(spark,
                new ContrastJob.Options(MODEL, empty.toString(), List.of("blocks.0.hook_resid"), null, true, dir.resolve("o").toString(), false)));
        assertTrue(e.getMessage().contains("unknown hook"), e.getMessage());
        Path malformed = dir.resolve("bad.jsonl");
        Files.writeString(malformed, "{\"prompt\": \"a\", \"positive\": \"b\", \"negative\": \"c\"}\n{\"prompt\": \"a\", \"positive\": \"b\"}\n");
        Exception spark = assertThrows(Exception.class, () -> ContrastJob.run(ContrastJobTest.spark,
                new ContrastJob.Options(MODEL, malformed.toString(), HOOKS, null, true, dir.resolve("o").toString(), false)));
        Throwable cause = spark;
        while (!(cause instanceof IllegalArgumentException) && cause.getCause() != null) {
            cause = cause.getCause();
        }
        assertTrue(cause.getMessage().contains("line 2 has no text field \"negative\""), cause.getMessage());
        assertFalse(Files.exists(dir.resolve("o")));
    }

    /** Per hook, the mean over pairs of the two texts' last-token values, straight from the model. */
    private static double[][] expectedVectors() {
        TransformerModel model = TransformerModel.load(Path.of(MODEL));
        List<HookPoint> hooks = HookPoint.parseAll(HOOKS, model.config());
        int d = model.config().dModel();
        double[][] expected = new double[hooks.size()][d];
        try (TextTokenizer tokenizer = TextTokenizer.load(Path.of(MODEL))) {
            for (String[] p : PAIRS) {
                int[] pos = tokenizer.encode(p[0] + p[1], true);
                int[] neg = tokenizer.encode(p[0] + p[2], true);
                ForwardResult a = model.forward(new int[][] {pos}, ForwardRequest.capture(hooks));
                ForwardResult b = model.forward(new int[][] {neg}, ForwardRequest.capture(hooks));
                for (int h = 0; h < hooks.size(); h++) {
                    float[] x = a.row(hooks.get(h), 0, pos.length - 1);
                    float[] y = b.row(hooks.get(h), 0, neg.length - 1);
                    for (int i = 0; i < d; i++) {
                        expected[h][i] += (x[i] - y[i]) / (double) PAIRS.length;
                    }
                }
            }
        }
        return expected;
    }

    /** A SAELens SAE on blocks.0.hook_resid_post with 8 random decoder rows, row 3 twice {@code vector}. */
    private static Path writeDictionary(Path dir, double[] vector) throws IOException {
        Files.createDirectories(dir);
        int d = vector.length;
        int features = 8;
        Files.writeString(dir.resolve("cfg.json"), "{\"architecture\": \"standard\", \"d_in\": " + d + ", \"d_sae\": " + features
                + ", \"normalize_activations\": \"none\", \"metadata\": {\"hook_name\": \"blocks.0.hook_resid_post\"}}");
        float[] target = new float[d];
        for (int i = 0; i < d; i++) {
            target[i] = (float) (2 * vector[i]);
        }
        Random r = new Random(8);
        float[] wEnc = new float[d * features];
        float[] wDec = new float[features * d];
        for (int i = 0; i < wEnc.length; i++) {
            wEnc[i] = (float) r.nextGaussian();
            wDec[i] = (float) r.nextGaussian();
        }
        System.arraycopy(target, 0, wDec, 3 * d, d);
        new activations.safetensors.SafeTensorsWriter().addF32("W_enc", wEnc, d, features).addF32("b_enc", new float[features], features)
                .addF32("W_dec", wDec, features, d).addF32("b_dec", new float[d], d).write(dir.resolve("sae_weights.safetensors"));
        return dir;
    }
}
