package activations.model;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.hooks.HookPoint.Kind;
import activations.hooks.Intervention;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Hooks on the bundled default model: capture only what is asked, interventions flow downstream. */
class HookInterventionTest {

    static TransformerModel model;
    static final int[][] TOKENS = {{1, 80, 147, 201, 282, 215, 286}};

    @BeforeAll
    static void load() {
        model = TransformerModel.load(TinyStoriesGoldenTest.MODEL);
    }

    @Test
    void capturesOnlyTheRequestedHooks() {
        HookPoint mlpOut = HookPoint.parse("blocks.0.hook_mlp_out", model.config());
        ForwardResult r = model.forward(TOKENS, ForwardRequest.capture(mlpOut));
        assertEquals(1, r.all().size());
        assertEquals(7 * 128, r.get(mlpOut).length);
        HookPoint mlpPost = HookPoint.parse("blocks.1.mlp.hook_post", model.config());
        assertEquals(384, model.forward(TOKENS, ForwardRequest.capture(mlpPost)).dim(mlpPost));
    }

    @Test
    void residualStreamAddsUp() {
        var c = model.config();
        HookPoint pre = HookPoint.parse("blocks.1.hook_resid_pre", c);
        HookPoint attn = HookPoint.parse("blocks.1.hook_attn_out", c);
        HookPoint mid = HookPoint.parse("blocks.1.hook_resid_mid", c);
        HookPoint mlp = HookPoint.parse("blocks.1.hook_mlp_out", c);
        HookPoint post = HookPoint.parse("blocks.1.hook_resid_post", c);
        ForwardResult r = model.forward(TOKENS, ForwardRequest.capture(pre, attn, mid, mlp, post));
        float[] p = r.get(pre), a = r.get(attn), m = r.get(mid), o = r.get(mlp), q = r.get(post);
        for (int i = 0; i < p.length; i++) {
            assertEquals(p[i] + a[i], m[i], 1e-3 * Math.abs(m[i]) + 1e-4);
            assertEquals(m[i] + o[i], q[i], 1e-3 * Math.abs(q[i]) + 1e-4);
        }
    }

    @Test
    void zeroingTheMlpOutputLeavesTheResidualUnchanged() {
        var c = model.config();
        HookPoint mlp = HookPoint.parse("blocks.0.hook_mlp_out", c);
        HookPoint mid = HookPoint.parse("blocks.0.hook_resid_mid", c);
        HookPoint post = HookPoint.parse("blocks.0.hook_resid_post", c);
        ForwardResult r = model.forward(TOKENS,
                ForwardRequest.capture(mid, post, mlp).intervene(mlp, Intervention.zero()));
        assertArrayEquals(r.get(mid), r.get(post), 0f);
        for (float v : r.get(mlp)) {
            assertEquals(0f, v);
        }
    }

    @Test
    void replacingAHookWithItsOwnValueChangesNothing() {
        var c = model.config();
        HookPoint ln2 = HookPoint.parse("blocks.1.ln2.hook_normalized", c);
        HookPoint logits = HookPoint.parse("logits", c);
        ForwardResult clean = model.forward(TOKENS, ForwardRequest.capture(ln2, logits));
        ForwardResult spliced = model.forward(TOKENS, ForwardRequest.capture(logits)
                .intervene(ln2, Intervention.replaceWith(clean.get(ln2).clone())));
        assertArrayEquals(clean.get(logits), spliced.get(logits), 0f);

        ForwardResult steered = model.forward(TOKENS, ForwardRequest.capture(logits)
                .intervene(ln2, Intervention.addVector(new float[128])));
        assertArrayEquals(clean.get(logits), steered.get(logits), 0f);
        float[] push = new float[128];
        push[3] = 5f;
        ForwardResult pushed = model.forward(TOKENS, ForwardRequest.capture(logits)
                .intervene(ln2, Intervention.addVector(push)));
        assertTrue(maxAbsDiff(clean.get(logits), pushed.get(logits)) > 1e-2, "a real push changes the logits");
    }

    @Test
    void unknownHookNamesTheValidOnes() {
        var e = assertThrows(IllegalArgumentException.class, () -> HookPoint.parse("blocks.0.hook_resid", model.config()));
        assertTrue(e.getMessage().contains("blocks.{0..1}.hook_resid_post"), e.getMessage());
        var layer = assertThrows(IllegalArgumentException.class, () -> HookPoint.parse("blocks.2.hook_resid_post", model.config()));
        assertTrue(layer.getMessage().contains("layers 0..1"), layer.getMessage());
        assertThrows(IllegalArgumentException.class, () -> HookPoint.parse("hook_pos_embed", model.config()),
                "Llama models have no learned position embedding");
    }

    @Test
    void rejectsSequencesLongerThanTheContext() {
        int[][] tooLong = {new int[513]};
        var e = assertThrows(IllegalArgumentException.class, () -> model.forward(tooLong, ForwardRequest.capture()));
        assertTrue(e.getMessage().contains("512"), e.getMessage());
    }

    private static double maxAbsDiff(float[] a, float[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]));
        }
        return m;
    }
}
