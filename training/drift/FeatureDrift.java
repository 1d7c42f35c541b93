package training.drift;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.ops.transforms.Transforms;
import training.evaluation.SaeLensFeatureDictionary;
import training.export.SaeLensDictionary;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Compares two dictionaries trained on the same hook (e.g. two nightly runs) by decoder direction:
 * W_dec rows normalized to unit length, the cosine matrix new x old from one GEMM per block of new
 * rows, and for each feature its best match on the other side. See {@link DriftReport} for what is
 * reported and over which features.
 */
public final class FeatureDrift {

    public static final double DEFAULT_THRESHOLD = 0.9;
    public static final int HISTOGRAM_BINS = 20;
    /** Cosines computed at once: 16M floats (64 MB), so 16k x 16k (1 GB whole) runs in 16 blocks. */
    static final long BLOCK_ELEMENTS = 1L << 24;

    private FeatureDrift() {
    }

    /** Best matches in both directions; index -1 and cosine -1 when the other side has no candidate. */
    record Matches(int[] bestOldForNew, float[] bestOldCosine, int[] bestNewForOld, float[] bestNewCosine) {
    }

    /**
     * Loads both SAELens directories and, when given, each run's feature tables (a null features
     * directory counts that run's features as all live), then compares them.
     */
    public static DriftReport compare(Path oldDictionary, Path newDictionary, Path oldFeaturesOrNull, Path newFeaturesOrNull,
                                      double threshold) {
        checkThreshold(threshold);
        SaeLensDictionary old = SaeLensDictionary.load(oldDictionary);
        SaeLensDictionary nu = SaeLensDictionary.load(newDictionary);
        checkComparable(old, nu);
        boolean[] oldLive = oldFeaturesOrNull == null ? null : FeatureLiveness.read(oldFeaturesOrNull, old.dSae());
        boolean[] newLive = newFeaturesOrNull == null ? null : FeatureLiveness.read(newFeaturesOrNull, nu.dSae());
        return compare(old, nu, oldLive, newLive, threshold);
    }

    /** @param oldLive live flags [old d_sae], or null for all live; likewise {@code newLive} */
    public static DriftReport compare(SaeLensDictionary old, SaeLensDictionary nu, boolean[] oldLive, boolean[] newLive,
                                      double threshold) {
        checkThreshold(threshold);
        String hook = checkComparable(old, nu);
        if (oldLive != null && oldLive.length != old.dSae() || newLive != null && newLive.length != nu.dSae()) {
            throw new IllegalArgumentException("liveness flags do not match d_sae (old " + old.dSae() + ", new " + nu.dSae()
                    + "); pass the feature tables made from these dictionaries");
        }
        INDArray oldUnit = unitRows(old.wDec());
        INDArray newUnit = unitRows(nu.wDec());
        int rows = blockRows(nu.dSae(), old.dSae());
        Matches[] views = match(newUnit, oldUnit, newLive, oldLive, rows);
        Matches all = views[0];
        Matches live = views[1];

        int matched = 0;
        for (float c : all.bestOldCosine()) {
            matched += c >= threshold ? 1 : 0;
        }
        int newLiveCount = 0;
        int matchedLive = 0;
        int mutual = 0;
        long[] histogram = new long[HISTOGRAM_BINS];
        List<DriftReport.Unmatched> fresh = new ArrayList<>();
        for (int i = 0; i < nu.dSae(); i++) {
            if (newLive != null && !newLive[i]) {
                continue;
            }
            newLiveCount++;
            float c = live.bestOldCosine()[i];
            int j = live.bestOldForNew()[i];
            histogram[Math.min(HISTOGRAM_BINS - 1, Math.max(0, (int) Math.floor(c * HISTOGRAM_BINS)))]++;
            if (c >= threshold) {
                matchedLive++;
                mutual += live.bestNewForOld()[j] == i ? 1 : 0;
            } else {
                fresh.add(new DriftReport.Unmatched(i, j, c));
            }
        }
        int oldLiveCount = 0;
        List<DriftReport.Unmatched> vanished = new ArrayList<>();
        for (int j = 0; j < old.dSae(); j++) {
            if (oldLive != null && !oldLive[j]) {
                continue;
            }
            oldLiveCount++;
            if (live.bestNewCosine()[j] < threshold) {
                vanished.add(new DriftReport.Unmatched(j, live.bestNewForOld()[j], live.bestNewCosine()[j]));
            }
        }
        return new DriftReport(old.directory().toString(), nu.directory().toString(), hook, old.dOut(), old.dSae(), nu.dSae(),
                threshold, oldLive != null, newLive != null, oldLiveCount, newLiveCount, (double) matched / nu.dSae(),
                newLiveCount == 0 ? 0 : (double) matchedLive / newLiveCount, mutual, histogram, fresh, vanished,
                all.bestOldForNew(), all.bestOldCosine(), all.bestNewForOld(), all.bestNewCosine());
    }

    private static void checkThreshold(double threshold) {
        if (!(threshold > 0 && threshold <= 1)) {
            throw new IllegalArgumentException("threshold " + threshold + " is not a cosine in (0, 1]; use e.g. "
                    + DEFAULT_THRESHOLD);
        }
    }

