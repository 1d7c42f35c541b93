package training.sae;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.stream.IntStream;

/**
 * What TopK and BatchTopK share: no sparsity penalty (k fixes the sparsity) and OpenAI's AuxK loss,
 * which reconstructs the residual {@code e = x - x_hat} (treated as a constant) from the top
 * {@code k_aux} dead latents, {@code alpha * min(dead/k_aux, 1) * mean_b ||A_b W_dec - e_b||^2}, so
 * dead latents get gradient towards what the live ones miss.
 */
public abstract class AbstractTopKSae extends SparseAutoencoder {

    private INDArray auxReconstruction;
    protected HostArray zHost;
    protected HostArray maskHost;
    private final ThreadLocal<double[][]> rowScratch;
    private final ThreadLocal<int[]> chosenScratch;
    private final ThreadLocal<float[][]> floatScratch;
    private final ThreadLocal<int[]> indexScratch;
    private float[][] auxResidual;

    protected AbstractTopKSae(SaeConfig config, DataType dtype) {
        super(config, dtype, 0);
        rowScratch = ThreadLocal.withInitial(() -> new double[][] {new double[dSae], new double[dSae]});
        chosenScratch = ThreadLocal.withInitial(() -> new int[dSae]);
        floatScratch = ThreadLocal.withInitial(() -> new float[][] {new float[dSae], new float[dSae], new float[dSae]});
        indexScratch = ThreadLocal.withInitial(() -> new int[dSae]);
    }

    @Override
    protected void onBatchBuffers(int rows) {
        auxReconstruction = Nd4j.create(dtype, rows, dOut);
        zHost = new HostArray(z);
        maskHost = new HostArray(mask);
    }

    @Override
    protected double sparsityLoss() {
        return 0;
    }

    @Override
    protected void sparsityBackward() {
        // k, not a penalty, sets the sparsity.
    }

    /**
     * Writes 1 into {@code dst} at the {@code k} largest entries of each row of {@code src}
     * among {@code columns} (all columns if null) and 0 elsewhere; exactly k per row, ties broken
     * by lower column index.
     */
    protected final void topKPerRow(HostArray src, HostArray dst, INDArray dstArray, int rows, int cols, int k, int[] columns) {
        dstArray.assign(0);
        int candidates = columns == null ? cols : columns.length;
        if (k <= 0 || candidates == 0) {
            return;
        }
        int keep = Math.min(k, candidates);
        IntStream.range(0, rows).parallel().forEach(r -> {
            int[] chosen = chosenScratch.get();
            int taken = selectRow(src, r, cols, keep, columns, chosen);
            for (int i = 0; i < taken; i++) {
                dst.set(r * cols + chosen[i], 1.0);
            }
        });
    }

    /**
     * The columns of the {@code keep} largest entries of row {@code r} of {@code src} among
     * {@code columns} (all if null) into {@code chosen}; ties broken by lower column index. Returns keep.
     */
    private int selectRow(HostArray src, int r, int cols, int keep, int[] columns, int[] chosen) {
        if (src.isFloat()) {
            return selectFloatRow(src, r, cols, keep, columns, chosen);
        }
        double[][] scratch = rowScratch.get();
        double[] values = scratch[0];
        double[] select = scratch[1];
        int candidates = columns == null ? cols : columns.length;
        int base = r * cols;
        if (columns == null) {
            src.read(base, values, cols);
        } else {
            for (int i = 0; i < candidates; i++) {
                values[i] = src.get(base + columns[i]);
            }
        }
        System.arraycopy(values, 0, select, 0, candidates);
        double kth = Selection.kthLargest(select, candidates, keep);
        int taken = 0;
        for (int i = 0; i < candidates; i++) {
            if (values[i] > kth) {
                chosen[taken++] = columns == null ? i : columns[i];
            }
        }
        for (int i = 0; i < candidates && taken < keep; i++) {
            if (values[i] == kth) {
                chosen[taken++] = columns == null ? i : columns[i];
            }
        }
        return taken;
    }

    /**
     * {@link #selectRow} on fp32 values (bulk row read, fp32 quickselect). A whole row with a small
     * k is first cut to the entries at or above the k-th largest of its block maxima: k blocks have
     * a maximum at least that large, so the row's k-th largest value and every entry tied with it
     * are among them, in column order; the selection is the same, over a few k values instead of
     * the whole row.
     */
    private int selectFloatRow(HostArray src, int r, int cols, int keep, int[] columns, int[] chosen) {
        float[][] scratch = floatScratch.get();
        float[] values = scratch[0];
        float[] select = scratch[1];
        int[] index = indexScratch.get();
        int candidates = columns == null ? cols : columns.length;
        int base = r * cols;
        if (columns == null) {
            src.readFloats(base, values, cols);
        } else {
            for (int i = 0; i < candidates; i++) {
                values[i] = (float) src.get(base + columns[i]);
            }
        }
        int m = candidates;
        float[] kept = values;
        int blockSize = candidates / (4 * keep);
        if (blockSize >= 8) {
            int blocks = 0;
            for (int start = 0; start < candidates; start += blockSize) {
                int end = Math.min(candidates, start + blockSize);
                float max = Float.NEGATIVE_INFINITY;
                for (int i = start; i < end; i++) {
                    max = Math.max(max, values[i]);
                }
                select[blocks++] = max;
            }
            float bound = Selection.kthLargest(select, blocks, keep);
            m = 0;
            for (int i = 0; i < candidates; i++) {
                if (values[i] >= bound) {
                    index[m++] = i;
                }
            }
            kept = scratch[2];
            for (int i = 0; i < m; i++) {
                kept[i] = values[index[i]];
            }
        } else {
            for (int i = 0; i < m; i++) {
                index[i] = i;
            }
        }
        System.arraycopy(kept, 0, select, 0, m);
        float kth = Selection.kthLargest(select, m, keep);
        int taken = 0;
        for (int i = 0; i < m; i++) {
            if (kept[i] > kth) {
                chosen[taken++] = columns == null ? index[i] : columns[index[i]];
            }
        }
        for (int i = 0; i < m && taken < keep; i++) {
            if (kept[i] == kth) {
                chosen[taken++] = columns == null ? index[i] : columns[index[i]];
            }
        }
        return taken;
    }

