package training.features;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Per-feature statistics of a stream of feature activations in memory independent of the number of
 * tokens, mergeable across tasks (a plain class: it is a Spark task result):
 * <ul>
 *   <li>firing count, sum and max;</li>
 *   <li>top-k examples by activation in a bounded min-heap, ties broken by smaller (seq_id, pos)
 *       first, so the merged top-k is the same however the rows were partitioned;</li>
 *   <li>an activation histogram and {@value #QUANTILE_BINS} quantile bins with a reservoir of
 *       {@value #SAMPLES_PER_BIN} random examples each, both of equal-width bins over
 *       {@code [0, R)} where R is the feature's running max rounded up to a power of two. When the
 *       max reaches R, R doubles and every pair of bins merges into one, exactly (counts add,
 *       reservoirs merge by a hypergeometric draw), so one pass suffices and results merge across
 *       tasks. The final range is below twice the max: at least the lower half of the bins is
 *       populated range.</li>
 * </ul>
 */
public final class FeatureAccumulator implements Serializable {

    private static final long serialVersionUID = 1L;

    public static final int QUANTILE_BINS = 10;
    public static final int SAMPLES_PER_BIN = 5;
    public static final int HISTOGRAM_BINS = 40;
    private static final int UNSET = Integer.MIN_VALUE;

    public final int dSae;
    public final int k;
    public long tokens;
    public final long[] firings;
    public final double[] sums;
    public final float[] maxes;
    /** R = 2^rangeExponent[f]; UNSET before the feature first fires. */
    final int[] rangeExponent;
    final long[] histogram;

    final float[] topValue;
    final long[] topSeq;
    final int[] topPos;
    final int[] topToken;
    final int[] topSize;

    final long[] binSeen;
    final float[] sampleValue;
    final long[] sampleSeq;
    final int[] samplePos;
    final int[] sampleToken;
    private long randomState;

    public FeatureAccumulator(int dSae, int k, long seed) {
        if (dSae < 1 || k < 1) {
            throw new IllegalArgumentException("need at least one feature and k >= 1, got d_sae=" + dSae + ", k=" + k);
        }
        this.dSae = dSae;
        this.k = k;
        this.firings = new long[dSae];
        this.sums = new double[dSae];
        this.maxes = new float[dSae];
        this.rangeExponent = new int[dSae];
        Arrays.fill(rangeExponent, UNSET);
        this.histogram = new long[dSae * HISTOGRAM_BINS];
        this.topValue = new float[dSae * k];
        this.topSeq = new long[dSae * k];
        this.topPos = new int[dSae * k];
        this.topToken = new int[dSae * k];
        this.topSize = new int[dSae];
        this.binSeen = new long[dSae * QUANTILE_BINS];
        int samples = dSae * QUANTILE_BINS * SAMPLES_PER_BIN;
        this.sampleValue = new float[samples];
        this.sampleSeq = new long[samples];
        this.samplePos = new int[samples];
        this.sampleToken = new int[samples];
        this.randomState = seed;
    }

    /** Adds {@code rows} tokens: features [rows, dSae] row-major, with each row's seq_id, pos and token id. */
    public void add(float[] features, long[] seqIds, int[] positions, int[] tokenIds, int rows) {
        for (int r = 0; r < rows; r++) {
            int base = r * dSae;
            for (int f = 0; f < dSae; f++) {
                float v = features[base + f];
                if (v > 0) {
                    fire(f, v, seqIds[r], positions[r], tokenIds[r]);
                }
            }
        }
        tokens += rows;
    }

    private void fire(int f, float v, long seq, int pos, int token) {
        firings[f]++;
        sums[f] += v;
        maxes[f] = Math.max(maxes[f], v);
        growRange(f, exponentAbove(v));
        double range = Math.scalb(1.0, rangeExponent[f]);
        histogram[f * HISTOGRAM_BINS + Math.min(HISTOGRAM_BINS - 1, (int) (v / range * HISTOGRAM_BINS))]++;
        int bin = Math.min(QUANTILE_BINS - 1, (int) (v / range * QUANTILE_BINS));
        offerSample(f, bin, v, seq, pos, token);
        offerTop(f, v, seq, pos, token);
    }

    /** The smallest e with v < 2^e. */
    private static int exponentAbove(float v) {
        return Math.getExponent(v) + 1;
    }

    private void growRange(int f, int exponent) {
        if (rangeExponent[f] == UNSET) {
            rangeExponent[f] = exponent;
            return;
        }
        while (rangeExponent[f] < exponent) {
            doubleRange(f);
        }
    }

    /** R -> 2R: bins 2b and 2b+1 become bin b. */
    private void doubleRange(int f) {
        int h = f * HISTOGRAM_BINS;
        for (int b = 0; b < HISTOGRAM_BINS / 2; b++) {
            histogram[h + b] = histogram[h + 2 * b] + histogram[h + 2 * b + 1];
        }
        Arrays.fill(histogram, h + HISTOGRAM_BINS / 2, h + HISTOGRAM_BINS, 0);
        for (int b = 0; b < QUANTILE_BINS / 2; b++) {
            mergeBins(this, f, 2 * b, this, f, 2 * b + 1, f, b);
        }
        for (int b = QUANTILE_BINS / 2; b < QUANTILE_BINS; b++) {
            binSeen[f * QUANTILE_BINS + b] = 0;
        }
        rangeExponent[f]++;
    }

    /**
     * Writes into bin {@code (target, dst)} a uniform sample of the union of bins (a, fa, ba) and
     * (b, fb, bb): how many come from each side is drawn as sampling without replacement from the
     * two populations, and which of a side's samples are taken is drawn uniformly.
     */
    private void mergeBins(FeatureAccumulator a, int fa, int ba, FeatureAccumulator b, int fb, int bb, int ft, int dst) {
        long na = a.binSeen[fa * QUANTILE_BINS + ba];
        long nb = b.binSeen[fb * QUANTILE_BINS + bb];
        int ka = (int) Math.min(na, SAMPLES_PER_BIN);
        int kb = (int) Math.min(nb, SAMPLES_PER_BIN);
        int take = (int) Math.min(na + nb, SAMPLES_PER_BIN);
        int fromA = 0;
        long remainingA = na;
        long remainingB = nb;
        for (int i = 0; i < take; i++) {
            if (nextLong(remainingA + remainingB) < remainingA) {
                fromA++;
                remainingA--;
            } else {
                remainingB--;
            }
        }
        float[] v = new float[take];
        long[] s = new long[take];
        int[] p = new int[take];
        int[] t = new int[take];
        int[] order = permutation(ka);
        int at = 0;
        for (int i = 0; i < fromA; i++, at++) {
            int slot = (fa * QUANTILE_BINS + ba) * SAMPLES_PER_BIN + order[i];
            v[at] = a.sampleValue[slot];
            s[at] = a.sampleSeq[slot];
            p[at] = a.samplePos[slot];
            t[at] = a.sampleToken[slot];
        }
        order = permutation(kb);
        for (int i = 0; i < take - fromA; i++, at++) {
            int slot = (fb * QUANTILE_BINS + bb) * SAMPLES_PER_BIN + order[i];
            v[at] = b.sampleValue[slot];
            s[at] = b.sampleSeq[slot];
            p[at] = b.samplePos[slot];
            t[at] = b.sampleToken[slot];
        }
        int base = (ft * QUANTILE_BINS + dst) * SAMPLES_PER_BIN;
        System.arraycopy(v, 0, sampleValue, base, take);
        System.arraycopy(s, 0, sampleSeq, base, take);
        System.arraycopy(p, 0, samplePos, base, take);
        System.arraycopy(t, 0, sampleToken, base, take);
        binSeen[ft * QUANTILE_BINS + dst] = na + nb;
    }

    private int[] permutation(int n) {
        int[] order = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = (int) nextLong(i + 1);
            int tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        return order;
    }

    /** Reservoir sampling (algorithm R) within a quantile bin. */
    private void offerSample(int f, int bin, float v, long seq, int pos, int token) {
        int cell = f * QUANTILE_BINS + bin;
        long seen = ++binSeen[cell];
        long slot = seen <= SAMPLES_PER_BIN ? seen - 1 : nextLong(seen);
        if (slot < SAMPLES_PER_BIN) {
            int at = cell * SAMPLES_PER_BIN + (int) slot;
            sampleValue[at] = v;
            sampleSeq[at] = seq;
            samplePos[at] = pos;
            sampleToken[at] = token;
        }
    }

    /** Uniform in [0, bound) from a SplitMix64 stream (kept as a field so the accumulator serializes). */
    private long nextLong(long bound) {
        randomState += 0x9E3779B97F4A7C15L;
        long z = randomState;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z ^= z >>> 31;
        return Math.floorMod(z, bound);
    }

    /** True when example a ranks below example b: lower activation, or equal and later (seq_id, pos). */
    static boolean ranksBelow(float va, long sa, int pa, float vb, long sb, int pb) {
        if (va != vb) {
            return va < vb;
        }
        if (sa != sb) {
            return sa > sb;
        }
        return pa > pb;
    }

    private void offerTop(int f, float v, long seq, int pos, int token) {
        int base = f * k;
        int size = topSize[f];
        if (size < k) {
            int i = size;
            topSize[f] = size + 1;
            // sift up: the root holds the lowest-ranked example
            while (i > 0) {
                int parent = (i - 1) / 2;
                if (!ranksBelow(v, seq, pos, topValue[base + parent], topSeq[base + parent], topPos[base + parent])) {
                    break;
                }
                moveTop(base + parent, base + i);
                i = parent;
            }
            setTop(base + i, v, seq, pos, token);
            return;
        }
        if (!ranksBelow(topValue[base], topSeq[base], topPos[base], v, seq, pos)) {
            return;
        }
        int i = 0;
        while (true) {
            int left = 2 * i + 1;
            if (left >= k) {
                break;
            }
            int child = left;
            int right = left + 1;
            if (right < k && ranksBelow(topValue[base + right], topSeq[base + right], topPos[base + right],
                    topValue[base + left], topSeq[base + left], topPos[base + left])) {
                child = right;
            }
            if (!ranksBelow(topValue[base + child], topSeq[base + child], topPos[base + child], v, seq, pos)) {
                break;
            }
            moveTop(base + child, base + i);
            i = child;
        }
        setTop(base + i, v, seq, pos, token);
    }

    private void moveTop(int from, int to) {
        topValue[to] = topValue[from];
        topSeq[to] = topSeq[from];
        topPos[to] = topPos[from];
        topToken[to] = topToken[from];
    }

    private void setTop(int at, float v, long seq, int pos, int token) {
        topValue[at] = v;
        topSeq[at] = seq;
        topPos[at] = pos;
        topToken[at] = token;
    }

    /** Merges another task's accumulator into this one. */
    public FeatureAccumulator merge(FeatureAccumulator other) {
        if (other.dSae != dSae || other.k != k) {
            throw new IllegalArgumentException("cannot merge accumulators of different shapes");
        }
        tokens += other.tokens;
        for (int f = 0; f < dSae; f++) {
            if (other.rangeExponent[f] == UNSET) {
                continue;
            }
            firings[f] += other.firings[f];
            sums[f] += other.sums[f];
            maxes[f] = Math.max(maxes[f], other.maxes[f]);
            // Bring both to the same range; the other side is doubled on a copy of its feature.
            FeatureAccumulator theirs = other.copyOf(f);
            growRange(f, theirs.rangeExponent[0]);
            while (theirs.rangeExponent[0] < rangeExponent[f]) {
                theirs.doubleRange(0);
            }
            for (int b = 0; b < HISTOGRAM_BINS; b++) {
                histogram[f * HISTOGRAM_BINS + b] += theirs.histogram[b];
            }
            for (int b = 0; b < QUANTILE_BINS; b++) {
                mergeBins(this, f, b, theirs, 0, b, f, b);
            }
            for (int i = 0; i < other.topSize[f]; i++) {
                int at = f * k + i;
                offerTop(f, other.topValue[at], other.topSeq[at], other.topPos[at], other.topToken[at]);
            }
        }
        return this;
    }

    /** Feature f of this accumulator alone, as feature 0 of a new one (same random stream position). */
    private FeatureAccumulator copyOf(int f) {
        FeatureAccumulator c = new FeatureAccumulator(1, k, randomState ^ f);
        c.rangeExponent[0] = rangeExponent[f];
        System.arraycopy(histogram, f * HISTOGRAM_BINS, c.histogram, 0, HISTOGRAM_BINS);
        System.arraycopy(binSeen, f * QUANTILE_BINS, c.binSeen, 0, QUANTILE_BINS);
        int s = QUANTILE_BINS * SAMPLES_PER_BIN;
        System.arraycopy(sampleValue, f * s, c.sampleValue, 0, s);
        System.arraycopy(sampleSeq, f * s, c.sampleSeq, 0, s);
        System.arraycopy(samplePos, f * s, c.samplePos, 0, s);
        System.arraycopy(sampleToken, f * s, c.sampleToken, 0, s);
        return c;
    }

    /** Upper end of feature f's histogram and quantile bins (0 if it never fired). */
    public double range(int f) {
        return rangeExponent[f] == UNSET ? 0 : Math.scalb(1.0, rangeExponent[f]);
    }

    public long[] histogram(int f) {
        return Arrays.copyOfRange(histogram, f * HISTOGRAM_BINS, (f + 1) * HISTOGRAM_BINS);
    }

    /** Top examples of feature f, highest first (ties: smaller seq_id, then pos, first). */
    public List<Example> top(int f) {
        List<Example> out = new ArrayList<>();
        for (int i = 0; i < topSize[f]; i++) {
            int at = f * k + i;
            out.add(new Example(f, Example.Kind.TOP, -1, 0, topSeq[at], topPos[at], topToken[at], topValue[at]));
        }
        out.sort((a, b) -> ranksBelow(a.activation(), a.seqId(), a.pos(), b.activation(), b.seqId(), b.pos()) ? 1 : -1);
        List<Example> ranked = new ArrayList<>();
        for (int i = 0; i < out.size(); i++) {
            ranked.add(out.get(i).withRank(i));
        }
        return ranked;
    }

    /** Quantile samples of feature f: per bin (0 = lowest), highest activation first. */
    public List<Example> quantileSamples(int f) {
        List<Example> out = new ArrayList<>();
        for (int b = 0; b < QUANTILE_BINS; b++) {
            int cell = f * QUANTILE_BINS + b;
            int n = (int) Math.min(binSeen[cell], SAMPLES_PER_BIN);
            List<Example> bin = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int at = cell * SAMPLES_PER_BIN + i;
                bin.add(new Example(f, Example.Kind.QUANTILE, b, 0, sampleSeq[at], samplePos[at], sampleToken[at], sampleValue[at]));
            }
            bin.sort((x, y) -> ranksBelow(x.activation(), x.seqId(), x.pos(), y.activation(), y.seqId(), y.pos()) ? 1 : -1);
            for (int i = 0; i < bin.size(); i++) {
                out.add(bin.get(i).withRank(i));
            }
        }
        return out;
    }

    /** Tokens that fell in quantile bin b of feature f. */
    public long binCount(int f, int b) {
        return binSeen[f * QUANTILE_BINS + b];
    }
}