    /** The shared hook, after refusing dictionaries whose decoders do not live in the same space. */
    static String checkComparable(SaeLensDictionary old, SaeLensDictionary nu) {
        String oldHook = new SaeLensFeatureDictionary(old).hookName();
        String newHook = new SaeLensFeatureDictionary(nu).hookName();
        if (!Objects.equals(oldHook, newHook)) {
            throw new IllegalArgumentException("the dictionaries are on different hooks (old " + oldHook + ", new " + newHook
                    + "); compare two runs trained on the same hook");
        }
        String oldOut = old.cfg().path("metadata").path("hook_name_out").asText(null);
        String newOut = nu.cfg().path("metadata").path("hook_name_out").asText(null);
        if (!Objects.equals(oldOut, newOut)) {
            throw new IllegalArgumentException("the dictionaries write different hooks (old " + oldOut + ", new " + newOut
                    + "); compare two runs trained on the same hooks");
        }
        if (old.dIn() != nu.dIn() || old.dOut() != nu.dOut()) {
            throw new IllegalArgumentException("the dictionaries have different widths (old d_in " + old.dIn() + ", new d_in "
                    + nu.dIn() + (old.dOut() != old.dIn() || nu.dOut() != nu.dIn() ? "; d_out " + old.dOut() + " vs " + nu.dOut() : "")
                    + "); compare two runs trained on the same hook of the same model");
        }
        return oldHook;
    }

    /** New rows per block so one block of cosines holds at most {@link #BLOCK_ELEMENTS}. */
    static int blockRows(int newRows, int oldRows) {
        return (int) Math.max(1, Math.min(newRows, BLOCK_ELEMENTS / Math.max(1, oldRows)));
    }

    /** Rows scaled to unit length (zero rows stay zero: cosine 0 with everything). */
    static INDArray unitRows(INDArray w) {
        INDArray x = w.castTo(DataType.FLOAT).dup('c');
        INDArray norms = Transforms.max(x.norm2(1), 1e-12, false);
        return x.diviColumnVector(norms.reshape(norms.length(), 1));
    }

    /**
     * Best matches between unit rows {@code newUnit} [n, d] and {@code oldUnit} [m, d], {@code blockRows}
     * new rows at a time, over all features and, when live flags are given (null: all live), among
     * live features only (a dead feature is never a live one's match; a dead feature's own live-view
     * entry is meaningless). Ties go to the lower index.
     *
     * @return {all, live}; the same object twice without live flags
     */
    static Matches[] match(INDArray newUnit, INDArray oldUnit, boolean[] newLive, boolean[] oldLive, int blockRows) {
        int n = (int) newUnit.size(0);
        int m = (int) oldUnit.size(0);
        Matches all = unmatched(n, m);
        boolean liveView = newLive != null || oldLive != null;
        Matches live = liveView ? unmatched(n, m) : all;
        int capacity = Math.min(blockRows, n);
        INDArray buffer = Nd4j.create(DataType.FLOAT, capacity, m);
        float[] cosines = new float[capacity * m];
        for (int start = 0; start < n; start += blockRows) {
            int rows = Math.min(blockRows, n - start);
            INDArray block = rows == capacity ? buffer : buffer.get(NDArrayIndex.interval(0, rows), NDArrayIndex.all());
            Nd4j.gemm(newUnit.get(NDArrayIndex.interval(start, start + rows), NDArrayIndex.all()), oldUnit, block,
                    false, true, 1.0, 0.0);
            // One pass in Java for both directions: 5x faster than ND4J's row and column max/argmax (measured).
            buffer.data().asNioFloat().get(cosines, 0, rows * m);
            for (int r = 0; r < rows; r++) {
                scanRow(cosines, r * m, m, start + r, all, null);
                if (liveView && (newLive == null || newLive[start + r])) {
                    scanRow(cosines, r * m, m, start + r, live, oldLive);
                }
            }
        }
        noCandidate(all);
        noCandidate(live);
        return new Matches[] {all, live};
    }

    private static Matches unmatched(int n, int m) {
        Matches x = new Matches(new int[n], new float[n], new int[m], new float[m]);
        java.util.Arrays.fill(x.bestOldForNew(), -1);
        java.util.Arrays.fill(x.bestOldCosine(), Float.NEGATIVE_INFINITY);
        java.util.Arrays.fill(x.bestNewForOld(), -1);
        java.util.Arrays.fill(x.bestNewCosine(), Float.NEGATIVE_INFINITY);
        return x;
    }

    /** New feature {@code i}'s cosines (from {@code base}) update its best old match and the old features' best new. */
    private static void scanRow(float[] cosines, int base, int m, int i, Matches x, boolean[] oldLive) {
        float best = Float.NEGATIVE_INFINITY;
        int arg = -1;
        float[] colBest = x.bestNewCosine();
        int[] colArg = x.bestNewForOld();
        for (int j = 0; j < m; j++) {
            if (oldLive != null && !oldLive[j]) {
                continue;
            }
            float c = cosines[base + j];
            if (c > best) {
                best = c;
                arg = j;
            }
            if (c > colBest[j]) {
                colBest[j] = c;
                colArg[j] = i;
            }
        }
        x.bestOldForNew()[i] = arg;
        x.bestOldCosine()[i] = best;
    }

    /** No candidate on the other side (everything there dead): index -1, cosine -1. */
    private static void noCandidate(Matches x) {
        for (float[] cosine : new float[][] {x.bestOldCosine(), x.bestNewCosine()}) {
            for (int i = 0; i < cosine.length; i++) {
                cosine[i] = Math.max(cosine[i], -1f);
            }
        }
    }
}
