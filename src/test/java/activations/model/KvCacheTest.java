package activations.model;

import activations.hooks.ForwardRequest;
import activations.hooks.HookPoint;
import activations.hooks.HookPoint.Kind;
import activations.hooks.Intervention;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Incremental decoding on the key/value cache against the independent path: recomputing the whole
 * prefix with {@link TransformerModel#forward} at every step (what {@code greedy} does).
 */
class KvCacheTest {

    private static final HookPoint LOGITS = new HookPoint(Kind.LOGITS, -1);

    @Test
    void cachedGreedyEqualsRecomputingThePrefixOnTheBundledModel() {
        TransformerModel model = TransformerModel.load(TinyStoriesGoldenTest.MODEL);
        int[] prompt = {1, 80, 147, 201, 282, 215, 286};
        assertSameGeneration(model, prompt, 40, null, null);
    }

    @Test
    void cachedGreedyEqualsRecomputingWithASteeringVector() {
        TransformerModel model = TransformerModel.load(TinyStoriesGoldenTest.MODEL);
        HookPoint hook = HookPoint.parse("blocks.0.hook_resid_post", model.config());
        float[] vector = new float[model.config().dModel()];
        Random r = new Random(3);
        for (int i = 0; i < vector.length; i++) {
            vector[i] = (float) (r.nextGaussian() * 0.5);
        }
        int[] prompt = {1, 80, 147, 201};
        int[] steered = assertSameGeneration(model, prompt, 30, hook, vector);
        int[] plain = assertSameGeneration(model, prompt, 30, null, null);
        assertTrue(!Arrays.equals(steered, plain), "the vector should change the continuation");
    }

    @Test
    void gpt2PositionsAndMistralWindowAreCachedCorrectly(@TempDir Path dir) {
        TransformerModel gpt2 = TransformerModel.load(TinyCheckpoint.gpt2(16, 2, 4, 23, 32, 7).write(dir.resolve("gpt2")));
        assertSameGeneration(gpt2, new int[] {3, 5, 7}, 20, null, null);
        TransformerModel mistral = TransformerModel.load(
                TinyCheckpoint.llama(16, 2, 4, 2, 24, 29, 64, false, true, 4, 11).write(dir.resolve("mistral")));
        assertSameGeneration(mistral, new int[] {1, 2, 3, 4, 5, 6}, 20, null, null);
    }

    /** Every switch of the other families on: soft-caps, a window of 3, GQA, query_pre_attn_scalar, partial rotary, both residual layouts. */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"gemma2", "gemma2-layer-types", "gpt-neox-parallel", "gpt-neox-sequential"})
    void gemma2AndGptNeoxAreCachedCorrectly(String fixture) {
        TransformerModel model = TransformerModel.load(Path.of("src/test/resources/hf-reference", fixture));
        assertSameGeneration(model, new int[] {2, 5, 9, 4, 11}, 16, null, null);
        HookPoint hook = HookPoint.parse("blocks.1.hook_resid_post", model.config());
        float[] vector = new float[model.config().dModel()];
        Arrays.fill(vector, 0.3f);
        assertSameGeneration(model, new int[] {2, 5, 9}, 12, hook, vector);
    }

    @Test
    void theCacheCannotOutgrowTheContext() {
        TransformerModel model = TransformerModel.load(TinyStoriesGoldenTest.MODEL);
        KvCache cache = new KvCache(model.config());
        int[] prompt = new int[model.config().maxPositions()];
        Arrays.fill(prompt, 5);
        model.forwardCached(prompt, cache, ForwardRequest.capture(LOGITS));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> model.forwardCached(new int[] {5}, cache, ForwardRequest.capture(LOGITS)));
        assertTrue(e.getMessage().contains("context"), e.getMessage());
        assertEquals(model.config().maxPositions(), cache.length());
    }

    /** Both paths step by step: the same token each step, next-token logits within 1e-4. */
    private static int[] assertSameGeneration(TransformerModel model, int[] prompt, int steps, HookPoint hook, float[] vector) {
        ForwardRequest request = ForwardRequest.capture(LOGITS);
        if (hook != null) {
            request.intervene(hook, Intervention.addVector(vector));
        }
        KvCache cache = new KvCache(model.config());
        int[] sequence = prompt.clone();
        int[] next = prompt;
        for (int step = 0; step < steps; step++) {
            float[] cached = model.forwardCached(next, cache, request).row(LOGITS, 0, next.length - 1);
            float[] recomputed = model.forward(new int[][] {sequence}, request).row(LOGITS, 0, sequence.length - 1);
            assertArrayEquals(recomputed, cached, 1e-4f, "step " + step);
            int token = TransformerModel.argmax(recomputed);
            assertEquals(token, TransformerModel.argmax(cached), "step " + step);
            assertEquals(sequence.length, cache.length());
            sequence = Arrays.copyOf(sequence, sequence.length + 1);
            sequence[sequence.length - 1] = token;
            next = new int[] {token};
        }
        return Arrays.copyOfRange(sequence, prompt.length, sequence.length);
    }
}
