package analysis.ablation;

import activations.hooks.ForwardRequest;
import activations.hooks.HookPoint;
import activations.hooks.Intervention;
import activations.model.TransformerModel;
import activations.tokenizer.TextTokenizer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import training.evaluation.DictionaryFixtures;
import training.evaluation.FeatureDictionary;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class HookAblationTest {

    static final String HOOK = "blocks.0.hook_resid_post";
    static final HookPoint RESID = HookPoint.parse(HOOK, TransformerModel.load(Path.of("models/tinystories-656k")).config());
    static final HookPoint LOGITS = new HookPoint(HookPoint.Kind.LOGITS, -1);
    static TransformerModel model;
    static int[][] tokens;
    static int[][] donors;

    @BeforeAll
    static void load() throws Exception {
        model = TransformerModel.load(Path.of("models/tinystories-656k"));
        // Real stories, so the clean model predicts well and an ablation visibly hurts.
        java.util.List<String> lines = java.nio.file.Files.readAllLines(
                Path.of("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt")).stream().filter(l -> l.length() > 80).toList();
        tokens = new int[3][];
        donors = new int[3][];
        try (TextTokenizer tokenizer = TextTokenizer.load(Path.of("models/tinystories-656k"))) {
            for (int b = 0; b < 3; b++) {
                tokens[b] = Arrays.copyOf(tokenizer.encode(lines.get(b), true), 12);
                donors[b] = Arrays.copyOf(tokenizer.encode(lines.get(10 + b), true), 12);
            }
        }
    }

    static float[] logits(Intervention intervention) {
        ForwardRequest r = ForwardRequest.capture(LOGITS);
        if (intervention != null) {
            r.intervene(RESID, intervention);
        }
        return model.forward(tokens, r).get(LOGITS);
    }

    /** Mean next-token CE computed here, in double, independently of NextTokenLoss. */
    static double meanCe(float[] logits) {
        int vocab = model.config().vocabSize();
        int seqLen = tokens[0].length;
        double sum = 0;
        int n = 0;
        for (int b = 0; b < tokens.length; b++) {
            for (int t = 0; t + 1 < seqLen; t++) {
                int off = (b * seqLen + t) * vocab;
                double max = Double.NEGATIVE_INFINITY;
                for (int v = 0; v < vocab; v++) {
                    max = Math.max(max, logits[off + v]);
                }
                double z = 0;
                for (int v = 0; v < vocab; v++) {
                    z += Math.exp(logits[off + v] - max);
                }
                sum += max + Math.log(z) - logits[off + tokens[b][t + 1]];
                n++;
            }
        }
        return sum / n;
    }

    @Test
    void zeroAblationIsAForwardWithTheHookZeroed() {
        HookAblation zero = new HookAblation(model, HOOK, AblationMode.ZERO);
        float[] expected = logits(Intervention.zero());
        assertArrayEquals(expected, zero.ablatedLogits(tokens, null));
        AblationLoss loss = new AblationLoss(10);
        zero.add(tokens, null, loss);
        assertEquals(3 * 11, loss.positions);
        assertEquals(meanCe(logits(null)), loss.clean(), 1e-9);
        assertEquals(meanCe(expected), loss.ablated(), 1e-9);
        assertTrue(loss.ablated() > loss.clean() + 0.5, "zeroing the residual stream hurts");
        assertEquals(loss.positions, Arrays.stream(loss.counts).sum() + loss.below + loss.above);
        assertTrue(loss.kl() > 0);
    }

    @Test
    void meanAblationReplacesEveryPositionWithTheDataMean() {
        float[] x = model.forward(tokens, ForwardRequest.capture(RESID)).get(RESID);
        int d = 128;
        int rows = x.length / d;
        double[] mean = new double[d];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < d; i++) {
                mean[i] += x[r * d + i] / (double) rows;
            }
        }
        float[] tiled = new float[rows * d];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < d; i++) {
                tiled[r * d + i] = (float) mean[i];
            }
        }
        HookAblation ablation = new HookAblation(model, HOOK, AblationMode.MEAN);
        AblationMeans sums = new AblationMeans(ablation.meanWidth());
        ablation.accumulateMeans(Arrays.copyOfRange(tokens, 0, 2), sums);
        ablation.accumulateMeans(Arrays.copyOfRange(tokens, 2, 3), sums);
        assertEquals(rows, sums.count);
        ablation.withMeans(sums.means());
        float[] expected = logits(Intervention.replaceWith(tiled));
        float[] actual = ablation.ablatedLogits(tokens, null);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], 1e-4);
        }
    }

    @Test
    void resampleUsesTheDonorsValuesAndSeededDonorsAreOtherSequencesOfTheSameLength() {
        float[] donorValues = model.forward(donors, ForwardRequest.capture(RESID)).get(RESID);
        HookAblation resample = new HookAblation(model, HOOK, AblationMode.RESAMPLE);
        assertArrayEquals(logits(Intervention.replaceWith(donorValues)), resample.ablatedLogits(tokens, donors));

        long[] ids = {40, 10, 30, 20, 50, 60, 70};
        int[] lengths = {8, 8, 8, 8, 8, 8, 5};
        int[] a = ResampleDonors.assign(ids, lengths, 7);
        assertArrayEquals(a, ResampleDonors.assign(ids, lengths, 7), "seeded");
        assertNotEquals(Arrays.toString(a), Arrays.toString(ResampleDonors.assign(ids, lengths, 8)), "another seed, other donors");
        for (int i = 0; i < 6; i++) {
            assertNotEquals(i, a[i], "never its own donor");
            assertEquals(8, lengths[a[i]]);
        }
        assertEquals(-1, a[6], "no other sequence of length 5");
        // The order the sequences arrive in does not change who donates to whom.
        long[] reversedIds = {70, 60, 50, 20, 30, 10, 40};
        int[] reversedLengths = {5, 8, 8, 8, 8, 8, 8};
        int[] b = ResampleDonors.assign(reversedIds, reversedLengths, 7);
        for (int i = 0; i < 7; i++) {
            long donor = a[i] < 0 ? -1 : ids[a[i]];
            int j = 6 - i;
            assertEquals(donor, b[j] < 0 ? -1 : reversedIds[b[j]]);
        }
    }

    /** A random ReLU SAE on the hook: features relu(x W_enc) (zero biases), decoder rows W_dec. */
    static Path randomSae(Path dir, float[] wEnc, float[] wDec, int dSae) {
        Random random = new Random(11);
        for (int i = 0; i < wEnc.length; i++) {
            wEnc[i] = (float) (random.nextGaussian() * 0.3);
        }
        for (int i = 0; i < wDec.length; i++) {
            wDec[i] = (float) (random.nextGaussian() * 0.3);
        }
        return DictionaryFixtures.write(dir, HOOK, 128, dSae, wEnc, wDec);
    }

    @Test
    void featureAblationSubtractsTheFeaturesDecoderContributionsAndKeepsTheErrorTerm(@TempDir Path dir) {
        int d = 128;
        int dSae = 16;
        float[] wEnc = new float[d * dSae];
        float[] wDec = new float[dSae * d];
        FeatureDictionary sae = FeatureDictionary.load(randomSae(dir.resolve("sae"), wEnc, wDec, dSae));

        HookAblation none = new HookAblation(model, HOOK, AblationMode.ZERO, sae, new int[0]);
        assertArrayEquals(logits(null), none.ablatedLogits(tokens, null), "no features removed: the error term restores x exactly");

        int[] removed = {2, 5, 11};
        float[] x = model.forward(tokens, ForwardRequest.capture(RESID)).get(RESID);
        int rows = x.length / d;
        float[] byHand = new float[x.length];
        int firing = 0;
        for (int r = 0; r < rows; r++) {
            double[] out = new double[d];
            for (int i = 0; i < d; i++) {
                out[i] = x[r * d + i];
            }
            for (int f : removed) {
                double pre = 0;
                for (int i = 0; i < d; i++) {
                    pre += x[r * d + i] * (double) wEnc[i * dSae + f];
                }
                double act = Math.max(0, pre);
                firing += act > 0 ? 1 : 0;
                for (int i = 0; i < d; i++) {
                    out[i] -= act * wDec[f * d + i];
                }
            }
            for (int i = 0; i < d; i++) {
                byHand[r * d + i] = (float) out[i];
            }
        }
        assertTrue(firing > rows / 2, "the removed features fire often enough to matter: " + firing);
        float[] expected = logits(Intervention.replaceWith(byHand));
        float[] actual = new HookAblation(model, HOOK, AblationMode.ZERO, sae, removed).ablatedLogits(tokens, null);
        double maxDiff = 0;
        for (int i = 0; i < expected.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(expected[i] - actual[i]));
        }
        assertTrue(maxDiff < 1e-3, "max logit difference " + maxDiff);
        assertNotEquals(meanCe(logits(null)), meanCe(actual), 1e-4);

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new HookAblation(model, HOOK, AblationMode.ZERO, sae, new int[]{3, 16}));
        assertEquals("feature 16 is out of range: the dictionary has features 0..15", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> new HookAblation(model, "blocks.1.hook_resid_post", AblationMode.ZERO, sae, new int[]{3}));
        assertTrue(e.getMessage().startsWith("the dictionary reads blocks.0.hook_resid_post, not --hook blocks.1.hook_resid_post"), e.getMessage());
    }

    @Test
    void ablatingEveryFeatureOfAnExactSaeIsAblatingTheHook(@TempDir Path dir) {
        // The identity SAE's features are relu(x_i) and relu(-x_i) with decoder rows e_i and -e_i: replacing all of
        // them by the donor's (or by their means) replaces x by the donor's x (or by the mean of x).
        FeatureDictionary sae = FeatureDictionary.load(DictionaryFixtures.identity(dir.resolve("identity"), HOOK, 128));
        int[] all = java.util.stream.IntStream.range(0, 256).toArray();
        float[] hookResample = new HookAblation(model, HOOK, AblationMode.RESAMPLE).ablatedLogits(tokens, donors);
        float[] featureResample = new HookAblation(model, HOOK, AblationMode.RESAMPLE, sae, all).ablatedLogits(tokens, donors);
        HookAblation hookMean = new HookAblation(model, HOOK, AblationMode.MEAN);
        AblationMeans hookSums = new AblationMeans(hookMean.meanWidth());
        hookMean.accumulateMeans(tokens, hookSums);
        HookAblation featureMean = new HookAblation(model, HOOK, AblationMode.MEAN, sae, all);
        AblationMeans featureSums = new AblationMeans(featureMean.meanWidth());
        featureMean.accumulateMeans(tokens, featureSums);
        float[] a = hookMean.withMeans(hookSums.means()).ablatedLogits(tokens, null);
        float[] b = featureMean.withMeans(featureSums.means()).ablatedLogits(tokens, null);
        for (int i = 0; i < hookResample.length; i++) {
            assertEquals(hookResample[i], featureResample[i], 1e-3);
            assertEquals(a[i], b[i], 1e-3);
        }
    }

    @Test
    void badHookAndModeAreOneLineErrors() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new HookAblation(model, "blocks.7.hook_resid_post", AblationMode.ZERO));
        assertTrue(e.getMessage().contains("layer 7 does not exist"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AblationMode.parse("shuffle"));
        assertEquals("unknown ablation mode 'shuffle'; use zero, mean or resample", e.getMessage());
    }
}
