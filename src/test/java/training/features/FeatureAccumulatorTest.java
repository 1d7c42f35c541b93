package training.features;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FeatureAccumulatorTest {

    static final int D_SAE = 3;
    static final int ROWS = 5000;

    /** Feature 0: exponential-ish values; feature 1: few distinct values (many ties); feature 2: never fires. */
    static float[] features(long seed) {
        Random random = new Random(seed);
        float[] v = new float[ROWS * D_SAE];
        for (int r = 0; r < ROWS; r++) {
            v[r * D_SAE] = random.nextFloat() < 0.3 ? (float) -Math.log(random.nextDouble()) * 3 : 0;
            v[r * D_SAE + 1] = random.nextFloat() < 0.5 ? random.nextInt(4) : 0;
        }
        return v;
    }

    static FeatureAccumulator accumulate(float[] v, int parts, int k) {
        FeatureAccumulator merged = null;
        for (int p = 0; p < parts; p++) {
            int from = ROWS * p / parts;
            int to = ROWS * (p + 1) / parts;
            int n = to - from;
            FeatureAccumulator acc = new FeatureAccumulator(D_SAE, k, p);
            long[] seq = new long[n];
            int[] pos = new int[n];
            int[] tok = new int[n];
            for (int i = 0; i < n; i++) {
                seq[i] = (from + i) / 16;
                pos[i] = (from + i) % 16;
                tok[i] = from + i;
            }
            float[] part = java.util.Arrays.copyOfRange(v, from * D_SAE, to * D_SAE);
            acc.add(part, seq, pos, tok, n);
            merged = merged == null ? acc : merged.merge(acc);
        }
        return merged;
    }

    @Test
    void topKIsTheSameForAnyPartitioningAndMatchesASort() {
        float[] v = features(7);
        int k = 25;
        FeatureAccumulator one = accumulate(v, 1, k);
        for (int parts : new int[] {2, 8, 13}) {
            FeatureAccumulator many = accumulate(v, parts, k);
            for (int f = 0; f < D_SAE; f++) {
                assertEquals(one.top(f), many.top(f), parts + " parts, feature " + f);
                assertEquals(one.firings[f], many.firings[f]);
                assertEquals(one.maxes[f], many.maxes[f]);
                assertEquals(one.sums[f], many.sums[f], 1e-9 * Math.max(1, one.sums[f]));
                assertEquals(List.of(java.util.Arrays.stream(one.histogram(f)).boxed().toArray()),
                        List.of(java.util.Arrays.stream(many.histogram(f)).boxed().toArray()), "histograms merge exactly");
            }
        }
        for (int f = 0; f < D_SAE; f++) {
            List<long[]> all = new ArrayList<>();
            for (int r = 0; r < ROWS; r++) {
                if (v[r * D_SAE + f] > 0) {
                    all.add(new long[] {Float.floatToIntBits(v[r * D_SAE + f]), r});
                }
            }
            // Highest first; ties: smaller row (= smaller (seq, pos)) first.
            all.sort(Comparator.<long[]>comparingDouble(a -> -Float.intBitsToFloat((int) a[0])).thenComparingLong(a -> a[1]));
            List<Example> top = one.top(f);
            assertEquals(Math.min(k, all.size()), top.size());
            for (int i = 0; i < top.size(); i++) {
                assertEquals(all.get(i)[1], top.get(i).tokenId(), "feature " + f + " rank " + i);
                assertEquals(i, top.get(i).rank());
            }
        }
        assertEquals(0, one.top(2).size());
        assertEquals(0.0, one.range(2));
    }

    @Test
    void quantileSamplesLieInTheirBinsAndHistogramsCountEveryFiring() {
        float[] v = features(11);
        FeatureAccumulator acc = accumulate(v, 4, 5);
        for (int f = 0; f < 2; f++) {
            double range = acc.range(f);
            assertTrue(range > acc.maxes[f] && range <= 2 * acc.maxes[f], "range " + range + " max " + acc.maxes[f]);
            assertEquals(acc.firings[f], java.util.Arrays.stream(acc.histogram(f)).sum());
            long inBins = 0;
            for (int b = 0; b < FeatureAccumulator.QUANTILE_BINS; b++) {
                inBins += acc.binCount(f, b);
            }
            assertEquals(acc.firings[f], inBins);
            for (Example e : acc.quantileSamples(f)) {
                double lo = e.bin() * range / FeatureAccumulator.QUANTILE_BINS;
                double hi = (e.bin() + 1) * range / FeatureAccumulator.QUANTILE_BINS;
                assertTrue(e.activation() >= lo && e.activation() < hi, e + " outside [" + lo + ", " + hi + ")");
                assertEquals(v[e.tokenId() * D_SAE + f], e.activation(), "a sample is a real row");
                assertTrue(acc.binCount(f, e.bin()) > 0);
            }
            for (int b = 0; b < FeatureAccumulator.QUANTILE_BINS; b++) {
                long expected = Math.min(FeatureAccumulator.SAMPLES_PER_BIN, acc.binCount(f, b));
                final int bin = b;
                assertEquals(expected, acc.quantileSamples(f).stream().filter(e -> e.bin() == bin).count());
            }
        }
    }
}
