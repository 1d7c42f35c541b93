package analysis.steering;

import activations.hooks.ForwardRequest;
import activations.hooks.HookPoint;
import activations.hooks.HookPoint.Kind;
import activations.hooks.Intervention;
import activations.model.TransformerModel;
import activations.safetensors.SafeTensorsWriter;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Steered generation on the bundled model against the runtime's own uncached paths. */
class SteeringTest {

    static final int[] PROMPT = {1, 80, 147, 201, 282};
    static final HookPoint LOGITS = new HookPoint(Kind.LOGITS, -1);
    static TransformerModel model;
    static HookPoint hook;
    static float[] vector;

    @BeforeAll
    static void load() {
        model = TransformerModel.load(Path.of("models/tinystories-656k"));
        hook = HookPoint.parse("blocks.0.hook_resid_post", model.config());
        vector = new float[model.config().dModel()];
        Random r = new Random(9);
        for (int i = 0; i < vector.length; i++) {
            vector[i] = (float) r.nextGaussian();
        }
    }

    @Test
    void scaleZeroIsPlainGreedyGeneration() {
        CachedGeneration.Settings s = new CachedGeneration.Settings(25, 0, 0, -1);
        int[] steered = CachedGeneration.generate(model, PROMPT,
                CachedGeneration.request(hook, Intervention.addVector(new float[vector.length])), s, false).ids();
        assertArrayEquals(model.greedy(PROMPT, 25, -1), steered);
        int stop = model.config().eosTokenId();
        int[] untilEos = CachedGeneration.generate(model, PROMPT, CachedGeneration.request(hook, null),
                new CachedGeneration.Settings(60, 0, 0, stop), false).ids();
        assertArrayEquals(model.greedy(PROMPT, 60, stop), untilEos);
    }

    @Test
    void theFirstSteeredStepIsAOneOffForwardWithTheVectorAdded() {
        float[] scaled = new float[vector.length];
        for (int i = 0; i < vector.length; i++) {
            scaled[i] = 4 * vector[i];
        }
        CachedGeneration.Generated g = CachedGeneration.generate(model, PROMPT,
                CachedGeneration.request(hook, Intervention.addVector(scaled)), new CachedGeneration.Settings(3, 0, 0, -1), true);
        float[] oneOff = model.forward(new int[][] {PROMPT},
                ForwardRequest.capture(LOGITS).intervene(hook, Intervention.addVector(scaled))).row(LOGITS, 0, PROMPT.length - 1);
        assertArrayEquals(oneOff, g.stepLogits().get(0), 1e-4f);
        assertEquals(TransformerModel.argmax(oneOff), g.ids()[0]);
        assertFalse(java.util.Arrays.equals(model.lastLogits(PROMPT), g.stepLogits().get(0)));
    }

    @Test
    void samplingIsSeededAndFollowsTheTemperature() {
        CachedGeneration.Settings s = new CachedGeneration.Settings(20, 1.0, 42, -1);
        ForwardRequest plain = CachedGeneration.request(hook, null);
        int[] a = CachedGeneration.generate(model, PROMPT, plain, s, false).ids();
        int[] b = CachedGeneration.generate(model, PROMPT, plain, s, false).ids();
        assertArrayEquals(a, b);
        // a near-zero temperature samples the argmax
        int[] cold = CachedGeneration.generate(model, PROMPT, plain, new CachedGeneration.Settings(20, 1e-4, 1, -1), false).ids();
        assertArrayEquals(model.greedy(PROMPT, 20, -1), cold);
        // sampling frequencies follow softmax(logits / T) on a three-token case
        float[] logits = {0f, (float) Math.log(2), (float) Math.log(5)};
        java.util.SplittableRandom random = new java.util.SplittableRandom(5);
        int[] counts = new int[3];
        for (int i = 0; i < 40000; i++) {
            counts[CachedGeneration.sample(logits, 1.0, random)]++;
        }
        assertEquals(1 / 8.0, counts[0] / 40000.0, 0.01);
        assertEquals(5 / 8.0, counts[2] / 40000.0, 0.01);
    }

    @Test
    void vectorsComeFromSafetensorsOrADictionaryFeature(@TempDir Path dir) {
        int d = model.config().dModel();
        Path file = dir.resolve("v.safetensors");
        new SafeTensorsWriter().addF32("blocks.0.hook_resid_post", vector, d).addF32("other", new float[d], d).write(file);
        assertArrayEquals(vector, SteeringVectors.fromFile(file.toString(), "blocks.0.hook_resid_post", d));
        assertArrayEquals(new float[d], SteeringVectors.fromFile(file + ":other", "blocks.0.hook_resid_post", d));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> SteeringVectors.fromFile(file + ":missing", "x", d));
        assertTrue(e.getMessage().contains("no tensor 'missing'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> SteeringVectors.fromFile(file.toString(), "x", d));
        assertTrue(e.getMessage().contains("FILE:NAME"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> SteeringVectors.fromFile(file.toString(), "other", d + 1));
        assertTrue(e.getMessage().contains("width"), e.getMessage());
    }
}
