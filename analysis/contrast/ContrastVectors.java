package analysis.contrast;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.model.TransformerModel;
import activations.tokenizer.TextTokenizer;

import java.io.Serializable;
import java.util.List;

/**
 * Contrastive activation addition: per hook, the mean over pairs of {@code a(prompt + positive) -
 * a(prompt + negative)}, {@code a} the hook's value at the last token. {@link Sums} accumulates
 * in float64 and merges, so pairs can be spread over any number of tasks.
 */
public final class ContrastVectors {

    private ContrastVectors() {
    }

    /** Per-hook sums of differences and the pair count; mergeable across tasks. */
    public static final class Sums implements Serializable {
        private final double[][] sums;
        private long pairs;

        public Sums(int[] widths) {
            sums = new double[widths.length][];
            for (int h = 0; h < widths.length; h++) {
                sums[h] = new double[widths[h]];
            }
        }

        /** Runs both texts of {@code pair} and adds their last-token difference at every hook. */
        public void add(TransformerModel model, TextTokenizer tokenizer, List<HookPoint> hooks, boolean bos, ContrastPair pair) {
            float[][] positive = lastToken(model, tokenizer.encode(pair.positiveText(), bos), hooks);
            float[][] negative = lastToken(model, tokenizer.encode(pair.negativeText(), bos), hooks);
            for (int h = 0; h < hooks.size(); h++) {
                for (int i = 0; i < sums[h].length; i++) {
                    sums[h][i] += (double) positive[h][i] - negative[h][i];
                }
            }
            pairs++;
        }

        public Sums merge(Sums other) {
            for (int h = 0; h < sums.length; h++) {
                for (int i = 0; i < sums[h].length; i++) {
                    sums[h][i] += other.sums[h][i];
                }
            }
            pairs += other.pairs;
            return this;
        }

        public long pairs() {
            return pairs;
        }

        /** The mean difference at hook {@code h}. */
        public float[] mean(int h) {
            if (pairs == 0) {
                throw new IllegalStateException("no pairs were added");
            }
            float[] v = new float[sums[h].length];
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) (sums[h][i] / pairs);
            }
            return v;
        }
    }

    static float[][] lastToken(TransformerModel model, int[] ids, List<HookPoint> hooks) {
        ForwardResult r = model.forward(new int[][] {ids}, ForwardRequest.capture(hooks));
        float[][] out = new float[hooks.size()][];
        for (int h = 0; h < hooks.size(); h++) {
            out[h] = r.row(hooks.get(h), 0, ids.length - 1);
        }
        return out;
    }
}
