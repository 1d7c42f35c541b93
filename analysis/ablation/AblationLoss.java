package analysis.ablation;

import training.evaluation.NextTokenLoss;

import java.io.Serializable;

/**
 * Next-token cross-entropy clean and ablated, KL(clean || ablated), and a histogram of the
 * per-token loss deltas (ablated minus clean), summed over predicted positions and mergeable
 * across Spark tasks. The histogram has fixed bins over {@code [-range, range)} so that partial
 * histograms add up; deltas outside fall into the {@code below} and {@code above} counts.
 */
public final class AblationLoss implements Serializable {

    private static final long serialVersionUID = 1L;
    public static final int BINS = 100;

    public final double range;
    public long positions;
    public double cleanSum;
    public double ablatedSum;
    public double klSum;
    public final long[] counts = new long[BINS];
    public long below;
    public long above;

    public AblationLoss(double range) {
        if (!(range > 0)) {
            throw new IllegalArgumentException("the histogram range must be positive, got " + range);
        }
        this.range = range;
    }

    /** Adds one batch: logits [batch * seqLen, vocab] row-major, {@code tokens[b]} the sequences run. */
    public void add(float[] clean, float[] ablated, int[][] tokens, int seqLen, int vocab) {
        double[] cleanLoss = NextTokenLoss.positionLosses(clean, tokens, seqLen, vocab);
        double[] ablatedLoss = NextTokenLoss.positionLosses(ablated, tokens, seqLen, vocab);
        for (int b = 0; b < tokens.length; b++) {
            for (int t = 0; t + 1 < seqLen; t++) {
                int i = b * (seqLen - 1) + t;
                cleanSum += cleanLoss[i];
                ablatedSum += ablatedLoss[i];
                addDelta(ablatedLoss[i] - cleanLoss[i]);
                int offset = (b * seqLen + t) * vocab;
                double cleanNorm = NextTokenLoss.logSumExp(clean, offset, vocab);
                double ablatedNorm = NextTokenLoss.logSumExp(ablated, offset, vocab);
                double kl = 0;
                for (int v = 0; v < vocab; v++) {
                    double logP = clean[offset + v] - cleanNorm;
                    kl += Math.exp(logP) * (logP - (ablated[offset + v] - ablatedNorm));
                }
                klSum += kl;
                positions++;
            }
        }
    }

    private void addDelta(double delta) {
        if (delta < -range) {
            below++;
        } else if (delta >= range) {
            above++;
        } else {
            counts[Math.min(BINS - 1, (int) ((delta + range) / binWidth()))]++;
        }
    }

    public double binWidth() {
        return 2 * range / BINS;
    }

    public AblationLoss merge(AblationLoss other) {
        if (other.range != range) {
            throw new IllegalArgumentException("cannot merge histograms over different ranges");
        }
        positions += other.positions;
        cleanSum += other.cleanSum;
        ablatedSum += other.ablatedSum;
        klSum += other.klSum;
        below += other.below;
        above += other.above;
        for (int i = 0; i < BINS; i++) {
            counts[i] += other.counts[i];
        }
        return this;
    }

    public double clean() {
        return cleanSum / positions;
    }

    public double ablated() {
        return ablatedSum / positions;
    }

    public double kl() {
        return klSum / positions;
    }
}
