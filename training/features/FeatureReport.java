package training.features;

import java.util.List;

/**
 * Everything known about one feature after the pass: statistics, examples with their context
 * windows, and its logit table (null when the hook is not in the residual stream).
 */
public record FeatureReport(int feature, long firings, long tokens, float max, double mean, double histogramRange,
                            long[] histogram, List<WindowedExample> examples, LogitTables.Table logits,
                            String[] topLogitPieces, String[] bottomLogitPieces) {

    public double frequency() {
        return tokens == 0 ? 0 : (double) firings / tokens;
    }

    /** An example with its window: tokens from {@code windowStart}, their pieces and the feature's activation on each. */
    public record WindowedExample(Example example, int windowStart, int[] tokens, String[] pieces, float[] activations) {
    }
}
