package jobs.cli;

import activations.hooks.ForwardRequest;
import activations.hooks.HookPoint;
import activations.hooks.Intervention;
import activations.model.TransformerModel;
import activations.safetensors.SafeTensors;
import activations.safetensors.SafeTensorsWriter;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code spindle lens}, {@code steer} and {@code patch} end to end on the bundled model, and their one-line errors. */
class AnalysisCommandsTest {

    static final String MODEL = "models/tinystories-656k";
    static final String PROMPT = "Once upon a time, there was a little girl named Lily. She";
    static final ObjectMapper JSON = new ObjectMapper();
    static TransformerModel model;

    @BeforeAll
    static void load() {
        model = TransformerModel.load(Path.of(MODEL));
    }

    @Test
    void lensWritesTheContractFiles(@TempDir Path dir) throws IOException {
        Path out = dir.resolve("lens");
        CliRun run = CliRun.spindle("lens", "--model", MODEL, "--text", PROMPT, "--out", out.toString());
        assertEquals(0, run.exitCode(), run.err());
        JsonNode dla = JSON.readTree(out.resolve("dla.json").toFile());
        // the bundled model's golden next token after this prompt is 315
        assertEquals(315, dla.get("target_id").asInt());
        assertEquals(10, dla.get("position").asInt());
        double sum = 0;
        for (JsonNode c : dla.get("components")) {
            sum += c.get("logit").asDouble();
        }
        assertEquals(5, dla.get("components").size());
        assertEquals(dla.get("logit").asDouble(), sum, 1e-4);
        try (SafeTensors st = SafeTensors.open(out.resolve("lens.safetensors"))) {
            assertArrayEquals(new long[] {2, 11, 2048}, st.info("logit_lens").shape());
        }
        assertTrue(Files.size(out.resolve("lens.png")) > 1000);

        CliRun again = CliRun.spindle("lens", "--model", MODEL, "--tokens", "1,80,147", "--target-id", "7", "--out", out.toString());
        assertEquals(2, again.exitCode());
        assertTrue(again.err().contains("--overwrite"), again.err());
        assertEquals(0, CliRun.spindle("lens", "--model", MODEL, "--tokens", "1,80,147", "--target-id", "7", "--overwrite",
                "--out", out.toString()).exitCode());
        assertEquals(7, JSON.readTree(out.resolve("dla.json").toFile()).get("target_id").asInt());
    }

    @Test
    void steerWithAFeatureMatchesRecomputedSteeredGreedy(@TempDir Path dir) throws IOException {
        Path sae = writeDictionary(dir.resolve("sae"), 6);
        Path out = dir.resolve("steer.json");
        CliRun run = CliRun.spindle("steer", "--model", MODEL, "--text", PROMPT, "--hook", "blocks.0.hook_resid_post",
                "--feature", sae + ":2", "--scale", "3", "--max-new-tokens", "12", "--out", out.toString());
        assertEquals(0, run.exitCode(), run.err());
        JsonNode json = JSON.readTree(out.toFile());
        int[] prompt = ints(json.get("prompt_ids"));
        assertEquals(1, prompt[0]);
        assertArrayEquals(model.greedy(prompt, 12, model.config().eosTokenId()), ints(json.get("baseline").get("ids")));
        // the independent path: recompute the whole prefix each step with W_dec[2] * 3 added
        float[] v = decoderRow(sae, 2);
        for (int i = 0; i < v.length; i++) {
            v[i] *= 3;
        }
        HookPoint hook = HookPoint.parse("blocks.0.hook_resid_post", model.config());
        HookPoint logits = HookPoint.parse("logits", model.config());
        int[] sequence = prompt;
        for (int expected : ints(json.get("steered").get("ids"))) {
            float[] l = model.forward(new int[][] {sequence}, ForwardRequest.capture(logits).intervene(hook, Intervention.addVector(v)))
                    .row(logits, 0, sequence.length - 1);
            assertEquals(TransformerModel.argmax(l), expected);
            sequence = Arrays.copyOf(sequence, sequence.length + 1);
            sequence[sequence.length - 1] = expected;
        }
        assertFalse(json.get("steered").get("text").asText().isEmpty());

        CliRun outOfRange = CliRun.spindle("steer", "--model", MODEL, "--text", PROMPT, "--hook", "blocks.0.hook_resid_post",
                "--feature", sae + ":6", "--scale", "3", "--out", dir.resolve("x.json").toString());
        assertOneLineError(outOfRange, "--feature index 6 is out of range");
        CliRun unknownHook = CliRun.spindle("steer", "--model", MODEL, "--text", PROMPT, "--hook", "blocks.7.hook_resid_post",
                "--feature", sae + ":1", "--scale", "3", "--out", dir.resolve("x.json").toString());
        assertOneLineError(unknownHook, "layer 7 does not exist");
        CliRun missingVector = CliRun.spindle("steer", "--model", MODEL, "--text", PROMPT, "--hook", "blocks.0.hook_resid_post",
                "--vector", dir.resolve("none.safetensors").toString(), "--scale", "3", "--out", dir.resolve("x.json").toString());
        assertOneLineError(missingVector, "no such file");
        assertFalse(Files.exists(dir.resolve("x.json")));
    }

