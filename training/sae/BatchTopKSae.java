package training.sae;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * BatchTopK SAE: keep the {@code k * batch} largest positive pre-activations over the whole batch,
 * so tokens share a budget of k per token on average. It tracks a running global threshold (an
 * exponential average, decay 0.99 as in SAELens, of the smallest kept activation per batch) so that at
 * inference and export it is a JumpReLU with that threshold for every feature.
 */
public class BatchTopKSae extends AbstractTopKSae {

    /**
     * SAELens's {@code topk_threshold_lr} = 0.01. At 0.999 the average still leaned on the first
     * batches' small activations after 500 steps: exported, BatchTopK fired 167 latents per
     * held-out token for its k = 24 (demo model, 2,048 latents).
     */
    private static final double THRESHOLD_DECAY = 0.99;

    private double runningThreshold = -1; // negative until the first training batch
    private float[] floatCandidates;
    private double[] doubleCandidates;

    public BatchTopKSae(SaeConfig config, DataType dtype) {
        super(config, dtype);
    }

    @Override
    protected void onBatchBuffers(int rows) {
        super.onBatchBuffers(rows);
        int n = rows * dSae;
        // Host copy of the positive pre-activations for one quickselect over the batch.
        if (dtype == DataType.FLOAT) {
            floatCandidates = new float[n];
        } else {
            doubleCandidates = new double[n];
        }
    }

    /** The k*batch-th largest positive pre-activation of the batch, or +inf if none is positive. */
    private double batchThreshold() {
        if (floatCandidates != null) {
            double t = boundedFloatThreshold();
            if (!Double.isNaN(t)) {
                return t;
            }
        }
        int n = batch * dSae;
        int positives = 0;
        if (floatCandidates != null) {
            for (int i = 0; i < n; i++) {
                double v = zHost.get(i);
                if (v > 0) {
                    floatCandidates[positives++] = (float) v;
                }
            }
        } else {
            for (int i = 0; i < n; i++) {
                double v = zHost.get(i);
                if (v > 0) {
                    doubleCandidates[positives++] = v;
                }
            }
        }
        if (positives == 0) {
            return Double.POSITIVE_INFINITY;
        }
        int keep = (int) Math.min((long) config.k() * batch, positives);
        return floatCandidates != null ? Selection.kthLargest(floatCandidates, positives, keep)
                : Selection.kthLargest(doubleCandidates, positives, keep);
    }

    /**
     * The same threshold in fp32 without selecting over every positive entry: with K = k * batch,
     * the K-th largest of at least 4K block maxima is a lower bound (K blocks reach it, so K
     * entries do), and every entry at or above the K-th largest is at or above it; the selection
     * then runs over those entries only. NaN when the bound is not positive (the plain pass decides).
     */
    private double boundedFloatThreshold() {
        long keepLong = (long) config.k() * batch;
        int n = batch * dSae;
        int blockSize = (int) Math.min(Integer.MAX_VALUE, n / Math.max(1, 4 * keepLong));
        if (keepLong <= 0 || blockSize < 8) {
            return Double.NaN;
        }
        int keep = (int) keepLong;
        int blocksPerRow = (dSae + blockSize - 1) / blockSize;
        int blocks = blocksPerRow * batch;
        float[] maxima = new float[blocks];
        java.nio.FloatBuffer zs = SparseRows.floats(z);
        ThreadLocal<float[]> rows = ThreadLocal.withInitial(() -> new float[dSae]);
        java.util.stream.IntStream.range(0, batch).parallel().forEach(r -> {
            float[] row = rows.get();
            zs.get(r * dSae, row, 0, dSae);
            int b = r * blocksPerRow;
            for (int start = 0; start < dSae; start += blockSize) {
                int end = Math.min(dSae, start + blockSize);
                float max = Float.NEGATIVE_INFINITY;
                for (int i = start; i < end; i++) {
                    max = Math.max(max, row[i]);
                }
                maxima[b++] = max;
            }
        });
        float bound = Selection.kthLargest(maxima, blocks, keep);
        if (!(bound > 0)) {
            return Double.NaN;
        }
        int chunks = Math.max(1, Math.min(batch, 4 * Runtime.getRuntime().availableProcessors()));
        float[][] found = new float[chunks][];
        int[] counts = new int[chunks];
        java.util.stream.IntStream.range(0, chunks).parallel().forEach(c -> {
            float[] row = rows.get();
            float[] list = new float[1024];
            int m = 0;
            for (int r = c * batch / chunks; r < (c + 1) * batch / chunks; r++) {
                zs.get(r * dSae, row, 0, dSae);
                for (int i = 0; i < dSae; i++) {
                    if (row[i] >= bound) {
                        if (m == list.length) {
                            list = java.util.Arrays.copyOf(list, 2 * m);
                        }
                        list[m++] = row[i];
                    }
                }
            }
            found[c] = list;
            counts[c] = m;
        });
        int total = 0;
        for (int c = 0; c < chunks; c++) {
            System.arraycopy(found[c], 0, floatCandidates, total, counts[c]);
            total += counts[c];
        }
        return Selection.kthLargest(floatCandidates, total, keep);
    }

