package activations.model;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.hooks.HookPoint.Kind;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

class Gpt2InvariantsTest {

    private static final HookPoint LOGITS = new HookPoint(Kind.LOGITS, -1);

    /**
     * One layer, d=2, all attention and MLP weights zero: the residual is wte + wpe + both output
     * biases, and the logits follow by hand. Token 0 at position 0: resid = [1,0] + [0,0] + [0.5,0]
     * + [0,0.25] = [1.5, 0.25]; LayerNorm gives [s, -s] with s = 1/sqrt(1 + 1e-5/0.390625); gain
     * [2,1], bias [0,0.5] give h = [2s, 0.5 - s]; logits = h . wte rows [1,0], [0,1], [2,-1].
     */
    @Test
    void handComputedOneLayerCase(@TempDir Path dir) {
        TinyCheckpoint c = TinyCheckpoint.gpt2(2, 1, 1, 3, 4, 0);
        c.weights.replaceAll((name, v) -> new float[v.length]);
        c.weights.put("transformer.wte.weight", new float[] {1, 0, 0, 1, 2, -1});
        c.weights.put("transformer.h.0.attn.c_proj.bias", new float[] {0.5f, 0});
        c.weights.put("transformer.h.0.mlp.c_proj.bias", new float[] {0, 0.25f});
        c.weights.put("transformer.ln_f.weight", new float[] {2, 1});
        c.weights.put("transformer.ln_f.bias", new float[] {0, 0.5f});
        TransformerModel model = TransformerModel.load(c.write(dir));

        float[] logits = model.lastLogits(new int[] {0});
        double s = 1 / Math.sqrt(1 + 1e-5 / 0.390625);
        assertEquals(2 * s, logits[0], 1e-6);
        assertEquals(0.5 - s, logits[1], 1e-6);
        assertEquals(4 * s - (0.5 - s), logits[2], 1e-6);
    }

    @Test
    void laterTokensDoNotChangeEarlierPositions(@TempDir Path dir) {
        TransformerModel model = TransformerModel.load(TinyCheckpoint.gpt2(16, 2, 4, 23, 12, 7).write(dir));
        int[][] batch = {{1, 2, 3, 4, 5, 6}, {1, 2, 3, 4, 20, 21}};
        var hooks = HookPoint.all(model.config());
        ForwardResult r = model.forward(batch, ForwardRequest.capture(hooks));
        for (HookPoint hook : hooks) {
            for (int t = 0; t < 4; t++) {
                float[] a = r.row(hook, 0, t);
                float[] b = r.row(hook, 1, t);
                float scale = 0;
                for (float v : a) {
                    scale = Math.max(scale, Math.abs(v));
                }
                for (int i = 0; i < a.length; i++) {
                    // equal up to float rounding of a different gemm blocking; a leak would be O(scale)
                    assertEquals(a[i], b[i], 1e-5 * scale + 1e-6, hook + " at position " + t);
                }
            }
        }
        assertFalse(Arrays.equals(r.row(LOGITS, 0, 5), r.row(LOGITS, 1, 5)), "the changed tokens do change later positions");
    }

    @Test
    void logitsAreTheFinalNormTimesTheTiedEmbedding(@TempDir Path dir) {
        TinyCheckpoint c = TinyCheckpoint.gpt2(16, 2, 4, 23, 12, 8);
        TransformerModel model = TransformerModel.load(c.write(dir));
        HookPoint normalized = new HookPoint(Kind.LN_FINAL_NORMALIZED, -1);
        ForwardResult r = model.forward(new int[][] {{4, 8, 15, 16, 22}}, ForwardRequest.capture(normalized, LOGITS));
        float[] gain = c.weights.get("transformer.ln_f.weight");
        float[] bias = c.weights.get("transformer.ln_f.bias");
        float[] wte = c.weights.get("transformer.wte.weight");
        for (int t = 0; t < 5; t++) {
            float[] n = r.row(normalized, 0, t);
            float[] logits = r.row(LOGITS, 0, t);
            for (int v = 0; v < 23; v++) {
                double expected = 0;
                for (int i = 0; i < 16; i++) {
                    expected += (n[i] * gain[i] + bias[i]) * wte[v * 16 + i];
                }
                assertEquals(expected, logits[v], 1e-4, "logit " + v + " at " + t);
            }
        }
    }

    @Test
    void loadsTheOriginalUnprefixedTensorNames(@TempDir Path dir) {
        TinyCheckpoint c = TinyCheckpoint.gpt2(16, 2, 4, 23, 12, 9);
        TransformerModel prefixed = TransformerModel.load(c.write(dir.resolve("a")));
        TransformerModel bare = TransformerModel.load(c.write(dir.resolve("b"), n -> n.replace("transformer.", "")));
        int[] tokens = {3, 1, 4, 1, 5};
        assertArrayEquals(prefixed.lastLogits(tokens), bare.lastLogits(tokens), 0f);
    }

    @Test
    void batchedRowsEqualSingleSequencePasses(@TempDir Path dir) {
        TransformerModel model = TransformerModel.load(TinyCheckpoint.gpt2(16, 2, 4, 23, 12, 10).write(dir));
        int[][] batch = {{1, 2, 3, 4}, {9, 8, 7, 6}, {0, 22, 0, 22}};
        ForwardResult together = model.forward(batch, ForwardRequest.capture(LOGITS));
        for (int s = 0; s < batch.length; s++) {
            ForwardResult alone = model.forward(new int[][] {batch[s]}, ForwardRequest.capture(LOGITS));
            for (int t = 0; t < 4; t++) {
                assertArrayEquals(alone.row(LOGITS, 0, t), together.row(LOGITS, s, t), 1e-5f);
            }
        }
    }
}
