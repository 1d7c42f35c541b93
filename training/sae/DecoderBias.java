package training.sae;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** The initial decoder bias from a sample of activations: mean, geometric median or zero. */
public final class DecoderBias {

    private DecoderBias() {
    }

    /** A [d_in] DOUBLE vector; {@code sample} is [rows, d_in] (ignored for ZERO). */
    public static INDArray initial(SaeConfig.DecoderBiasInit kind, INDArray sample, int dIn) {
        if (kind == SaeConfig.DecoderBiasInit.ZERO) {
            return Nd4j.zeros(DataType.DOUBLE, dIn);
        }
        if (sample == null || sample.rank() != 2 || sample.size(0) == 0 || sample.size(1) != dIn) {
            throw new IllegalArgumentException("b_dec init '" + kind.name().toLowerCase() + "' needs a [rows, " + dIn
                    + "] activation sample; pass one or use decoder bias init 'zero'");
        }
        INDArray data = sample.castTo(DataType.DOUBLE);
        INDArray mean = data.mean(0);
        return kind == SaeConfig.DecoderBiasInit.MEAN ? mean : geometricMedian(data, mean, 100, 1e-6);
    }

    /**
     * Weiszfeld's iteration for the point minimizing the sum of Euclidean distances to the rows,
     * started at the mean (runs once per training run on a small sample, so allocation is fine).
     */
    static INDArray geometricMedian(INDArray rows, INDArray start, int maxIterations, double tolerance) {
        INDArray median = start.dup();
        for (int it = 0; it < maxIterations; it++) {
            INDArray distances = rows.subRowVector(median).norm2(1);
            // Rows sitting on the current estimate would divide by zero; floor their distance.
            INDArray weights = Nd4j.ones(DataType.DOUBLE, distances.length()).divi(org.nd4j.linalg.ops.transforms.Transforms.max(distances, 1e-12));
            INDArray next = rows.mulColumnVector(weights.reshape(weights.length(), 1)).sum(0).divi(weights.sumNumber().doubleValue());
            double shift = next.distance2(median);
            median = next;
            if (shift <= tolerance * Math.max(1.0, median.norm2Number().doubleValue())) {
                break;
            }
        }
        return median;
    }
}
