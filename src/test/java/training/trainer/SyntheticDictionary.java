package training.trainer;

import java.util.Random;

/**
 * Ground truth for SAE recovery tests: {@code features} random unit vectors in R^dIn, and samples
 * that are sparse non-negative combinations of them (each feature active with probability
 * {@code activeMean / features}, coefficient uniform in [0.5, 1.5]) plus Gaussian noise.
 */
public final class SyntheticDictionary {

    final int dIn;
    final int features;
    final double[][] directions;

    public SyntheticDictionary(int dIn, int features, long seed) {
        this.dIn = dIn;
        this.features = features;
        Random random = new Random(seed);
        directions = new double[features][dIn];
        for (double[] d : directions) {
            double norm = 0;
            for (int j = 0; j < dIn; j++) {
                d[j] = random.nextGaussian();
                norm += d[j] * d[j];
            }
            norm = Math.sqrt(norm);
            for (int j = 0; j < dIn; j++) {
                d[j] /= norm;
            }
        }
    }

    /** {@code rows} samples, row-major. */
    public float[] samples(int rows, double activeMean, double noise, long seed) {
        Random random = new Random(seed);
        float[] out = new float[rows * dIn];
        double p = activeMean / features;
        for (int r = 0; r < rows; r++) {
            double[] x = new double[dIn];
            for (int f = 0; f < features; f++) {
                if (random.nextDouble() < p) {
                    double c = 0.5 + random.nextDouble();
                    for (int j = 0; j < dIn; j++) {
                        x[j] += c * directions[f][j];
                    }
                }
            }
            for (int j = 0; j < dIn; j++) {
                out[r * dIn + j] = (float) (x[j] + noise * random.nextGaussian());
            }
        }
        return out;
    }

    /** Fraction of true features whose best-matching decoder row (cosine) reaches {@code minCosine}. */
    public double recovered(float[] decoder, int dSae, double minCosine) {
        int found = 0;
        double[] norms = new double[dSae];
        for (int i = 0; i < dSae; i++) {
            double s = 0;
            for (int j = 0; j < dIn; j++) {
                s += decoder[i * dIn + j] * (double) decoder[i * dIn + j];
            }
            norms[i] = Math.sqrt(s);
        }
        for (double[] d : directions) {
            double best = -1;
            for (int i = 0; i < dSae; i++) {
                double dot = 0;
                for (int j = 0; j < dIn; j++) {
                    dot += decoder[i * dIn + j] * d[j];
                }
                best = Math.max(best, norms[i] > 0 ? dot / norms[i] : -1);
            }
            found += best >= minCosine ? 1 : 0;
        }
        return found / (double) directions.length;
    }
}
