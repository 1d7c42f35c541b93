package analysis.lens;

import activations.hooks.ForwardRequest;
import activations.hooks.HookPoint;
import activations.hooks.HookPoint.Kind;
import activations.model.TinyCheckpoint;
import activations.model.TransformerModel;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The logit lens and direct logit attribution against identities that hold whatever the weights:
 * the lens's last layer is the model's own logits, and the attributions add up to the logit.
 */
class LensTest {

    static final Path BUNDLED = Path.of("models/tinystories-656k");
    static final int[] TOKENS = {1, 80, 147, 201, 282, 215, 286};
    static TransformerModel llama;

    @BeforeAll
    static void load() {
        llama = TransformerModel.load(BUNDLED);
    }

    @Test
    void lastLensRowEqualsTheModelsLogits() {
        LogitLens.Result lens = LogitLens.run(llama, TOKENS);
        assertEquals(llama.config().nLayers(), lens.layers());
        HookPoint logits = new HookPoint(Kind.LOGITS, -1);
        float[] expected = llama.forward(new int[][] {TOKENS}, ForwardRequest.capture(logits)).get(logits);
        int layerSize = lens.seq() * lens.vocab();
        for (int i = 0; i < layerSize; i++) {
            assertEquals(expected[i], lens.logits()[(lens.layers() - 1) * layerSize + i], 1e-4);
        }
        // an earlier layer reads differently (the lens is not the logits copied)
        assertNotEquals(expected[5], lens.logits()[5], 1e-3);
        double total = 0;
        for (int v = 0; v < lens.vocab(); v++) {
            total += lens.probability(0, 3, v);
        }
        assertEquals(1, total, 1e-9);
    }

    @Test
    void llamaAttributionsSumToTheLogit() {
        DirectLogitAttribution.Result dla = DirectLogitAttribution.run(llama, TOKENS, -1);
        float[] logits = llama.lastLogits(TOKENS);
        assertEquals(TransformerModel.argmax(logits), dla.targetId());
        assertEquals(logits[dla.targetId()], dla.logit(), 1e-5);
        assertEquals(1 + 2 * llama.config().nLayers(), dla.components().size());
        assertEquals("embed", dla.components().get(0).name());
        assertEquals("blocks.1.mlp", dla.components().get(4).name());
        assertEquals(0, dla.unembedBias());
        assertEquals(dla.logit(), dla.componentSum(), 1e-4);
        DirectLogitAttribution.Result other = DirectLogitAttribution.run(llama, TOKENS, 42);
        assertEquals(logits[42], other.logit(), 1e-5);
        assertEquals(other.logit(), other.componentSum(), 1e-4);
    }

    @Test
    void gpt2AttributionsSumToTheLogitMinusTheFoldedBias(@TempDir Path dir) {
        TransformerModel gpt2 = TransformerModel.load(TinyCheckpoint.gpt2(16, 3, 4, 37, 16, 5).write(dir));
        int[] tokens = {4, 9, 16, 25, 36, 2};
        for (int target : new int[] {-1, 7}) {
            DirectLogitAttribution.Result dla = DirectLogitAttribution.run(gpt2, tokens, target);
            float[] logits = gpt2.lastLogits(tokens);
            assertEquals(logits[dla.targetId()], dla.logit(), 1e-5);
            assertEquals("pos_embed", dla.components().get(1).name());
            assertEquals(2 + 2 * 3, dla.components().size());
            assertTrue(Math.abs(dla.unembedBias()) > 1e-3, "ln_f has a random bias");
            assertEquals(dla.logit() - dla.unembedBias(), dla.componentSum(), 1e-4);
        }
        LogitLens.Result lens = LogitLens.run(gpt2, tokens);
        float[] last = gpt2.lastLogits(tokens);
        for (int v = 0; v < last.length; v++) {
            assertEquals(last[v], lens.logits()[((lens.layers() - 1) * lens.seq() + tokens.length - 1) * lens.vocab() + v], 1e-4);
        }
    }
}
