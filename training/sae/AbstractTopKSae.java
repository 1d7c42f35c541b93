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

    protected AbstractTopKSae(SaeConfig config, DataType dtype) {
        super(config, dtype, 0);
        rowScratch = ThreadLocal.withInitial(() -> new double[][] {new double[dSae], new double[dSae]});
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
            double[][] scratch = rowScratch.get();
            double[] values = scratch[0];
            double[] select = scratch[1];
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
                    dst.set(base + (columns == null ? i : columns[i]), 1.0);
                    taken++;
                }
            }
            for (int i = 0; i < candidates && taken < keep; i++) {
                if (values[i] == kth) {
                    dst.set(base + (columns == null ? i : columns[i]), 1.0);
                    taken++;
                }
            }
        });
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
