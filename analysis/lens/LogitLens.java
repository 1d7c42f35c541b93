package analysis.lens;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.hooks.HookPoint.Kind;
import activations.model.TransformerModel;

import java.util.ArrayList;
import java.util.List;

/**
 * The logit lens: every layer's residual stream ({@code blocks.l.hook_resid_post}) read through
 * the model's own head (final norm with its gain, then the unembedding), so row {@code l} says what
 * the model would predict if it stopped after layer {@code l}; the last row is the model's logits.
 */
public final class LogitLens {

    /** {@code logits} is {@code [layers, seq, vocab]} row-major. */
    public record Result(int layers, int seq, int vocab, float[] logits) {

        /** Softmax probability of {@code token} at (layer, position). */
        public double probability(int layer, int position, int token) {
            int base = (layer * seq + position) * vocab;
            double max = Double.NEGATIVE_INFINITY;
            for (int v = 0; v < vocab; v++) {
                max = Math.max(max, logits[base + v]);
            }
            double sum = 0;
            for (int v = 0; v < vocab; v++) {
                sum += Math.exp(logits[base + v] - max);
            }
            return Math.exp(logits[base + token] - max) / sum;
        }

        /** {@code [layers, seq]}: the probability of {@code token} by layer and position. */
        public double[][] probabilities(int token) {
            double[][] p = new double[layers][seq];
            for (int l = 0; l < layers; l++) {
                for (int t = 0; t < seq; t++) {
                    p[l][t] = probability(l, t, token);
                }
            }
            return p;
        }
    }

    private LogitLens() {
    }

    public static Result run(TransformerModel model, int[] tokens) {
        int layers = model.config().nLayers();
        int d = model.config().dModel();
        List<HookPoint> hooks = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            hooks.add(new HookPoint(Kind.RESID_POST, l));
        }
        ForwardResult r = model.forward(new int[][] {tokens}, ForwardRequest.capture(hooks));
        float[] residual = new float[layers * tokens.length * d];
        for (int l = 0; l < layers; l++) {
            System.arraycopy(r.get(hooks.get(l)), 0, residual, l * tokens.length * d, tokens.length * d);
        }
        return new Result(layers, tokens.length, model.config().vocabSize(), model.unembed(residual));
    }
}
