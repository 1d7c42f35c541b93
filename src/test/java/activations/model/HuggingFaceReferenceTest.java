package activations.model;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.safetensors.SafeTensors;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Gemma-2 and GPT-NeoX checkpoints in the exact Hugging Face tensor layout, run by the Java
 * forward pass, against every hook a numpy reference written from transformers' modeling files
 * computed (src/test/resources/hf-reference/make_reference.py, which also says how to rerun it).
 * Every feature is on: both soft-caps, a sliding window shorter than the prompt (even layers, or
 * the layers {@code layer_types} names), GQA, head_dim != hidden/heads, query_pre_attn_scalar !=
 * head_dim, partial rotary, parallel and sequential residual, exact and tanh GELU.
 */
class HuggingFaceReferenceTest {

    static Path fixture(String name) {
        try {
            return Path.of(HuggingFaceReferenceTest.class.getResource("/hf-reference/" + name + "/config.json").toURI()).getParent();
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"gemma2", "gemma2-layer-types", "gpt-neox-parallel", "gpt-neox-sequential"})
    void everyHookMatchesTheNumpyReference(String name) throws IOException {
        Path dir = fixture(name);
        JsonNode expectedJson = new ObjectMapper().readTree(dir.resolve("expected.json").toFile());
        int[][] tokens = new int[expectedJson.get("tokens").size()][];
        for (int s = 0; s < tokens.length; s++) {
            JsonNode row = expectedJson.get("tokens").get(s);
            tokens[s] = new int[row.size()];
            for (int t = 0; t < row.size(); t++) {
                tokens[s][t] = row.get(t).asInt();
            }
        }
        TransformerModel model = TransformerModel.load(dir);
        List<HookPoint> hooks = HookPoint.all(model.config());
        List<String> names = new ArrayList<>();
        hooks.forEach(h -> names.add(h.name()));
        List<String> referenceNames = new ArrayList<>();
        expectedJson.get("hooks").forEach(n -> referenceNames.add(n.asText()));
        // Every hook the model offers is checked, and the model offers every hook the reference has.
        assertEquals(new TreeSet<>(referenceNames), new TreeSet<>(names), name + ": hook sets");

        ForwardResult result = model.forward(tokens, ForwardRequest.capture(hooks));
        try (SafeTensors expected = SafeTensors.open(dir.resolve("expected.safetensors"))) {
            for (HookPoint hook : hooks) {
                float[] want = expected.floats(hook.name());
                float[] got = result.get(hook);
                int width = result.dim(hook);
                assertEquals(want.length, got.length, name + " " + hook + " size");
                for (int row = 0; row < got.length / width; row++) {
                    double scale = 0;
                    for (int i = 0; i < width; i++) {
                        scale = Math.max(scale, Math.abs(want[row * width + i]));
                    }
                    for (int i = 0; i < width; i++) {
                        // 1e-4 relative to the row's largest magnitude
                        assertEquals(want[row * width + i], got[row * width + i], 1e-4 * scale + 1e-7,
                                name + " " + hook + " seq " + row / tokens[0].length + " pos " + row % tokens[0].length + " dim " + i);
                    }
                }
            }
        }
    }

    /** The fixtures exercise what they claim to (so a passing comparison means something). */
    @Test
    void fixturesSwitchEveryFeatureOn() {
        ModelConfig gemma = ModelConfig.load(fixture("gemma2"));
        assertEquals(ModelConfig.Family.GEMMA2, gemma.family());
        assertEquals(3, gemma.windowAt(0));
        assertEquals(0, gemma.windowAt(1));
        assertEquals(3, gemma.windowAt(2));
        assertTrue(gemma.nKvHeads() < gemma.nHeads() && gemma.headDim() != gemma.dModel() / gemma.nHeads());
        assertEquals(1 / Math.sqrt(6), gemma.attentionScale(), 1e-15);
        assertTrue(gemma.attentionSoftcap() > 0 && gemma.finalSoftcap() > 0 && gemma.tiedEmbeddings());
        assertEquals((float) Math.sqrt(16), gemma.embeddingScale());

        ModelConfig layerTypes = ModelConfig.load(fixture("gemma2-layer-types"));
        assertEquals(List.of(0, 3, 3), List.of(layerTypes.windowAt(0), layerTypes.windowAt(1), layerTypes.windowAt(2)));
        assertTrue(!layerTypes.tiedEmbeddings());

        ModelConfig parallel = ModelConfig.load(fixture("gpt-neox-parallel"));
        assertTrue(parallel.parallelResidual() && !parallel.tiedEmbeddings());
        assertEquals(4, parallel.rotaryDim());
        assertEquals(8, parallel.headDim());
        assertEquals(ModelConfig.Activation.GELU_EXACT, parallel.activation());
        ModelConfig sequential = ModelConfig.load(fixture("gpt-neox-sequential"));
        assertTrue(!sequential.parallelResidual());
        assertEquals(6, sequential.rotaryDim());
        assertEquals(ModelConfig.Activation.GELU_TANH, sequential.activation());
    }

