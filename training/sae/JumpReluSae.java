package training.sae;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastSubOp;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * JumpReLU SAE: {@code f = z * H(z - theta)} with {@code theta = exp(log_theta)} per feature.
 * The step has no useful derivative, so training uses the straight-through pseudo-derivatives
 * with the rectangle kernel {@code K(u) = 1{|u| < 1/2}} and bandwidth eps:
 * {@code df/dtheta = -(theta/eps) K((z - theta)/eps)}, {@code dH/dtheta = -(1/eps) K(...)},
 * {@code df/dz = H(z - theta)}, and no gradient to z through the L0 step.
 * Sparsity: L0 {@code lambda sum_i H(z_i - theta_i)} or tanh {@code lambda sum_i tanh(c f_i ||W_dec,i||)};
 * plus the pre-activation loss {@code lambda_p sum_i ReLU(theta_i - z_i) ||W_dec,i||} on dead features.
 * Thresholds live in the flat parameter array, which is fp32 (or fp64) so their small updates are
 * not rounded away as in bf16.
 */
public final class JumpReluSae extends SparseAutoencoder {

    private final INDArray logThreshold;
    private final INDArray gLogThreshold;
    private final INDArray threshold;
    private final INDArray rowA;
    private final INDArray rowB;
    private final double bandwidth;

    public JumpReluSae(SaeConfig config, DataType dtype) {
        super(config, dtype, config.dSae());
        logThreshold = extraParameterView(dSae);
        gLogThreshold = extraGradientView(dSae);
        threshold = Nd4j.zeros(dtype, dSae);
        rowA = Nd4j.zeros(dtype, dSae);
        rowB = Nd4j.zeros(dtype, dSae);
        bandwidth = config.bandwidth();
    }

    @Override
    protected void initializeExtra() {
        logThreshold.assign(Math.log(config.thresholdInit()));
    }

    public INDArray logThreshold() {
        return logThreshold;
    }

    /** The current thresholds exp(log_theta) [d_sae]; allocates. */
    public INDArray threshold() {
        return Transforms.exp(logThreshold, true);
    }

    @Override
    protected void activate(boolean training) {
        JumpReluMath.activate(z, logThreshold, threshold, work, mask, f);
        countFiring();
    }

    private boolean tanh() {
        return config.jumpReluSparsity() == SaeConfig.JumpReluSparsity.TANH;
    }

    @Override
    protected double sparsityLoss() {
        if (!tanh()) {
            return sparsityCoefficient * fireCounts.sumNumber().doubleValue() / batch;
        }
        return JumpReluMath.tanhPenalty(f, decoderNorms, config.tanhScale(), sparsityCoefficient / batch, rowA, df);
    }

    @Override
    protected void sparsityBackward() {
        JumpReluMath.sparsityBackward(z, f, df, work, threshold, decoderNorms, normGrad, gLogThreshold, rowA, rowB,
                sparsityCoefficient / batch, config.tanhScale(), bandwidth, tanh());
    }

    @Override
    protected double auxiliaryLoss(boolean backward, double residualScale) {
        double coefficient = config.preActLossCoefficient();
        if (coefficient == 0 || deadCount == 0) {
            return 0;
        }
        return JumpReluMath.preActivationLoss(z, threshold, decoderNorms, deadMask, coefficient / batch, backward,
                backward ? f : work, mask, df, normGrad, gLogThreshold, rowA, rowB);
    }

    @Override
    protected void inferenceActivation(INDArray preActivations) {
        INDArray t = threshold();
        INDArray keep = Nd4j.create(dtype, preActivations.shape());
        Nd4j.exec(new BroadcastSubOp(preActivations, t, keep, 1));
        step(keep, keep, 0.0);
        preActivations.muli(keep);
    }

    @Override
    public INDArray exportThreshold() {
        return threshold();
    }

    @Override
    public String exportArchitecture() {
        return "jumprelu";
    }
}
