package analysis.seek;

import activations.hooks.ForwardRequest;
import activations.hooks.HookPoint;
import activations.model.TransformerModel;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import training.evaluation.DictionaryFixtures;
import training.evaluation.FeatureDictionary;
import training.features.Example;
import training.features.FeatureReport;
import training.features.FeatureTables;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FeatureSeekerTest {

    static final String HOOK = "blocks.0.hook_resid_post";
    static final int D = 128;
    static final int D_SAE = 8;
    static final int FEATURE = 3;
    static TransformerModel model;
    static float[] wEnc = new float[D * D_SAE];
    static FeatureDictionary sae;
    static int[] vocabulary = IntStream.range(3, 2048).toArray();

    @BeforeAll
    static void load(@TempDir Path dir) {
        model = TransformerModel.load(Path.of("models/tinystories-656k"));
        Random random = new Random(5);
        for (int i = 0; i < wEnc.length; i++) {
            wEnc[i] = (float) (random.nextGaussian() * 0.2);
        }
        sae = FeatureDictionary.load(DictionaryFixtures.write(dir.resolve("sae"), HOOK, D, D_SAE, wEnc, new float[D_SAE * D]));
    }

    /** The feature at the last token of {@code tokens}, recomputed here: relu(x . W_enc[:, f]) (zero biases). */
    static double direct(int[] tokens) {
        HookPoint hook = HookPoint.parse(HOOK, model.config());
        float[] x = model.forward(new int[][]{tokens}, ForwardRequest.capture(hook)).get(hook);
        int last = tokens.length - 1;
        double pre = 0;
        for (int i = 0; i < D; i++) {
            pre += x[last * D + i] * (double) wEnc[i * D_SAE + FEATURE];
        }
        return Math.max(0, pre);
    }

    static FeatureSeeker.Result search(long seed, List<int[]> seeds) {
        return new FeatureSeeker(model, sae, FEATURE, vocabulary).search(new FeatureSeeker.Settings(8, 4, 8, seed, 1), seeds, 5);
    }

    @Test
    void reportedActivationsAreTheFeatureRecomputedDirectlyAndTheSearchIsSeeded() {
        List<int[]> seeds = List.of(new int[]{1, 400, 22, 77}, new int[]{1, 9, 1500});
        FeatureSeeker.Result a = search(11, seeds);
        for (FeatureSeeker.Candidate c : a.best()) {
            assertEquals(1, c.tokens()[0], "BOS first");
            assertTrue(c.tokens().length <= 8);
            assertEquals(direct(c.tokens()), c.activation(), 1e-4);
        }
        assertEquals(direct(a.bestSeed().tokens()), a.bestSeed().activation(), 1e-4);
        assertTrue(a.best().get(0).activation() >= a.bestSeed().activation(), "the seeds are in the first population");
        assertTrue(a.best().get(0).activation() > 0);
        for (int g = 1; g < a.bestByGeneration().length; g++) {
            assertTrue(a.bestByGeneration()[g] >= a.bestByGeneration()[g - 1], "elitism keeps the best");
        }
        assertEquals(a.best().get(0).activation(), a.bestByGeneration()[4], 1e-6);

        FeatureSeeker.Result again = search(11, seeds);
        assertArrayEquals(a.best().get(0).tokens(), again.best().get(0).tokens());
        assertArrayEquals(a.meanByGeneration(), again.meanByGeneration());
        FeatureSeeker.Result other = search(12, seeds);
        assertNotEquals(java.util.Arrays.toString(a.meanByGeneration()), java.util.Arrays.toString(other.meanByGeneration()));

        assertEquals("feature 8 is out of range: the dictionary has features 0..7", assertThrows(IllegalArgumentException.class,
                () -> new FeatureSeeker(model, sae, 8, vocabulary)).getMessage());
    }

    @Test
    void seedsAreTheCachedTopExamplesContextsUpToTheirPosition(@TempDir Path dir) throws Exception {
        List<FeatureReport> reports = new ArrayList<>();
        for (int f = 0; f < D_SAE; f++) {
            List<FeatureReport.WindowedExample> examples = new ArrayList<>();
            if (f == FEATURE) {
                examples.add(new FeatureReport.WindowedExample(new Example(f, Example.Kind.TOP, -1, 0, 7, 5, 40, 2.5f), 2,
                        new int[]{30, 31, 32, 40, 50, 51}, new String[]{"a", "b", "c", "d", "e", "f"}, new float[6]));
                examples.add(new FeatureReport.WindowedExample(new Example(f, Example.Kind.QUANTILE, 3, 0, 8, 1, 60, 0.5f), 0,
                        new int[]{1, 60, 61}, new String[]{"a", "b", "c"}, new float[3]));
            } else {
                examples.add(new FeatureReport.WindowedExample(new Example(f, Example.Kind.TOP, -1, 0, 9, 1, 70, 1f), 0,
                        new int[]{1, 70}, new String[]{"a", "b"}, new float[2]));
            }
            reports.add(new FeatureReport(f, 10, 100, f == FEATURE ? 2.5f : 1f, 1.0, 4.0, new long[40], examples, null, null, null));
        }
        Files.createDirectories(dir);
        FeatureTables.write(dir, reports);
        CachedTopExamples cached = CachedTopExamples.read(dir, FEATURE);
        assertEquals(2.5f, cached.max());
        assertEquals(1, cached.contexts().size(), "top examples only");
        // Window starts at position 2; the example is at position 5: window tokens 0..3.
        assertArrayEquals(new int[]{30, 31, 32, 40}, cached.contexts().get(0));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> CachedTopExamples.read(dir.resolve("none"), FEATURE))
                .getMessage().contains("pass the output directory of `spindle features`"));
    }
}
