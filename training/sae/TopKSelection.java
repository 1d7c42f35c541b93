package training.sae;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * TopK inference on loaded dictionaries (SAELens and circuit-tracer layouts): per row, the k
 * largest pre-activations kept and ReLU'd, the rest zeroed; exactly k per row, ties to the lower
 * index, as in {@link AbstractTopKSae} training. Quickselect per row, no sort.
 */
public final class TopKSelection {

    private TopKSelection() {
    }

    /** relu(z) at each row's k largest entries, 0 elsewhere, as a new [n, d] FLOAT array. */
    public static INDArray keepTopK(INDArray z, int k) {
        int rows = (int) z.size(0);
        int cols = (int) z.size(1);
        float[] values = z.castTo(DataType.FLOAT).dup('c').reshape(z.length()).toFloatVector();
        float[] out = new float[values.length];
        float[] select = new float[cols];
        int keep = Math.min(k, cols);
        for (int r = 0; keep > 0 && r < rows; r++) {
            int base = r * cols;
            System.arraycopy(values, base, select, 0, cols);
            float kth = Selection.kthLargest(select, cols, keep);
            int taken = 0;
            for (int i = 0; i < cols; i++) {
                if (values[base + i] > kth) {
                    out[base + i] = Math.max(values[base + i], 0f);
                    taken++;
                }
            }
            for (int i = 0; i < cols && taken < keep; i++) {
                if (values[base + i] == kth) {
                    out[base + i] = Math.max(kth, 0f);
                    taken++;
                }
            }
        }
        return Nd4j.createFromArray(out).reshape(rows, cols);
    }
}