    /**
     * Interventions where the new families wire things differently: Gemma-2's hook_mlp_out is what
     * the residual receives (zeroed: resid_post = resid_mid), mlp.hook_in is what the MLP reads
     * (the MLP output follows a replaced input), and a parallel block adds attention and MLP to the
     * block input (both zeroed: resid_post = resid_pre).
     */
    @Test
    void interventionsFollowEachFamilysWiring() {
        int[][] tokens = {{2, 7, 1, 22, 9, 0, 14, 5, 36}};
        TransformerModel gemma = TransformerModel.load(fixture("gemma2"));
        HookPoint mid = new HookPoint(HookPoint.Kind.RESID_MID, 1);
        HookPoint post = new HookPoint(HookPoint.Kind.RESID_POST, 1);
        HookPoint mlpOut = new HookPoint(HookPoint.Kind.MLP_OUT, 1);
        HookPoint mlpIn = new HookPoint(HookPoint.Kind.MLP_IN, 1);
        ForwardResult zeroed = gemma.forward(tokens, ForwardRequest.capture(mid, post).intervene(mlpOut, activations.hooks.Intervention.zero()));
        org.junit.jupiter.api.Assertions.assertArrayEquals(zeroed.get(mid), zeroed.get(post), 0f);

        // Replace layer 1's MLP input with layer 0's: the MLP output becomes the one layer 0's input gives.
        ForwardResult clean = gemma.forward(tokens, ForwardRequest.capture(new HookPoint(HookPoint.Kind.MLP_IN, 0), mlpIn, mlpOut));
        float[] other = clean.get(new HookPoint(HookPoint.Kind.MLP_IN, 0));
        ForwardResult swapped = gemma.forward(tokens, ForwardRequest.capture(mlpIn, mlpOut)
                .intervene(mlpIn, activations.hooks.Intervention.replaceWith(other)));
        org.junit.jupiter.api.Assertions.assertArrayEquals(other, swapped.get(mlpIn), 0f);
        assertTrue(maxDifference(clean.get(mlpOut), swapped.get(mlpOut)) > 1e-3, "the MLP saw the replaced input");

        TransformerModel neox = TransformerModel.load(fixture("gpt-neox-parallel"));
        HookPoint pre = new HookPoint(HookPoint.Kind.RESID_PRE, 1);
        ForwardResult bothZeroed = neox.forward(tokens, ForwardRequest.capture(pre, post)
                .intervene(new HookPoint(HookPoint.Kind.ATTN_OUT, 1), activations.hooks.Intervention.zero())
                .intervene(mlpOut, activations.hooks.Intervention.zero()));
        org.junit.jupiter.api.Assertions.assertArrayEquals(bothZeroed.get(pre), bothZeroed.get(post), 0f);
    }

    private static double maxDifference(float[] a, float[] b) {
        double max = 0;
        for (int i = 0; i < a.length; i++) {
            max = Math.max(max, Math.abs(a[i] - b[i]));
        }
        return max;
    }

    /** transformers 5 writes rope_theta (and NeoX's partial_rotary_factor) inside rope_parameters. */
    @Test
    void transformers5RopeParametersParseLikeTheOlderKeys() throws IOException {
        ObjectMapper json = new ObjectMapper();
        var neox = (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(fixture("gpt-neox-parallel").resolve("config.json").toFile());
        neox.remove("rotary_pct");
        neox.remove("rotary_emb_base");
        neox.putObject("rope_parameters").put("rope_type", "default").put("rope_theta", 500.0).put("partial_rotary_factor", 0.25);
        ModelConfig c = ModelConfig.parse(neox, "neox");
        assertEquals(500.0, c.ropeTheta());
        assertEquals(2, c.rotaryDim());
        assertEquals("none", c.ropeScaling().type());
        var gemma = (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(fixture("gemma2").resolve("config.json").toFile());
        gemma.remove("rope_theta");
        gemma.putObject("rope_parameters").put("rope_type", "default").put("rope_theta", 250.0);
        assertEquals(250.0, ModelConfig.parse(gemma, "gemma").ropeTheta());
        gemma.putNull("final_logit_softcapping");
        gemma.putNull("sliding_window");
        ModelConfig uncapped = ModelConfig.parse(gemma, "gemma");
        assertEquals(0, uncapped.finalSoftcap(), "an explicit null switches the cap off");
        assertEquals(0, uncapped.windowAt(0));
    }

    @Test
    void exactGeluMatchesKnownValues() {
        // Phi(x) * x at a few points (Python math.erf): the hand-written erfc is good to fp32.
        assertEquals(0.8413447460685429, TransformerModel.geluExact(1f), 1e-7);
        assertEquals(-0.15865525393145707, TransformerModel.geluExact(-1f), 1e-7);
        assertEquals(1.9544997361036416, TransformerModel.geluExact(2f), 1e-6);
        assertEquals(-0.00404969409489031, TransformerModel.geluExact(-3f), 1e-8);
        assertEquals(0.0, TransformerModel.geluExact(0f), 0);
    }

    @Test
    void rationalTanhIsFp32Accurate() {
        // GPT-2's GELU runs on the rational tanh; Math.tanh (double) is the independent reference.
        for (float x = -12f; x <= 12f; x += 0.001f) {
            assertEquals(Math.tanh(x), TransformerModel.tanhRational(x), 5e-7, "tanh(" + x + ")");
        }
        for (float x = 1e-7f; x < 0.1f; x *= 1.05f) {
            assertEquals(Math.tanh(x), TransformerModel.tanhRational(x), 5e-7 * x, "relative at " + x);
        }
    }
}