    @Test
    void patchWritesOneGridPerKindAndRefusesBadAnswers(@TempDir Path dir) throws IOException {
        Path out = dir.resolve("patch");
        CliRun run = CliRun.spindle("patch", "--model", MODEL, "--clean", "Tom gave the ball to", "--corrupt", "Sue gave the ball to",
                "--answer-id", "85", "--wrong-id", "86", "--out", out.toString());
        assertEquals(0, run.exitCode(), run.err());
        try (SafeTensors st = SafeTensors.open(out.resolve("patch.safetensors"))) {
            for (String kind : new String[] {"resid_pre", "attn_out", "mlp_out"}) {
                assertArrayEquals(new long[] {2, 6}, st.info(kind).shape());
            }
            float[] residPre = st.floats("resid_pre");
            assertEquals(1.0, residPre[2], 1e-4); // 'Tom' vs 'Sue' is the only differing token, position 2
        }
        assertTrue(Files.size(out.resolve("patch.png")) > 1000);

        assertOneLineError(CliRun.spindle("patch", "--model", MODEL, "--clean", "Tom gave the ball to", "--corrupt",
                "Sue gave the big red ball to", "--answer-id", "85", "--wrong-id", "86", "--out", dir.resolve("p2").toString()),
                "same token length");
        assertOneLineError(CliRun.spindle("patch", "--model", MODEL, "--clean", "Tom gave the ball to", "--corrupt",
                "Sue gave the ball to", "--answer", "Once upon a time", "--wrong", "Sue", "--out", dir.resolve("p2").toString()),
                "--answer 'Once upon a time' is");
        assertOneLineError(CliRun.spindle("patch", "--model", MODEL, "--clean", "Tom gave the ball to", "--corrupt",
                "Sue gave the ball to", "--answer-id", "85", "--wrong-id", "86", "--hooks", "resid_mid", "--out",
                dir.resolve("p2").toString()), "unknown hook kind 'resid_mid'");
        assertOneLineError(CliRun.spindle("lens", "--model", MODEL, "--text", PROMPT, "--target", "upon a time far away",
                "--out", dir.resolve("p2").toString()), "not one");
        assertOneLineError(CliRun.spindle("lens", "--model", dir.resolve("nowhere").toString(), "--text", PROMPT,
                "--out", dir.resolve("p2").toString()), "no such directory");
        assertFalse(Files.exists(dir.resolve("p2")));
    }

    @Test
    void contrastRefusesEmptyAndMalformedPairsFilesInOneLine(@TempDir Path dir) throws IOException {
        Path empty = dir.resolve("empty.jsonl");
        Files.writeString(empty, "");
        assertOneLineError(CliRun.spindle("contrast", "--master", "local[2]", "--model", MODEL, "--pairs", empty.toString(),
                "--hooks", "blocks.0.hook_resid_post", "--out", dir.resolve("c").toString()), "has no pairs");
        Path malformed = dir.resolve("bad.jsonl");
        Files.writeString(malformed, "{\"prompt\": \"Once\", \"positive\": \" happy\", \"negative\": \" sad\"}\nnot json\n");
        // raised inside a Spark task, still one line
        assertOneLineError(CliRun.spindle("contrast", "--master", "local[2]", "--model", MODEL, "--pairs", malformed.toString(),
                "--hooks", "blocks.0.hook_resid_post", "--out", dir.resolve("c").toString()), "line 2 is not valid JSON");
        assertFalse(Files.exists(dir.resolve("c")));
    }

    static void assertOneLineError(CliRun run, String expected) {
        assertEquals(2, run.exitCode(), run.err() + run.out());
        assertTrue(run.err().contains(expected), run.err());
        assertEquals(1, run.err().strip().lines().count(), run.err());
    }

    /** A SAELens 'standard' SAE on blocks.0.hook_resid_post with random weights. */
    static Path writeDictionary(Path dir, int features) throws IOException {
        Files.createDirectories(dir);
        int d = model.config().dModel();
        Files.writeString(dir.resolve("cfg.json"), "{\"architecture\": \"standard\", \"d_in\": " + d + ", \"d_sae\": " + features
                + ", \"apply_b_dec_to_input\": true, \"normalize_activations\": \"none\","
                + " \"metadata\": {\"hook_name\": \"blocks.0.hook_resid_post\"}}");
        Random r = new Random(4);
        float[] wEnc = new float[d * features];
        float[] wDec = new float[features * d];
        for (int i = 0; i < wEnc.length; i++) {
            wEnc[i] = (float) r.nextGaussian();
            wDec[i] = (float) r.nextGaussian();
        }
        new SafeTensorsWriter().addF32("W_enc", wEnc, d, features).addF32("b_enc", new float[features], features)
                .addF32("W_dec", wDec, features, d).addF32("b_dec", new float[d], d).write(dir.resolve("sae_weights.safetensors"));
        return dir;
    }

    static float[] decoderRow(Path sae, int index) {
        try (SafeTensors st = SafeTensors.open(sae.resolve("sae_weights.safetensors"))) {
            float[] w = st.floats("W_dec");
            int d = model.config().dModel();
            return Arrays.copyOfRange(w, index * d, (index + 1) * d);
        }
    }

    static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }
}
