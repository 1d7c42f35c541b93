package training.sae;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastMulOp;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastRSubOp;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastSubOp;
import org.nd4j.linalg.api.ops.impl.scalar.RectifiedLinear;
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
        threshold.assign(logThreshold);
        Transforms.exp(threshold, false);
        Nd4j.exec(new BroadcastSubOp(z, threshold, work, 1));
        step(work, mask, 0.0);
        multiply(z, mask, f);
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
        tanhOfScaledActivations(df);
        return sparsityCoefficient / batch * df.sumNumber().doubleValue();
    }

    /** out = tanh(c f_i ||W_dec,i||). */
    private void tanhOfScaledActivations(INDArray out) {
        rowA.assign(decoderNorms).muli(config.tanhScale());
        Nd4j.exec(new BroadcastMulOp(f, rowA, out, 1));
        Transforms.tanh(out, false);
    }

    @Override
    protected void sparsityBackward() {
        double lambdaOverB = sparsityCoefficient / batch;
        if (tanh()) {
            // d/df tanh(c f n) = c n (1 - t^2); d/dn = c f (1 - t^2).
            tanhOfScaledActivations(work);
            work.muli(work).rsubi(1.0);
            multiply(f, work, f);
            columnSums(f, rowB);
            normGrad.addi(rowB.muli(lambdaOverB * config.tanhScale()));
            rowA.assign(decoderNorms).muli(lambdaOverB * config.tanhScale());
            Nd4j.exec(new BroadcastMulOp(work, rowA, work, 1));
            df.addi(work);
        }
        // work = K((z - theta)/eps) = 1{|z - theta| < eps/2}; with L0, work still holds z - theta from activate().
        if (tanh()) {
            Nd4j.exec(new BroadcastSubOp(z, threshold, work, 1));
        }
        Transforms.abs(work, false);
        work.rsubi(bandwidth / 2);
        step(work, work, 0.0);
        gLogThreshold.assign(0);
        if (!tanh()) {
            // L0: dH/dtheta = -(1/eps) K, summed over the batch.
            columnSums(work, rowB);
            gLogThreshold.addi(rowB.muli(-lambdaOverB / bandwidth));
        }
        // Through f: dLoss/dtheta += sum_b dLoss/df * (-(theta/eps) K).
        multiply(work, df, work);
        columnSums(work, rowB);
        gLogThreshold.addi(rowB.muli(threshold).muli(-1.0 / bandwidth));
        // d/dlog_theta = theta d/dtheta.
        gLogThreshold.muli(threshold);
    }

    @Override
    protected double auxiliaryLoss(boolean backward, double residualScale) {
        double coefficient = config.preActLossCoefficient();
        if (coefficient == 0 || deadCount == 0) {
            return 0;
        }
        INDArray gap = backward ? f : work;
        // gap = ReLU(theta - z); only dead features count.
        Nd4j.exec(new BroadcastRSubOp(z, threshold, gap, 1));
        Nd4j.exec(new RectifiedLinear(gap, gap, 0.0));
        columnSums(gap, rowB);
        rowA.assign(decoderNorms).muli(deadMask);
        double loss = coefficient / batch * rowA.mul(rowB).sumNumber().doubleValue();
        if (backward) {
            double scale = coefficient / batch;
            normGrad.addi(rowB.muli(deadMask).muli(scale));
            step(gap, mask, 0.0); // theta > z
            columnSums(mask, rowB);
            // d/dtheta = scale n dead count(theta > z), then d/dlog_theta = theta d/dtheta.
            gLogThreshold.addi(rowB.muli(rowA).muli(threshold).muli(scale));
            rowA.muli(scale);
            Nd4j.exec(new BroadcastMulOp(mask, rowA, mask, 1));
            df.subi(mask);
        }
        return loss;
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
