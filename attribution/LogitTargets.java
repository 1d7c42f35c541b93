package attribution;

import java.util.Arrays;
import java.util.Comparator;
import java.util.stream.IntStream;

/**
 * The logit nodes of a graph, as circuit-tracer picks them: the most probable next tokens, as few
 * as cover {@code mass} of the probability, at most {@code max}.
 */
public final class LogitTargets {

    private LogitTargets() {
    }

    public static double[] softmax(float[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : logits) {
            max = Math.max(max, v);
        }
        double[] p = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < logits.length; i++) {
            p[i] = Math.exp(logits[i] - max);
            sum += p[i];
        }
        for (int i = 0; i < p.length; i++) {
            p[i] /= sum;
        }
        return p;
    }

    /** Token ids, most probable first. */
    public static int[] select(float[] logits, int max, double mass) {
        double[] p = softmax(logits);
        int[] order = IntStream.range(0, p.length).boxed()
                .sorted(Comparator.<Integer>comparingDouble(i -> -p[i]).thenComparingInt(i -> i))
                .limit(Math.min(max, p.length)).mapToInt(Integer::intValue).toArray();
        double cumulative = 0;
        for (int k = 0; k < order.length; k++) {
            cumulative += p[order[k]];
            if (cumulative >= mass) {
                return Arrays.copyOf(order, k + 1);
            }
        }
        return order;
    }

    public static double[] probabilities(float[] logits, int[] tokens) {
        double[] p = softmax(logits);
        return Arrays.stream(tokens).mapToDouble(i -> p[i]).toArray();
    }
}
