package analysis.patching;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.hooks.HookPoint.Kind;
import activations.hooks.Intervention;
import activations.model.TransformerModel;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Activation patching on the bundled model against identities one can check by hand. */
class ActivationPatchingTest {

    static final int[] CLEAN = {1, 80, 147, 201, 282, 215, 286};
    static final int[] CORRUPT = {1, 80, 147, 300, 282, 215, 286}; // differs at position 3 only
    static final int DIFFERS = 3;
    static TransformerModel model;
    static int answer;
    static int wrong;

    @BeforeAll
    static void load() {
        model = TransformerModel.load(Path.of("models/tinystories-656k"));
        answer = TransformerModel.argmax(model.lastLogits(CLEAN));
        float[] corrupt = model.lastLogits(CORRUPT);
        corrupt[answer] = Float.NEGATIVE_INFINITY;
        wrong = TransformerModel.argmax(corrupt);
    }

    @Test
    void patchingTheOnlyDifferingEmbeddingRestoresTheCleanRun() {
        ActivationPatching.Result r = ActivationPatching.run(model, CLEAN, CORRUPT, answer, wrong,
                List.of("resid_pre", "attn_out", "mlp_out"));
        double[][] residPre = r.normalized().get("resid_pre");
        assertEquals(model.config().nLayers(), residPre.length);
        for (int t = 0; t < CLEAN.length; t++) {
            // layer 0's resid_pre is the embedding: the same value everywhere but at the differing position
            assertEquals(t == DIFFERS ? 1.0 : 0.0, residPre[0][t], 1e-4, "position " + t);
        }
        // every position's resid_pre at layer 0 replaced at once is the clean run itself
        HookPoint pre0 = new HookPoint(Kind.RESID_PRE, 0);
        float[] cleanPre = model.forward(new int[][] {CLEAN}, ForwardRequest.capture(pre0)).get(pre0);
        HookPoint logits = new HookPoint(Kind.LOGITS, -1);
        float[] all = model.forward(new int[][] {CORRUPT},
                ForwardRequest.capture(logits).intervene(pre0, Intervention.replaceWith(cleanPre))).row(logits, 0, CLEAN.length - 1);
        assertEquals(r.cleanMetric(), (double) all[answer] - all[wrong], 1e-4);
        float[] clean = model.lastLogits(CLEAN);
        float[] corrupt = model.lastLogits(CORRUPT);
        assertEquals((double) clean[answer] - clean[wrong], r.cleanMetric(), 1e-5);
        assertEquals((double) corrupt[answer] - corrupt[wrong], r.corruptMetric(), 1e-5);
        // positions before the difference cannot see it: nothing to restore there, at any hook or layer
        for (double[][] grid : r.normalized().values()) {
            for (double[] layer : grid) {
                for (int t = 0; t < DIFFERS; t++) {
                    assertEquals(0, layer[t], 1e-4);
                }
            }
        }
    }

    /**
     * The last layer's MLP output at the last position feeds the head directly: the patched logits
     * are RMSNorm(resid_mid_corrupt + mlp_out_clean) * gain . W_U, computed here by hand; at any
     * earlier position the last MLP reaches nothing and the effect is exactly 0.
     */
    @Test
    void lastLayerMlpAtTheLastPositionIsTheHeadOnTheSwappedOutput() {
        int last = model.config().nLayers() - 1;
        int t = CLEAN.length - 1;
        HookPoint mid = new HookPoint(Kind.RESID_MID, last);
        HookPoint mlp = new HookPoint(Kind.MLP_OUT, last);
        ForwardResult corruptRun = model.forward(new int[][] {CORRUPT}, ForwardRequest.capture(mid));
        ForwardResult cleanRun = model.forward(new int[][] {CLEAN}, ForwardRequest.capture(mlp));
        float[] a = corruptRun.row(mid, 0, t);
        float[] b = cleanRun.row(mlp, 0, t);
        int d = a.length;
        double squares = 0;
        for (int i = 0; i < d; i++) {
            squares += (double) (a[i] + b[i]) * (a[i] + b[i]);
        }
        double inv = 1 / Math.sqrt(squares / d + model.config().normEps());
        float[] gain = model.finalNormGain();
        float[] rowA = model.unembedding().getRow(answer).toFloatVector();
        float[] rowB = model.unembedding().getRow(wrong).toFloatVector();
        double expected = 0;
        for (int i = 0; i < d; i++) {
            expected += (a[i] + b[i]) * inv * gain[i] * (rowA[i] - rowB[i]);
        }
        ActivationPatching.Result r = ActivationPatching.run(model, CLEAN, CORRUPT, answer, wrong, List.of("mlp_out"));
        double normalized = (expected - r.corruptMetric()) / (r.cleanMetric() - r.corruptMetric());
        assertEquals(normalized, r.normalized().get("mlp_out")[last][t], 1e-4);
        for (int p = 0; p < t; p++) {
            assertEquals(0, r.normalized().get("mlp_out")[last][p], 1e-4); // float noise of a batched gemm only
        }
        assertTrue(Math.abs(normalized) > 1e-2, "the last MLP should matter here");
    }

    @Test
    void positionsSplitOverSeveralPassesGiveTheSameGrid() {
        List<String> kinds = List.of("attn_out");
        ActivationPatching.Result whole = ActivationPatching.run(model, CLEAN, CORRUPT, answer, wrong, kinds);
        ActivationPatching.Result split = ActivationPatching.run(model, CLEAN, CORRUPT, answer, wrong, kinds, 3);
        for (int l = 0; l < model.config().nLayers(); l++) {
            for (int t = 0; t < CLEAN.length; t++) {
                assertEquals(whole.normalized().get("attn_out")[l][t], split.normalized().get("attn_out")[l][t], 1e-4);
            }
        }
        assertEquals(CLEAN.length, ActivationPatching.positionsPerPass(model, CLEAN.length));
        assertTrue(ActivationPatching.positionsPerPass(model, 512) < 512);
    }

    @Test
    void refusesMismatchedLengthsAndUnknownKinds() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ActivationPatching.run(model, CLEAN, new int[] {1, 80, 147}, answer, wrong, List.of("resid_pre")));
        assertTrue(e.getMessage().contains("same token length"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ActivationPatching.kinds(List.of("resid_post")));
        assertTrue(e.getMessage().contains("resid_pre, attn_out, mlp_out"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> ActivationPatching.run(model, CLEAN, CLEAN, answer, wrong, List.of("resid_pre")));
        assertTrue(e.getMessage().contains("same metric"), e.getMessage());
    }
}