    /**
     * Sparse form of {@link #topKPerRow}: {@code out} gets, per row, the selected columns with
     * their pre-activations (as f and z); with {@code positiveOnly}, only those above 0 (TopK's ReLU).
     */
    protected final void topKEntries(SparseRows out, int rows, int cols, int k, int[] columns, boolean positiveOnly) {
        int candidates = columns == null ? cols : columns.length;
        int keep = Math.max(0, Math.min(k, candidates));
        out.fill(rows, cols, (r, sink) -> {
            if (keep == 0) {
                return;
            }
            int[] chosen = chosenScratch.get();
            int taken = selectRow(zHost, r, cols, keep, columns, chosen);
            for (int i = 0; i < taken; i++) {
                float v = (float) zHost.get(r * cols + chosen[i]);
                if (!positiveOnly || v > 0) {
                    sink.add(chosen[i], v, v);
                }
            }
        });
    }

    /** fireCounts := per-latent counts of the active entries. */
    protected final void countActive() {
        fireCounts.assign(Nd4j.createFromArray(active.activeColumnCounts()).castTo(dtype));
    }

    /** AuxK on the sparse path: the same loss and gradients as {@link #auxiliaryLoss}, over the k_aux entries per row. */
    @Override
    protected double sparseAuxiliaryLoss(boolean backward, double residualScale, float[][] err, float[][] wDecHost, float[][] gDecHost) {
        double alpha = config.auxKCoefficient();
        if (alpha == 0 || deadCount == 0) {
            return 0;
        }
        int kAux = config.effectiveKAux();
        double scale = Math.min(1.0, deadCount / (double) kAux);
        topKEntries(auxEntries, batch, dSae, kAux, deadIndices, false);
        float[][] recon = auxResidual = SparseRows.zeroed(auxResidual, batch, dOut);
        float minusScale = (float) -residualScale;
        for (int r = 0; r < batch; r++) {
            float[] o = recon[r];
            float[] e = err[r];
            for (int j = 0; j < dOut; j++) {
                o[j] = minusScale * e[j]; // -e: the aux reconstruction minus the residual
            }
        }
        // Aux entries carry z (possibly <= 0) as their value: every selected entry gets a gradient.
        auxEntries.decode(wDecHost, recon);
        double weight = alpha * scale / batch;
        double sum = 0;
        for (float[] o : recon) {
            for (float v : o) {
                sum += (double) v * v;
            }
        }
        double loss = weight * sum;
        if (backward) {
            float twice = (float) (2 * weight);
            for (float[] o : recon) {
                for (int j = 0; j < dOut; j++) {
                    o[j] *= twice;
                }
            }
            auxEntries.transposeTimes(auxEntries.f, recon, gDecHost);
            auxEntries.dotsAll(recon, wDecHost, auxEntries.grad);
            auxEntriesUsed = true;
        }
        return loss;
    }

    @Override
    protected double auxiliaryLoss(boolean backward, double residualScale) {
        double alpha = config.auxKCoefficient();
        if (alpha == 0 || deadCount == 0) {
            return 0;
        }
        int kAux = config.effectiveKAux();
        double scale = Math.min(1.0, deadCount / (double) kAux);
        // mask := the top-k_aux dead latents per token; work := their pre-activations.
        topKPerRow(zHost, maskHost, mask, batch, dSae, kAux, deadIndices);
        multiply(z, mask, work);
        Nd4j.gemm(work, wDec, auxReconstruction, false, false, 1.0, 0.0);
        // err is not needed after this term: turn it into the residual e and subtract.
        err.muli(residualScale);
        auxReconstruction.subi(err);
        double weight = alpha * scale / batch;
        double loss = weight * squaredSum(auxReconstruction);
        if (backward) {
            auxReconstruction.muli(2 * weight);
            Nd4j.gemm(work, auxReconstruction, gWDec, true, false, 1.0, 1.0);
            Nd4j.gemm(auxReconstruction, wDec, f, false, true, 1.0, 0.0);
            f.muli(mask);
            df.addi(f);
        }
        return loss;
    }
}
