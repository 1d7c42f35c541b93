package training.trainer;

/**
 * Per-feature firing bookkeeping: tokens since each feature last fired (dead = none in the last
 * {@code deadWindowTokens}), firing counts over the current metrics interval (dense = firing on more
 * than the dense threshold of tokens), and feature density over windows of {@code deadWindowTokens}
 * tokens (the last complete window, or the current one before any completes) for the export.
 */
public final class FeatureStatistics {

    private final int dSae;
    private final long deadWindowTokens;
    private final double denseThreshold;
    long[] tokensSinceFired;
    double[] intervalCounts;
    long intervalTokens;
    double[] windowCounts;
    long windowTokens;
    double[] lastWindowDensity;

    public FeatureStatistics(int dSae, long deadWindowTokens, double denseThreshold) {
        this.dSae = dSae;
        this.deadWindowTokens = deadWindowTokens;
        this.denseThreshold = denseThreshold;
        tokensSinceFired = new long[dSae];
        intervalCounts = new double[dSae];
        windowCounts = new double[dSae];
    }

    /** Adds one batch: {@code fireCounts[i]} = tokens of the batch on which feature i fired. */
    public void update(double[] fireCounts, int tokens) {
        for (int i = 0; i < dSae; i++) {
            double c = fireCounts[i];
            tokensSinceFired[i] = c > 0 ? 0 : tokensSinceFired[i] + tokens;
            intervalCounts[i] += c;
            windowCounts[i] += c;
        }
        intervalTokens += tokens;
        windowTokens += tokens;
        if (windowTokens >= deadWindowTokens) {
            lastWindowDensity = density(windowCounts, windowTokens);
            windowCounts = new double[dSae];
            windowTokens = 0;
        }
    }

    public boolean[] deadMask() {
        boolean[] dead = new boolean[dSae];
        for (int i = 0; i < dSae; i++) {
            dead[i] = tokensSinceFired[i] >= deadWindowTokens;
        }
        return dead;
    }

    public double deadFraction() {
        int n = 0;
        for (long t : tokensSinceFired) {
            n += t >= deadWindowTokens ? 1 : 0;
        }
        return n / (double) dSae;
    }

    /** Fraction of features firing on more than the dense threshold of the interval's tokens; then starts a new interval. */
    public double takeDenseFraction() {
        int n = 0;
        for (double c : intervalCounts) {
            n += intervalTokens > 0 && c / intervalTokens > denseThreshold ? 1 : 0;
        }
        java.util.Arrays.fill(intervalCounts, 0);
        intervalTokens = 0;
        return n / (double) dSae;
    }

    /** Firing frequency per feature over the last complete window (or the current partial one). */
    public double[] featureDensity() {
        if (lastWindowDensity != null) {
            return lastWindowDensity.clone();
        }
        return density(windowCounts, Math.max(windowTokens, 1));
    }

    /** A copy of the bookkeeping, for checkpoints written outside this package. */
    public record State(long[] tokensSinceFired, double[] intervalCounts, long intervalTokens, double[] windowCounts,
                        long windowTokens, double[] lastWindowDensity) {
    }

    public State state() {
        return new State(tokensSinceFired.clone(), intervalCounts.clone(), intervalTokens, windowCounts.clone(), windowTokens,
                lastWindowDensity == null ? null : lastWindowDensity.clone());
    }

    public void restore(State s) {
        if (s.tokensSinceFired().length != dSae) {
            throw new IllegalArgumentException("checkpointed feature statistics cover " + s.tokensSinceFired().length
                    + " features, not " + dSae + "; the checkpoint belongs to a differently sized model");
        }
        tokensSinceFired = s.tokensSinceFired().clone();
        intervalCounts = s.intervalCounts().clone();
        intervalTokens = s.intervalTokens();
        windowCounts = s.windowCounts().clone();
        windowTokens = s.windowTokens();
        lastWindowDensity = s.lastWindowDensity() == null ? null : s.lastWindowDensity().clone();
    }

    private static double[] density(double[] counts, long tokens) {
        double[] d = new double[counts.length];
        for (int i = 0; i < counts.length; i++) {
            d[i] = counts[i] / tokens;
        }
        return d;
    }
}
