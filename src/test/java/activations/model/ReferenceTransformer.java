package activations.model;

import java.util.HashMap;
import java.util.Map;

/**
 * A deliberately naive float64 transformer for tests: one sequence, textbook formulas, nested
 * loops, weights taken straight from the test's own tensor map (no code shared with the runtime).
 * Returns every hook keyed by its TransformerLens name.
 */
final class ReferenceTransformer {

    interface Spec {
        boolean gpt2();
        int d();
        int layers();
        int heads();
        int kvHeads();
        int headDim();
        int dMlp();
        double eps();
        double ropeTheta();
        int slidingWindow();
    }

    private ReferenceTransformer() {
    }

    static Map<String, double[][]> run(Spec s, Map<String, float[]> w, int[] tokens) {
        Map<String, double[][]> hooks = new HashMap<>();
        int T = tokens.length;
        int d = s.d();
        double[][] x = new double[T][d];
        double[][] embed = new double[T][d];
        double[][] pos = new double[T][d];
        String embedName = s.gpt2() ? "transformer.wte.weight" : "model.embed_tokens.weight";
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < d; i++) {
                embed[t][i] = w.get(embedName)[tokens[t] * d + i];
                pos[t][i] = s.gpt2() ? w.get("transformer.wpe.weight")[t * d + i] : 0;
                x[t][i] = embed[t][i] + pos[t][i];
            }
        }
        hooks.put("hook_embed", embed);
        if (s.gpt2()) {
            hooks.put("hook_pos_embed", pos);
        }
        for (int l = 0; l < s.layers(); l++) {
            String p = s.gpt2() ? "transformer.h." + l + "." : "model.layers." + l + ".";
            String b = "blocks." + l + ".";
            hooks.put(b + "hook_resid_pre", copy(x));
            double[][] n1 = normalize(x, s);
            hooks.put(b + "ln1.hook_normalized", copy(n1));
            double[][] h1 = s.gpt2() ? affine(n1, w.get(p + "ln_1.weight"), w.get(p + "ln_1.bias"))
                    : affine(n1, w.get(p + "input_layernorm.weight"), null);
            double[][] attn = attention(s, w, p, h1, l);
            hooks.put(b + "hook_attn_out", copy(attn));
            add(x, attn);
            hooks.put(b + "hook_resid_mid", copy(x));
            double[][] n2 = normalize(x, s);
            hooks.put(b + "ln2.hook_normalized", copy(n2));
            double[][] h2 = s.gpt2() ? affine(n2, w.get(p + "ln_2.weight"), w.get(p + "ln_2.bias"))
                    : affine(n2, w.get(p + "post_attention_layernorm.weight"), null);
            hooks.put(b + "mlp.hook_in", copy(h2));
            double[][] hidden;
            double[][] mlpOut;
            if (s.gpt2()) {
                hidden = linearInOut(h2, w.get(p + "mlp.c_fc.weight"), w.get(p + "mlp.c_fc.bias"), d, s.dMlp());
                for (double[] row : hidden) {
                    for (int i = 0; i < row.length; i++) {
                        double v = row[i];
                        row[i] = 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
                    }
                }
                hooks.put(b + "mlp.hook_post", copy(hidden));
                mlpOut = linearInOut(hidden, w.get(p + "mlp.c_proj.weight"), w.get(p + "mlp.c_proj.bias"), s.dMlp(), d);
            } else {
                double[][] gate = linearOutIn(h2, w.get(p + "mlp.gate_proj.weight"), null, d, s.dMlp());
                double[][] up = linearOutIn(h2, w.get(p + "mlp.up_proj.weight"), null, d, s.dMlp());
                hidden = new double[T][s.dMlp()];
                for (int t = 0; t < T; t++) {
                    for (int i = 0; i < s.dMlp(); i++) {
                        double g = gate[t][i];
                        hidden[t][i] = g / (1 + Math.exp(-g)) * up[t][i];
                    }
                }
                hooks.put(b + "mlp.hook_post", copy(hidden));
                mlpOut = linearOutIn(hidden, w.get(p + "mlp.down_proj.weight"), null, s.dMlp(), d);
            }
            hooks.put(b + "hook_mlp_out", copy(mlpOut));
            add(x, mlpOut);
            hooks.put(b + "hook_resid_post", copy(x));
        }
        double[][] nf = normalize(x, s);
        hooks.put("ln_final.hook_normalized", copy(nf));
        double[][] hf = s.gpt2() ? affine(nf, w.get("transformer.ln_f.weight"), w.get("transformer.ln_f.bias"))
                : affine(nf, w.get("model.norm.weight"), null);
        String unembedName = w.containsKey("lm_head.weight") ? "lm_head.weight" : embedName;
        int vocab = w.get(unembedName).length / d;
        double[][] logits = new double[T][vocab];
        for (int t = 0; t < T; t++) {
            for (int v = 0; v < vocab; v++) {
                for (int i = 0; i < d; i++) {
                    logits[t][v] += hf[t][i] * w.get(unembedName)[v * d + i];
                }
            }
        }
        hooks.put("logits", logits);
        return hooks;
    }

    private static double[][] attention(Spec s, Map<String, float[]> w, String p, double[][] h, int layer) {
        int T = h.length;
        int d = s.d();
        int hd = s.headDim();
        double[][] q;
        double[][] k;
        double[][] v;
        if (s.gpt2()) {
            double[][] qkv = linearInOut(h, w.get(p + "attn.c_attn.weight"), w.get(p + "attn.c_attn.bias"), d, 3 * d);
            q = slice(qkv, 0, d);
            k = slice(qkv, d, d);
            v = slice(qkv, 2 * d, d);
        } else {
            q = linearOutIn(h, w.get(p + "self_attn.q_proj.weight"), w.get(p + "self_attn.q_proj.bias"), d, s.heads() * hd);
            k = linearOutIn(h, w.get(p + "self_attn.k_proj.weight"), w.get(p + "self_attn.k_proj.bias"), d, s.kvHeads() * hd);
            v = linearOutIn(h, w.get(p + "self_attn.v_proj.weight"), w.get(p + "self_attn.v_proj.bias"), d, s.kvHeads() * hd);
        }
        double[][] out = new double[T][s.heads() * hd];
        for (int head = 0; head < s.heads(); head++) {
            int kvHead = head / (s.heads() / s.kvHeads());
            double[][] qh = new double[T][];
            double[][] kh = new double[T][];
            for (int t = 0; t < T; t++) {
                qh[t] = rope(s, java.util.Arrays.copyOfRange(q[t], head * hd, (head + 1) * hd), t);
                kh[t] = rope(s, java.util.Arrays.copyOfRange(k[t], kvHead * hd, (kvHead + 1) * hd), t);
            }
            for (int i = 0; i < T; i++) {
                double[] scores = new double[i + 1];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j <= i; j++) {
                    boolean inWindow = s.slidingWindow() == 0 || i - j < s.slidingWindow();
                    double dot = 0;
                    for (int c = 0; c < hd; c++) {
                        dot += qh[i][c] * kh[j][c];
                    }
                    scores[j] = inWindow ? dot / Math.sqrt(hd) : Double.NEGATIVE_INFINITY;
                    max = Math.max(max, scores[j]);
                }
                double sum = 0;
                for (int j = 0; j <= i; j++) {
                    scores[j] = Math.exp(scores[j] - max);
                    sum += scores[j];
                }
                for (int j = 0; j <= i; j++) {
                    for (int c = 0; c < hd; c++) {
                        out[i][head * hd + c] += scores[j] / sum * v[j][kvHead * hd + c];
                    }
                }
            }
        }
        return s.gpt2()
                ? linearInOut(out, w.get(p + "attn.c_proj.weight"), w.get(p + "attn.c_proj.bias"), d, d)
                : linearOutIn(out, w.get(p + "self_attn.o_proj.weight"), null, s.heads() * hd, d);
    }

    /** rotate_half RoPE with frequencies theta^(-2i/hd); GPT-2 has none. */
    private static double[] rope(Spec s, double[] x, int t) {
        if (s.gpt2()) {
            return x;
        }
        int half = x.length / 2;
        double[] y = new double[x.length];
        for (int i = 0; i < half; i++) {
            double angle = t * Math.pow(s.ropeTheta(), -2.0 * i / x.length);
            y[i] = x[i] * Math.cos(angle) - x[i + half] * Math.sin(angle);
            y[i + half] = x[i + half] * Math.cos(angle) + x[i] * Math.sin(angle);
        }
        return y;
    }

    private static double[][] normalize(double[][] x, Spec s) {
        double[][] y = new double[x.length][];
        for (int t = 0; t < x.length; t++) {
            double mean = 0;
            if (s.gpt2()) {
                for (double v : x[t]) {
                    mean += v / x[t].length;
                }
            }
            double var = 0;
            for (double v : x[t]) {
                var += (v - mean) * (v - mean) / x[t].length;
            }
            y[t] = new double[x[t].length];
            for (int i = 0; i < x[t].length; i++) {
                y[t][i] = (x[t][i] - mean) / Math.sqrt(var + s.eps());
            }
        }
        return y;
    }

    private static double[][] affine(double[][] x, float[] gain, float[] bias) {
        double[][] y = new double[x.length][x[0].length];
        for (int t = 0; t < x.length; t++) {
            for (int i = 0; i < x[t].length; i++) {
                y[t][i] = x[t][i] * gain[i] + (bias == null ? 0 : bias[i]);
            }
        }
        return y;
    }

    /** y = x W + b with W stored [in, out] (GPT-2 Conv1D). */
    private static double[][] linearInOut(double[][] x, float[] wgt, float[] bias, int in, int out) {
        double[][] y = new double[x.length][out];
        for (int t = 0; t < x.length; t++) {
            for (int o = 0; o < out; o++) {
                double acc = bias == null ? 0 : bias[o];
                for (int i = 0; i < in; i++) {
                    acc += x[t][i] * wgt[i * out + o];
                }
                y[t][o] = acc;
            }
        }
        return y;
    }

    /** y = x W^T + b with W stored [out, in] (nn.Linear). */
    private static double[][] linearOutIn(double[][] x, float[] wgt, float[] bias, int in, int out) {
        double[][] y = new double[x.length][out];
        for (int t = 0; t < x.length; t++) {
            for (int o = 0; o < out; o++) {
                double acc = bias == null ? 0 : bias[o];
                for (int i = 0; i < in; i++) {
                    acc += x[t][i] * wgt[o * in + i];
                }
                y[t][o] = acc;
            }
        }
        return y;
    }

    private static double[][] slice(double[][] x, int from, int width) {
        double[][] y = new double[x.length][];
        for (int t = 0; t < x.length; t++) {
            y[t] = java.util.Arrays.copyOfRange(x[t], from, from + width);
        }
        return y;
    }

    private static void add(double[][] x, double[][] y) {
        for (int t = 0; t < x.length; t++) {
            for (int i = 0; i < x[t].length; i++) {
                x[t][i] += y[t][i];
            }
        }
    }

    private static double[][] copy(double[][] x) {
        double[][] y = new double[x.length][];
        for (int t = 0; t < x.length; t++) {
            y[t] = x[t].clone();
        }
        return y;
    }
}
