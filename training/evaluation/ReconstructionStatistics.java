package training.evaluation;

import java.io.Serializable;

/**
 * Sums over evaluated tokens for reconstruction metrics, mergeable across tasks (a plain class:
 * it travels as a Spark task result). FVU needs the variance of x around its mean over all
 * evaluated tokens, which is not known until the end: per-dimension sums and the total sum of
 * squares give it after merging, {@code sum||x - mean||^2 = sum||x||^2 - ||sum x||^2 / n}.
 */
public final class ReconstructionStatistics implements Serializable {

    private static final long serialVersionUID = 1L;

    public final int dIn;
    public final int dSae;
    public long tokens;
    public double squaredError;
    public double squaredNorm;
    public final double[] sum;
    public double cosineSum;
    /** Sum over tokens with x != 0 of ||x_hat|| / ||x||, and their count. */
    public double l2RatioSum;
    public long l2RatioTokens;
    /** Sums of ||x_hat||^2 and of x . x_hat (relative reconstruction bias). */
    public double reconstructionSquaredNorm;
    public double dotSum;
    public long activeSum;
    public final long[] firings;

    public ReconstructionStatistics(int dIn, int dSae) {
        this.dIn = dIn;
        this.dSae = dSae;
        this.sum = new double[dIn];
        this.firings = new long[dSae];
    }

    /** Adds {@code rows} tokens: x and xHat are [rows, dIn], features [rows, dSae], row-major. */
    public void add(float[] x, float[] xHat, float[] features, int rows) {
        for (int r = 0; r < rows; r++) {
            int base = r * dIn;
            double err = 0;
            double xx = 0;
            double hh = 0;
            double xh = 0;
            for (int i = 0; i < dIn; i++) {
                double a = x[base + i];
                double b = xHat[base + i];
                err += (a - b) * (a - b);
                xx += a * a;
                hh += b * b;
                xh += a * b;
                sum[i] += a;
            }
            squaredError += err;
            squaredNorm += xx;
            // Cosine of a zero vector is undefined; count it as 0 (a zero reconstruction of a nonzero x is wrong).
            cosineSum += xx > 0 && hh > 0 ? xh / Math.sqrt(xx * hh) : (xx == 0 && hh == 0 ? 1 : 0);
            if (xx > 0) {
                l2RatioSum += Math.sqrt(hh / xx);
                l2RatioTokens++;
            }
            reconstructionSquaredNorm += hh;
            dotSum += xh;
            int fbase = r * dSae;
            for (int f = 0; f < dSae; f++) {
                if (features[fbase + f] > 0) {
                    activeSum++;
                    firings[f]++;
                }
            }
        }
        tokens += rows;
    }

    public ReconstructionStatistics merge(ReconstructionStatistics other) {
        if (other.dIn != dIn || other.dSae != dSae) {
            throw new IllegalArgumentException("cannot merge statistics of different dictionaries");
        }
        tokens += other.tokens;
        squaredError += other.squaredError;
        squaredNorm += other.squaredNorm;
        cosineSum += other.cosineSum;
        l2RatioSum += other.l2RatioSum;
        l2RatioTokens += other.l2RatioTokens;
        reconstructionSquaredNorm += other.reconstructionSquaredNorm;
        dotSum += other.dotSum;
        activeSum += other.activeSum;
        for (int i = 0; i < dIn; i++) {
            sum[i] += other.sum[i];
        }
        for (int f = 0; f < dSae; f++) {
            firings[f] += other.firings[f];
        }
        return this;
    }

    /** Mean squared error per element. */
    public double mse() {
        return squaredError / ((double) tokens * dIn);
    }

    public double fvu() {
        double mean2 = 0;
        for (double s : sum) {
            mean2 += s * s;
        }
        double total = squaredNorm - mean2 / tokens;
        return total > 0 ? squaredError / total : Double.NaN;
    }

    /** 1 - FVU: the share of the variance around the mean (not around zero) the reconstruction explains. */
    public double explainedVariance() {
        return 1 - fvu();
    }

    /** Mean over tokens of ||x_hat|| / ||x|| (SAELens's l2_ratio): below 1 means shrinkage. */
    public double l2Ratio() {
        return l2RatioTokens > 0 ? l2RatioSum / l2RatioTokens : Double.NaN;
    }

    /**
     * E||x_hat||^2 / E[x . x_hat] (dictionary_learning's relative reconstruction bias): the factor
     * gamma minimizing E||x_hat / gamma - x||^2; 1 is unbiased, below 1 shrunk.
     */
    public double relativeReconstructionBias() {
        return dotSum != 0 ? reconstructionSquaredNorm / dotSum : Double.NaN;
    }

    /** Share of features that fired at least once. */
    public double fracAlive() {
        return 1 - deadFeatures() / (double) dSae;
    }

    public double cosineSimilarity() {
        return cosineSum / tokens;
    }

    public double l0() {
        return (double) activeSum / tokens;
    }

    public double density(int feature) {
        return (double) firings[feature] / tokens;
    }

    public int deadFeatures() {
        int n = 0;
        for (long c : firings) {
            n += c == 0 ? 1 : 0;
        }
        return n;
    }

    /** Features firing on more than {@code threshold} of the tokens (0.1 for "dense"). */
    public int denseFeatures(double threshold) {
        int n = 0;
        for (long c : firings) {
            n += (double) c / tokens > threshold ? 1 : 0;
        }
        return n;
    }
}
