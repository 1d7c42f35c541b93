package jobs.train;

import java.util.Locale;

/**
 * How many passes over an activation cache a token budget takes: a cache smaller than the budget
 * is read again (each pass through the trainer's mixing buffer, whose random stream continues, so
 * no two passes give the same order) until the budget is met, unless {@code epochs} (> 0) caps the
 * passes, in which case the run's budget shrinks to what the capped passes hold (so its learning
 * rate schedule still decays to the end).
 *
 * @param cacheRows   rows (tokens) in the cache
 * @param tokensAsked the `tokens` setting
 * @param preludeRows rows read before training (normalization batches, not trained on)
 * @param passes      passes over the cache the run opens
 * @param tokens      tokens the run trains on (whole batches)
 * @param capped      true if `epochs` cut the budget
 */
public record TrainingBudget(long cacheRows, long tokensAsked, long preludeRows, int passes, long tokens, boolean capped) {

    /** @param epochsCap the `epochs` setting: 0 = as many passes as the budget needs, N = at most N */
    public static TrainingBudget plan(long cacheRows, long tokensAsked, long preludeRows, int epochsCap, int batchSize) {
        if (epochsCap < 0) {
            throw new IllegalArgumentException("epochs is " + epochsCap + "; use 0 to read the cache as often as `tokens` needs, or a positive cap");
        }
        if (cacheRows <= 0) {
            // Unknown size: read until the budget or the cap (if any).
            return new TrainingBudget(cacheRows, tokensAsked, preludeRows, epochsCap == 0 ? Integer.MAX_VALUE : epochsCap, tokensAsked, false);
        }
        long needed = tokensAsked + preludeRows;
        long passesNeeded = Math.max(1, (needed + cacheRows - 1) / cacheRows);
        if (passesNeeded > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("`tokens` " + tokensAsked + " would take " + passesNeeded + " passes over a cache of "
                    + cacheRows + " rows; cache more tokens or lower `tokens`");
        }
        if (epochsCap == 0 || epochsCap >= passesNeeded) {
            return new TrainingBudget(cacheRows, tokensAsked, preludeRows, (int) passesNeeded, tokensAsked, false);
        }
        long available = (long) epochsCap * cacheRows - preludeRows;
        long tokens = available / batchSize * batchSize;
        if (tokens < batchSize) {
            throw new IllegalArgumentException("epochs = " + epochsCap + " over a cache of " + cacheRows + " rows leaves less than one batch of "
                    + batchSize + " after the " + preludeRows + " normalization rows; raise `epochs` (or 0 for no cap) or lower the batch size");
        }
        return new TrainingBudget(cacheRows, tokensAsked, preludeRows, epochsCap, tokens, true);
    }

    /** The line a run starts with, e.g. "cache holds 200,000 tokens: 15 passes for 3,000,000". */
    public String describe() {
        if (cacheRows <= 0) {
            return String.format(Locale.ROOT, "training on up to %,d tokens", tokensAsked);
        }
        if (capped) {
            return String.format(Locale.ROOT, "cache holds %,d tokens: epochs = %d caps the run at %,d tokens of the %,d asked",
                    cacheRows, passes, tokens, tokensAsked);
        }
        return String.format(Locale.ROOT, "cache holds %,d tokens: %d %s for %,d", cacheRows, passes,
                passes == 1 ? "pass" : "passes", tokensAsked);
    }
}
