package training.sae;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * Matryoshka BatchTopK SAE (Bussmann et al. 2025; SAELens 6 {@code matryoshka_batchtopk}): the
 * BatchTopK activation and AuxK loss, plus the reconstruction loss of every nested prefix of the
 * dictionary, {@code sum_m mean_b ||x_b - (f_b[:m] W_dec[:m] + b_dec)||^2} over the widths
 * m_1 < m_2 < ... < d_sae (the full width is the ordinary loss), so the first latents must
 * reconstruct alone and learn the general features. Like BatchTopK it is exported as a JumpReLU
 * with its running global threshold. The inner losses are reported in the {@code sparsity} slot
 * of {@link LossParts} (the architecture has no sparsity penalty: k sets the sparsity).
 */
public final class MatryoshkaBatchTopKSae extends BatchTopKSae {

    private final int[] innerWidths;
    /** Per inner level: x_hat_m - x, kept from the forward pass for the backward pass. */
    private INDArray[] levelErrors;

    public MatryoshkaBatchTopKSae(SaeConfig config, DataType dtype) {
        super(config, dtype);
        int[] widths = config.effectiveMatryoshkaWidths();
        innerWidths = java.util.Arrays.copyOf(widths, widths.length - 1);
    }

    /** The inner prefix widths (all but the full d_sae). */
    public int[] innerWidths() {
        return innerWidths.clone();
    }

    @Override
    protected void onBatchBuffers(int rows) {
        super.onBatchBuffers(rows);
        levelErrors = new INDArray[innerWidths.length];
        for (int l = 0; l < innerWidths.length; l++) {
            levelErrors[l] = Nd4j.create(dtype, rows, dOut);
        }
    }

    /** Dense only: the nested losses read the dense activations. */
    @Override
    protected boolean activateSparse(boolean training) {
        return false;
    }

    /**
     * Called after the forward pass, while {@code err} = x_hat - x: the prefix-m error is
     * {@code err - f[:, m:] W_dec[m:]} (x_hat without the latents past m).
     */
    @Override
    protected double sparsityLoss() {
        double total = 0;
        for (int l = 0; l < innerWidths.length; l++) {
            int m = innerWidths[l];
            INDArray tail = f.get(NDArrayIndex.all(), NDArrayIndex.interval(m, dSae));
            INDArray tailDecoder = wDec.get(NDArrayIndex.interval(m, dSae), NDArrayIndex.all());
            levelErrors[l].assign(err);
            Nd4j.gemm(tail.dup('c'), tailDecoder.dup('c'), levelErrors[l], false, false, -1.0, 1.0);
            total += squaredSum(levelErrors[l]) / batch;
        }
        return total;
    }

    /** Each prefix loss's gradient: to W_dec[:m], b_dec and dLoss/df[:, :m] (f is still intact here). */
    @Override
    protected void sparsityBackward() {
        for (int l = 0; l < innerWidths.length; l++) {
            int m = innerWidths[l];
            INDArray e = levelErrors[l].muli(2.0 / batch);
            INDArray head = f.get(NDArrayIndex.all(), NDArrayIndex.interval(0, m)).dup('c');
            INDArray headDecoder = wDec.get(NDArrayIndex.interval(0, m), NDArrayIndex.all());
            INDArray gHeadDecoder = gWDec.get(NDArrayIndex.interval(0, m), NDArrayIndex.all());
            gHeadDecoder.addi(head.transpose().mmul(e));
            gBDec.addi(e.sum(0));
            if (wSkip != null) {
                gWSkip.addi(currentInput().transpose().mmul(e)); // a transcoder's prefix prediction keeps the skip path
            }
            INDArray dfHead = df.get(NDArrayIndex.all(), NDArrayIndex.interval(0, m));
            dfHead.addi(e.mmul(headDecoder.transpose()));
        }
    }
}
