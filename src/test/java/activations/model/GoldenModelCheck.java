package activations.model;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.hooks.HookPoint.Kind;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** Checks a loaded model against its golden reference: residual norms, top-5 logits, greedy ids. */
final class GoldenModelCheck {

    private GoldenModelCheck() {
    }

    static void assertMatches(TransformerModel model, GoldenReference golden, int stopId) {
        int layers = model.config().nLayers();
        List<HookPoint> hooks = new ArrayList<>();
        hooks.add(new HookPoint(Kind.RESID_PRE, 0));
        for (int l = 0; l < layers; l++) {
            hooks.add(new HookPoint(Kind.RESID_POST, l));
        }
        hooks.add(new HookPoint(Kind.LOGITS, -1));
        ForwardResult result = model.forward(new int[][] {golden.promptIds()}, ForwardRequest.capture(hooks));
        int seq = golden.promptIds().length;
        assertEquals(layers + 1, golden.residNorms().length, "golden file has one entry per residual stage");
        for (int stage = 0; stage <= layers; stage++) {
            HookPoint hook = hooks.get(stage);
            for (int t = 0; t < seq; t++) {
                double norm = l2(result.row(hook, 0, t));
                double expected = golden.residNorms()[stage][t];
                assertEquals(expected, norm, 1e-4 * expected + 1e-5, hook + " norm at position " + t);
            }
            float[] last = result.row(hook, 0, seq - 1);
            for (int i = 0; i < 8; i++) {
                double expected = golden.lastFirst8()[stage][i];
                // first-8 values are printed to 6 decimals: compare at that precision plus 1e-4 relative
                assertEquals(expected, last[i], 1e-4 * Math.abs(expected) + 2e-6 + 1e-4 * golden.residNorms()[stage][seq - 1] / Math.sqrt(last.length),
                        hook + " value " + i + " at the last position");
            }
        }
        float[] logits = result.row(hooks.get(hooks.size() - 1), 0, seq - 1);
        int[] top5 = topK(logits, 5);
        assertArrayEquals(golden.top5Ids(), top5, "top-5 next tokens");
        for (int i = 0; i < 5; i++) {
            assertEquals(golden.top5Logits()[i], logits[top5[i]], 1e-3, "logit of top-" + (i + 1));
        }
        int[] greedy = model.greedy(golden.promptIds(), golden.greedyIds().length, stopId);
        assertArrayEquals(golden.greedyIds(), greedy, "greedy continuation");
    }

    static double l2(float[] v) {
        double s = 0;
        for (float x : v) {
            s += (double) x * x;
        }
        return Math.sqrt(s);
    }

    static int[] topK(float[] values, int k) {
        Integer[] idx = new Integer[values.length];
        for (int i = 0; i < idx.length; i++) {
            idx[i] = i;
        }
        Arrays.sort(idx, (a, b) -> Float.compare(values[b], values[a]));
        int[] out = new int[k];
        for (int i = 0; i < k; i++) {
            out[i] = idx[i];
        }
        return out;
    }
}
