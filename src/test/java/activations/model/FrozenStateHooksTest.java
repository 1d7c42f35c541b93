package activations.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.hooks.Intervention;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The hooks the local replacement model freezes: norm scales and attention patterns. */
class FrozenStateHooksTest {

    static Stream<Arguments> checkpoints() {
        return Stream.of(
                Arguments.of("gpt2", TinyCheckpoint.gpt2(16, 2, 4, 23, 12, 5)),
                Arguments.of("llama-gqa", TinyCheckpoint.llama(16, 2, 4, 2, 40, 23, 12, false, true, 0, 6)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("checkpoints")
    void scalesDivideTheCentredResidualAndPatternsAreCausalDistributions(String name, TinyCheckpoint c, @TempDir Path dir) {
        TransformerModel model = TransformerModel.load(c.write(dir));
        int[][] tokens = {{3, 7, 1, 22, 9, 0}};
        int n = tokens[0].length;
        HookPoint pre = HookPoint.parse("blocks.1.hook_resid_pre", model.config());
        HookPoint normalized = HookPoint.parse("blocks.1.ln1.hook_normalized", model.config());
        HookPoint scale = HookPoint.parse("blocks.1.ln1.hook_scale", model.config());
        HookPoint pattern = HookPoint.parse("blocks.1.attn.hook_pattern", model.config());
        HookPoint finalScale = HookPoint.parse("ln_final.hook_scale", model.config());
        ForwardResult r = model.forward(tokens, ForwardRequest.capture(pre, normalized, scale, pattern, finalScale));
        assertEquals(1, r.dim(scale));
        assertEquals(n, r.get(finalScale).length);
        for (int t = 0; t < n; t++) {
            float[] x = r.row(pre, 0, t);
            float[] y = r.row(normalized, 0, t);
            double mean = 0;
            for (float v : x) {
                mean += c.gpt2() ? v / (double) x.length : 0;
            }
            double s = r.get(scale)[t];
            for (int i = 0; i < x.length; i++) {
                assertEquals((x[i] - mean) / s, y[i], 1e-5, name + " position " + t);
            }
        }
        float[] p = r.get(pattern);
        assertEquals(c.heads() * n * n, p.length);
        for (int h = 0; h < c.heads(); h++) {
            for (int q = 0; q < n; q++) {
                double sum = 0;
                for (int k = 0; k < n; k++) {
                    float w = p[(h * n + q) * n + k];
                    if (k > q) {
                        assertEquals(0f, w, "future positions get no attention");
                    }
                    sum += w;
                }
                assertEquals(1.0, sum, 1e-5);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("checkpoints")
    void replacedScalesAndPatternsAreTheOnesApplied(String name, TinyCheckpoint c, @TempDir Path dir) {
        TransformerModel model = TransformerModel.load(c.write(dir));
        int[][] tokens = {{3, 7, 1, 22, 9, 0}};
        int n = tokens[0].length;
        HookPoint logits = HookPoint.parse("logits", model.config());
        HookPoint scale = HookPoint.parse("blocks.0.ln2.hook_scale", model.config());
        HookPoint normalized = HookPoint.parse("blocks.0.ln2.hook_normalized", model.config());
        HookPoint pattern = HookPoint.parse("blocks.0.attn.hook_pattern", model.config());
        ForwardResult clean = model.forward(tokens, ForwardRequest.capture(logits, scale, normalized, pattern));

        // The captured values put back change nothing.
        ForwardResult same = model.forward(tokens, ForwardRequest.capture(logits)
                .intervene(scale, Intervention.replaceWith(clean.get(scale)))
                .intervene(pattern, Intervention.replaceWith(clean.get(pattern))));
        float[] a = clean.get(logits);
        float[] b = same.get(logits);
        for (int i = 0; i < a.length; i++) {
            assertEquals(a[i], b[i], 1e-6);
        }

        // A doubled scale halves the normalized vector.
        float[] doubled = clean.get(scale).clone();
        for (int i = 0; i < doubled.length; i++) {
            doubled[i] *= 2;
        }
        ForwardResult halved = model.forward(tokens, ForwardRequest.capture(normalized)
                .intervene(scale, Intervention.replaceWith(doubled)));
        for (int i = 0; i < n * c.d(); i++) {
            assertEquals(clean.get(normalized)[i] / 2, halved.get(normalized)[i], 1e-6);
        }

        // Attention to the first position only: the first position's output everywhere.
        float[] first = new float[clean.get(pattern).length];
        for (int h = 0; h < c.heads(); h++) {
            for (int q = 0; q < n; q++) {
                first[(h * n + q) * n] = 1f;
            }
        }
        HookPoint attnOut = HookPoint.parse("blocks.0.hook_attn_out", model.config());
        ForwardResult sink = model.forward(tokens, ForwardRequest.capture(attnOut).intervene(pattern, Intervention.replaceWith(first)));
        for (int t = 1; t < n; t++) {
            float[] row = sink.row(attnOut, 0, t);
            float[] row0 = sink.row(attnOut, 0, 0);
            for (int i = 0; i < row.length; i++) {
                assertEquals(row0[i], row[i], 1e-5);
            }
        }
        assertTrue(HookPoint.all(model.config()).stream().noneMatch(h -> h.kind().frozenState()),
                "frozen state is not offered for caching");
    }
}
