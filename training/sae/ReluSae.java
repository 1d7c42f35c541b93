package training.sae;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.scalar.RectifiedLinear;
import org.nd4j.linalg.factory.Nd4j;

/**
 * ReLU SAE with the April-2024 penalty {@code lambda * sum_i f_i ||W_dec,i||} (no unit-norm
 * constraint on decoder rows; the penalty's gradient reaches the decoder norms instead).
 */
public final class ReluSae extends SparseAutoencoder {

    private final INDArray activationSums;
    private final INDArray row;

    public ReluSae(SaeConfig config, DataType dtype) {
        super(config, dtype, 0);
        activationSums = Nd4j.zeros(dtype, dSae);
        row = Nd4j.zeros(dtype, dSae);
    }

    @Override
    protected void activate(boolean training) {
        Nd4j.exec(new RectifiedLinear(z, f, 0.0));
        step(z, mask, 0.0);
        countFiring();
    }

    @Override
    protected double sparsityLoss() {
        columnSums(f, activationSums);
        return sparsityCoefficient / batch * activationSums.mul(decoderNorms).sumNumber().doubleValue();
    }

    @Override
    protected void sparsityBackward() {
        double scale = sparsityCoefficient / batch;
        row.assign(decoderNorms).muli(scale);
        df.addiRowVector(row);
        normGrad.addi(activationSums.muli(scale));
    }

    @Override
    protected void inferenceActivation(INDArray preActivations) {
        Nd4j.exec(new RectifiedLinear(preActivations, preActivations, 0.0));
    }

    @Override
    public INDArray exportThreshold() {
        return null;
    }

    @Override
    public String exportArchitecture() {
        return "standard";
    }
}
