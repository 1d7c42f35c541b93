package training.evaluation;

import java.io.Serializable;

/**
 * Next-token cross-entropy of the clean model, the model with the hook spliced (replaced by the
 * dictionary's reconstruction) and with the hook zero-ablated, and KL(clean || spliced), summed over
 * predicted positions (every position t of a sequence predicting token t+1) and mergeable.
 */
public final class NextTokenLoss implements Serializable {

    private static final long serialVersionUID = 1L;

    public long positions;
    public double cleanSum;
    public double splicedSum;
    public double zeroSum;
    public double klSum;
    /** Sum of KL(clean || zero-ablated), the baseline of the KL score. */
    public double klZeroSum;

    /**
     * Adds one batch: logits are [batch * seqLen, vocab] row-major (row b * seqLen + t),
     * tokens[b] the sequence that was run.
     */
    public void add(float[] clean, float[] spliced, float[] zero, int[][] tokens, int seqLen, int vocab) {
        for (int b = 0; b < tokens.length; b++) {
            for (int t = 0; t + 1 < seqLen; t++) {
                int offset = (b * seqLen + t) * vocab;
                int target = tokens[b][t + 1];
                double cleanNorm = logSumExp(clean, offset, vocab);
                double splicedNorm = logSumExp(spliced, offset, vocab);
                cleanSum += cleanNorm - clean[offset + target];
                splicedSum += splicedNorm - spliced[offset + target];
                double zeroNorm = logSumExp(zero, offset, vocab);
                zeroSum += zeroNorm - zero[offset + target];
                double kl = 0;
                double klZero = 0;
                for (int v = 0; v < vocab; v++) {
                    double logP = clean[offset + v] - cleanNorm;
                    double p = Math.exp(logP);
                    kl += p * (logP - (spliced[offset + v] - splicedNorm));
                    klZero += p * (logP - (zero[offset + v] - zeroNorm));
                }
                klSum += kl;
                klZeroSum += klZero;
                positions++;
            }
        }
    }

    /**
     * The loss at every predicted position: row {@code b * (seqLen - 1) + t} is
     * {@code -log softmax(logits at t)[tokens[b][t + 1]]} (logits laid out as in {@link #add}).
     */
    public static double[] positionLosses(float[] logits, int[][] tokens, int seqLen, int vocab) {
        double[] losses = new double[tokens.length * (seqLen - 1)];
        for (int b = 0; b < tokens.length; b++) {
            for (int t = 0; t + 1 < seqLen; t++) {
                int offset = (b * seqLen + t) * vocab;
                losses[b * (seqLen - 1) + t] = logSumExp(logits, offset, vocab) - logits[offset + tokens[b][t + 1]];
            }
        }
        return losses;
    }

    public static double logSumExp(float[] logits, int offset, int n) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, logits[offset + i]);
        }
        double s = 0;
        for (int i = 0; i < n; i++) {
            s += Math.exp(logits[offset + i] - max);
        }
        return max + Math.log(s);
    }

    public NextTokenLoss merge(NextTokenLoss other) {
        positions += other.positions;
        cleanSum += other.cleanSum;
        splicedSum += other.splicedSum;
        zeroSum += other.zeroSum;
        klSum += other.klSum;
        klZeroSum += other.klZeroSum;
        return this;
    }

    public double clean() {
        return cleanSum / positions;
    }

    public double spliced() {
        return splicedSum / positions;
    }

    public double zeroAblated() {
        return zeroSum / positions;
    }

    public double kl() {
        return klSum / positions;
    }

    /** Mean KL(clean || zero-ablated). */
    public double klZeroAblated() {
        return klZeroSum / positions;
    }

    /** (KL_zero - KL_spliced) / KL_zero (SAELens's kl_div_score): 1 when splicing changes nothing. */
    public double klDivScore() {
        return (klZeroSum - klSum) / klZeroSum;
    }

    /** (CE_zero - CE_spliced) / (CE_zero - CE_clean): 1 when splicing loses nothing, 0 when it is as bad as ablation. */
    public double ceScore() {
        return (zeroSum - splicedSum) / (zeroSum - cleanSum);
    }
}
