package attribution;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import activations.model.TinyCheckpoint;
import activations.model.TransformerModel;
import attribution.LocalReplacementModel.Feature;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.ndarray.INDArray;
import training.export.CircuitTracerDictionary;

/**
 * The graph against the frozen model run forward (real TransformerModel, patterns and scales
 * replaced by the captured ones): the replacement reproduces the real logits; every feature's
 * pre-activation (and every logit target) is the sum of its incoming edges plus the constant the
 * frozen model gives with every node removed; and each edge is the change in its target when its
 * source alone is removed (an exact finite difference: the frozen model is affine in the nodes).
 * On random Llama-layout (grouped-query, RoPE, RMSNorm) and GPT-2-layout (LayerNorm with bias,
 * learned positions) models, with a JumpReLU CLT and a JumpReLU skip transcoder set, on both input hooks.
 */
class AttributionExactnessTest {

    static final int D = 16;
    static final int F = 24;

    static Stream<Arguments> cases() {
        return Stream.of(
                Arguments.of("llama + clt on ln2.hook_normalized", false, true, "ln2.hook_normalized", true),
                Arguments.of("gpt2 + clt on ln2.hook_normalized", true, true, "ln2.hook_normalized", false),
                Arguments.of("llama + skip set on hook_resid_mid", false, false, "hook_resid_mid", false),
                Arguments.of("gpt2 + skip set on hook_resid_mid", true, false, "hook_resid_mid", true));
    }

    record Setup(TransformerModel model, CircuitTracerDictionary transcoder, LocalReplacementModel m, AttributionGraph graph) {
    }

    static Setup setup(Path dir, boolean gpt2, boolean clt, String hook, boolean firstSpecial) {
        TinyCheckpoint checkpoint = gpt2 ? TinyCheckpoint.gpt2(D, 2, 4, 23, 12, 11)
                : TinyCheckpoint.llama(D, 2, 4, 2, 40, 23, 12, false, true, 0, 12);
        TransformerModel model = TransformerModel.load(checkpoint.write(dir.resolve("model")));
        Path tc = clt ? TinyTranscoders.crossLayer(dir.resolve("clt"), 2, D, F, hook, 13)
                : TinyTranscoders.set(dir.resolve("set"), 2, D, F, hook, true, 14);
        CircuitTracerDictionary transcoder = CircuitTracerDictionary.load(tc);
        int[] tokens = {1, 7, 3, 22, 9, 14, 5};
        LocalReplacementModel m = new LocalReplacementModel(model, transcoder, tokens, firstSpecial);
        AttributionGraph graph = Attribution.attribute(m, new Attribution.Options(5, 0.99, 16));
        return new Setup(model, transcoder, m, graph);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void replacementReproducesTheModelAndEdgesAreExactDirectEffects(String name, boolean gpt2, boolean clt, String hook,
                                                                     boolean firstSpecial, @TempDir Path dir) {
        Setup s = setup(dir, gpt2, clt, hook, firstSpecial);
        LocalReplacementModel m = s.m();
        AttributionGraph g = s.graph();
        int t = m.positions();
        float[] ones = new float[t];
        Arrays.fill(ones, 1f);
        assertTrue(g.features().size() > 20, name + ": enough active features to test (" + g.features().size() + ")");
        assertTrue(g.logitTokens().length >= 2, "several logit targets");

        // 1. The replacement (features + errors, frozen or not) gives the real logits.
        float[] real = m.lastLogits();
        double mean = 0;
        for (float v : real) {
            mean += v / (double) real.length;
        }
        for (boolean freeze : new boolean[] {true, false}) {
            FrozenForward.Output replaced = FrozenForward.run(m, s.model(), s.transcoder(), ones, m.activations, m.errors, freeze);
            for (int v = 0; v < real.length; v++) {
                assertEquals(real[v] - mean, replaced.demeanedLastLogits()[v], 1e-4, name + " logit " + v + " frozen=" + freeze);
            }
        }

        // 2. Target values = incoming edges + the frozen model's constant (every node removed).
        FrozenForward.Output full = FrozenForward.run(m, s.model(), s.transcoder(), ones, m.activations, m.errors, true);
        FrozenForward.Output constant = FrozenForward.run(m, s.model(), s.transcoder(), new float[t], zeros(m.activations),
                zeros(m.errors), true);
        int n = g.nodes();
        for (int i = 0; i < g.features().size(); i++) {
            Feature f = g.features().get(i);
            double incoming = 0;
            for (int j = 0; j < n; j++) {
                incoming += g.edge(i, j);
            }
            double pre = m.preActivation(f);
            assertEquals(pre, full.pre(f), 1e-4, "frozen forward pre-activation");
            double bias = constant.pre(f);
            assertEquals(pre, incoming + bias, 1e-4, name + " feature " + f);
        }
        for (int k = 0; k < g.logitTokens().length; k++) {
            double incoming = 0;
            for (int j = 0; j < n; j++) {
                incoming += g.edge(g.logitStart() + k, j);
            }
            int v = g.logitTokens()[k];
            assertEquals(real[v] - mean, incoming + constant.demeanedLastLogits()[v], 1e-4, name + " logit target " + v);
        }
        // 3. Each sampled source's column = the change in every target when that source alone is removed.
        Random r = new Random(3);
        int checked = 0;
        for (int trial = 0; trial < 9; trial++) {
            int source = trial < 3 ? r.nextInt(g.features().size())
                    : trial < 6 ? g.errorStart() + r.nextInt(g.tokenStart() - g.errorStart()) : g.tokenStart() + r.nextInt(t);
            INDArray[] acts = copy(m.activations);
            INDArray[] errs = copy(m.errors);
            float[] scale = ones.clone();
            switch (g.kind(source)) {
                case FEATURE -> {
                    Feature f = g.features().get(source);
                    acts[f.layer()].putScalar(f.position(), f.feature(), 0);
                }
                case ERROR -> errs[g.errorLayer(source)].getRow(g.position(source)).assign(0);
                default -> scale[g.position(source)] = 0;
            }
            FrozenForward.Output without = FrozenForward.run(m, s.model(), s.transcoder(), scale, acts, errs, true);
            for (int i = 0; i < g.features().size(); i++) {
                Feature f = g.features().get(i);
                double effect = full.pre(f)
                        - without.pre(f);
                assertEquals(effect, g.edge(i, source), 1e-4, name + " edge " + source + " -> feature " + f);
                checked++;
            }
            for (int k = 0; k < g.logitTokens().length; k++) {
                int v = g.logitTokens()[k];
                double effect = full.demeanedLastLogits()[v] - without.demeanedLastLogits()[v];
                assertEquals(effect, g.edge(g.logitStart() + k, source), 1e-4, name + " edge " + source + " -> logit " + v);
            }
        }
        assertTrue(checked > 0);
        if (firstSpecial) {
            assertTrue(g.features().stream().noneMatch(f -> f.position() == 0), "the special first position has no feature nodes");
        }
    }

    static INDArray[] zeros(INDArray[] arrays) {
        INDArray[] out = copy(arrays);
        for (INDArray a : out) {
            a.assign(0);
        }
        return out;
    }

    static INDArray[] copy(INDArray[] arrays) {
        return Arrays.stream(arrays).map(INDArray::dup).toArray(INDArray[]::new);
    }

}
