package analysis.probe;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.model.TransformerModel;

import java.util.List;
import java.util.Locale;

/**
 * How one example's activations become one vector per hook: the last token's value, or the mean
 * over its tokens (without a leading BOS, whose activation is the same for every example and
 * usually far larger than the rest).
 */
public enum Pooling {
    LAST,
    MEAN;

    public static Pooling parse(String name) {
        for (Pooling p : values()) {
            if (p.name().toLowerCase(Locale.ROOT).equals(name == null ? null : name.trim().toLowerCase(Locale.ROOT))) {
                return p;
            }
        }
        throw new IllegalArgumentException("unknown pooling '" + name + "'; use last or mean");
    }

    public String userName() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** Pooled vectors [hooks][width] of one tokenized example; {@code bos} says whether tokens[0] is a BOS to skip. */
    public float[][] pool(TransformerModel model, List<HookPoint> hooks, int[] tokens, boolean bos) {
        ForwardResult r = model.forward(new int[][]{tokens}, ForwardRequest.capture(hooks));
        float[][] out = new float[hooks.size()][];
        int from = bos && tokens.length > 1 ? 1 : 0;
        for (int h = 0; h < hooks.size(); h++) {
            HookPoint hook = hooks.get(h);
            int d = r.dim(hook);
            float[] values = r.get(hook);
            if (this == LAST) {
                out[h] = r.row(hook, 0, tokens.length - 1);
            } else {
                double[] sum = new double[d];
                for (int t = from; t < tokens.length; t++) {
                    for (int i = 0; i < d; i++) {
                        sum[i] += values[t * d + i];
                    }
                }
                out[h] = new float[d];
                for (int i = 0; i < d; i++) {
                    out[h][i] = (float) (sum[i] / (tokens.length - from));
                }
            }
        }
        return out;
    }
}
