package training.optim;

import org.nd4j.linalg.api.ndarray.INDArray;

/** Global-norm gradient clipping over the flat gradient array. */
public final class GradientClipping {

    private GradientClipping() {
    }

    /**
     * Scales {@code gradients} in place so their L2 norm is at most {@code maxNorm} (no-op for
     * maxNorm <= 0); returns the norm before clipping.
     */
    public static double clipGlobalNorm(INDArray gradients, double maxNorm) {
        double norm = gradients.norm2Number().doubleValue();
        if (maxNorm > 0 && norm > maxNorm) {
            gradients.muli(maxNorm / norm);
        }
        return norm;
    }
}