    /** The batch threshold {@link #activateSparse} computed and left for {@link #activate}, or NaN. */
    private double pendingThreshold = Double.NaN;

    @Override
    protected boolean activateSparse(boolean training) {
        double t = batchThreshold();
        long entries = (long) batch * Math.min(config.k(), dSae);
        if (!sparsePays(entries, entries)) {
            pendingThreshold = t;
            return false;
        }
        float cutoff = (float) strictlyBelow(t);
        boolean none = Double.isInfinite(t);
        java.nio.FloatBuffer zs = SparseRows.floats(z);
        active.fill(batch, dSae, (r, sink) -> {
            if (none) {
                return;
            }
            float[] row = sink.row(dSae);
            zs.get(r * dSae, row, 0, dSae);
            for (int i = 0; i < dSae; i++) {
                if (row[i] > cutoff) { // z >= t, as the dense step
                    sink.add(i, row[i], row[i]);
                }
            }
        });
        countActive();
        updateRunningThreshold(training, t);
        return true;
    }

    private void updateRunningThreshold(boolean training, double t) {
        if (training && !Double.isInfinite(t)) {
            runningThreshold = runningThreshold < 0 ? t : THRESHOLD_DECAY * runningThreshold + (1 - THRESHOLD_DECAY) * t;
        }
    }

    @Override
    protected final void activate(boolean training) {
        double t = Double.isNaN(pendingThreshold) ? batchThreshold() : pendingThreshold;
        pendingThreshold = Double.NaN;
        if (Double.isInfinite(t)) {
            mask.assign(0);
        } else {
            step(z, mask, strictlyBelow(t)); // z >= t
        }
        multiply(z, mask, f);
        countFiring();
        updateRunningThreshold(training, t);
    }

    /** The running global threshold (negative before any training batch). */
    public double runningThreshold() {
        return runningThreshold;
    }

    @Override
    protected void inferenceActivation(INDArray preActivations) {
        INDArray keep = Nd4j.create(dtype, preActivations.shape());
        step(preActivations, keep, Math.max(runningThreshold, 0));
        preActivations.muli(keep);
    }

    @Override
    public INDArray exportThreshold() {
        return Nd4j.valueArrayOf(new long[] {dSae}, Math.max(runningThreshold, 0), dtype);
    }

    @Override
    public String exportArchitecture() {
        return "jumprelu";
    }

    @Override
    public double[] trainingState() {
        return new double[] {runningThreshold};
    }

    @Override
    public void restoreTrainingState(double[] state) {
        if (state.length != 1) {
            throw new IllegalArgumentException("BatchTopK state needs 1 value (the running threshold), got " + state.length);
        }
        runningThreshold = state[0];
    }
}
