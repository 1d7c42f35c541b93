package training.features;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.ArrayList;
import java.util.List;

/**
 * Which output tokens each feature's decoder direction promotes and suppresses: the rows of
 * {@code (W_dec * gain) @ W_U^T}, where gain is the final norm's gain (the direction is read as if
 * it reached the unembedding through the final norm). Meaningful for residual-stream hooks only.
 */
public final class LogitTables {

    /** Top tokens (highest logit first) and bottom tokens (lowest first) of one feature. */
    public record Table(int[] topTokens, float[] topValues, int[] bottomTokens, float[] bottomValues) {
    }

    private static final int CHUNK = 256;

    private LogitTables() {
    }

    /** @param wDec [dSae, d], gain [d], unembedding [vocab, d] */
    public static List<Table> compute(INDArray wDec, float[] gain, INDArray unembedding, int n) {
        int dSae = (int) wDec.size(0);
        int d = (int) wDec.size(1);
        int vocab = (int) unembedding.size(0);
        if (unembedding.size(1) != d || gain.length != d) {
            throw new IllegalArgumentException("decoder width " + d + " does not match the unembedding width " + unembedding.size(1));
        }
        INDArray g = Nd4j.createFromArray(gain).reshape(1, d);
        INDArray u = unembedding.castTo(DataType.FLOAT);
        int count = Math.min(n, vocab);
        List<Table> tables = new ArrayList<>(dSae);
        INDArray logits = Nd4j.create(DataType.FLOAT, Math.min(CHUNK, dSae), vocab);
        for (int from = 0; from < dSae; from += CHUNK) {
            int rows = Math.min(CHUNK, dSae - from);
            INDArray chunk = wDec.get(NDArrayIndex.interval(from, from + rows), NDArrayIndex.all())
                    .castTo(DataType.FLOAT).dup('c').muliRowVector(g);
            INDArray out = rows == logits.size(0) ? logits : Nd4j.create(DataType.FLOAT, rows, vocab);
            Nd4j.gemm(chunk, u, out, false, true, 1.0, 0.0);
            float[] values = out.dup('c').reshape(out.length()).toFloatVector();
            for (int r = 0; r < rows; r++) {
                tables.add(select(values, r * vocab, vocab, count));
            }
        }
        return tables;
    }

    private static Table select(float[] values, int offset, int vocab, int n) {
        Integer[] order = new Integer[vocab];
        for (int i = 0; i < vocab; i++) {
            order[i] = i;
        }
        // Ties by token id keep the tables deterministic.
        java.util.Arrays.sort(order, (a, b) -> {
            int c = Float.compare(values[offset + b], values[offset + a]);
            return c != 0 ? c : Integer.compare(a, b);
        });
        int[] top = new int[n];
        float[] topValues = new float[n];
        int[] bottom = new int[n];
        float[] bottomValues = new float[n];
        for (int i = 0; i < n; i++) {
            top[i] = order[i];
            topValues[i] = values[offset + order[i]];
            bottom[i] = order[vocab - 1 - i];
            bottomValues[i] = values[offset + order[vocab - 1 - i]];
        }
        return new Table(top, topValues, bottom, bottomValues);
    }
}
