package training.sae;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastMulOp;
import org.nd4j.linalg.api.ops.impl.scalar.RectifiedLinear;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * Gated SAE (Rajamanoharan et al. 2024; SAELens 6 {@code gated}). With {@code u = (x - b_dec) W_enc}:
 * the gate path {@code pi_gate = u + b_gate} decides which latents are active, the magnitude path
 * {@code pi_mag = u * exp(r_mag) + b_mag} (the same directions, rescaled per latent) sets their
 * values, {@code f = H(pi_gate) * ReLU(pi_mag)}. Loss: the reconstruction MSE, the sparsity
 * penalty {@code lambda mean_b sum_i ReLU(pi_gate_i) ||W_dec,i||} and the auxiliary loss
 * {@code mean_b ||x - (ReLU(pi_gate) W_dec + b_dec)||^2}, which is what trains the gate (the step H
 * has no gradient). As in SAELens 6 the auxiliary loss's gradient reaches W_dec and b_dec too: the
 * paper freezes the decoder there but also holds decoder rows at unit norm; without that
 * constraint a frozen decoder lets rows shrink under the norm-weighted penalty while r_mag makes
 * up for it, and the gate stays open (L0 343 of 512 on the recovery test's data, docs/TRAINING.md).
 *
 * <p>Layout: the shared b_enc is b_gate; the extra parameters are r_mag [d_sae] then b_mag [d_sae].
 * Exported as SAELens's {@code gated} layout (b_gate, r_mag, b_mag, no b_enc).
 */
public final class GatedSae extends SparseAutoencoder {

    private final INDArray rMag;
    private final INDArray bMag;
    private final INDArray gRMag;
    private final INDArray gBMag;
    private final INDArray magScale;
    private final INDArray row;
    /** Column sums of ReLU(pi_gate) (the sparsity penalty's per-feature totals). */
    private final INDArray gateSums;
    /** Column sums of the magnitude path's dLoss/du, removed from b_gate's gradient. */
    private final INDArray magnitudePathSums;
    private INDArray magPre;
    private INDArray gatePositive;
    private INDArray gateRecon;

    public GatedSae(SaeConfig config, DataType dtype) {
        super(config, dtype, 2 * config.dSae());
        INDArray extra = extraParameterView(2L * dSae);
        INDArray gExtra = extraGradientView(2L * dSae);
        rMag = extra.get(org.nd4j.linalg.indexing.NDArrayIndex.interval(0, dSae));
        bMag = extra.get(org.nd4j.linalg.indexing.NDArrayIndex.interval(dSae, 2L * dSae));
        gRMag = gExtra.get(org.nd4j.linalg.indexing.NDArrayIndex.interval(0, dSae));
        gBMag = gExtra.get(org.nd4j.linalg.indexing.NDArrayIndex.interval(dSae, 2L * dSae));
        magScale = Nd4j.zeros(dtype, dSae);
        row = Nd4j.zeros(dtype, dSae);
        gateSums = Nd4j.zeros(dtype, dSae);
        magnitudePathSums = Nd4j.zeros(dtype, dSae);
    }

    public INDArray rMag() {
        return rMag;
    }

    public INDArray bMag() {
        return bMag;
    }

    /** b_gate is the shared encoder bias. */
    public INDArray bGate() {
        return bEnc;
    }

    @Override
    protected void initializeExtra(INDArray inputSample) {
        rMag.assign(0);
        bMag.assign(0);
    }

    @Override
    protected void onBatchBuffers(int rows) {
        magPre = Nd4j.create(dtype, rows, dSae);
        gatePositive = Nd4j.create(dtype, rows, dSae);
        gateRecon = Nd4j.create(dtype, rows, dOut);
    }

    /** out := (pi_gate - b_gate) * exp(r_mag) + b_mag, from pi_gate {@code pre}. */
    private void magnitudePreActivations(INDArray pre, INDArray out) {
        magScale.assign(rMag);
        Transforms.exp(magScale, false);
        out.assign(pre).subiRowVector(bEnc);
        Nd4j.exec(new BroadcastMulOp(out, magScale, out, 1));
        out.addiRowVector(bMag);
    }

    @Override
    protected void activate(boolean training) {
        magnitudePreActivations(z, magPre);
        // mask = H(pi_gate) * 1{pi_mag > 0}: f = mask * pi_mag, and df/dpi_mag = mask.
        step(z, mask, 0.0);
        step(magPre, work, 0.0);
        mask.muli(work);
        multiply(magPre, mask, f);
        countFiring();
    }

    @Override
    protected double sparsityLoss() {
        Nd4j.exec(new RectifiedLinear(z, gatePositive, 0.0));
        columnSums(gatePositive, gateSums);
        return sparsityCoefficient / batch * gateSums.mul(decoderNorms).sumNumber().doubleValue();
    }

    @Override
    protected void sparsityBackward() {
        // Its gradient reaches pi_gate, not f: added in auxiliaryLoss, after the mask. Here: d/d||W_dec,i||.
        normGrad.addi(gateSums.mul(sparsityCoefficient / batch));
    }

    /**
     * The auxiliary reconstruction from ReLU(pi_gate), and (backward) every gradient of the gate path.
     * On entry df = dLoss/dpi_mag; on exit df = dLoss/du (mag path scaled by exp(r_mag), plus the
     * gate path), and gr_mag, gb_mag are written.
     */
    @Override
    protected double auxiliaryLoss(boolean backward, double residualScale) {
        // gateRecon - x = ReLU(pi_gate) W_dec + b_dec - x_hat - residualScale * err (x = x_hat + residualScale err).
        Nd4j.exec(new RectifiedLinear(z, gatePositive, 0.0));
        Nd4j.gemm(gatePositive, wDec, gateRecon, false, false, 1.0, 0.0);
        gateRecon.addiRowVector(bDec).subi(xHat).subi(err.mul(residualScale));
        double loss = squaredSum(gateRecon) / batch;
        if (backward) {
            // Magnitude path: gb_mag = sum_b dpi_mag; gr_mag = sum_b dpi_mag (pi_mag - b_mag).
            columnSums(df, gBMag);
            work.assign(magPre).subiRowVector(bMag).muli(df);
            columnSums(work, gRMag);
            Nd4j.exec(new BroadcastMulOp(df, magScale, df, 1));
            columnSums(df, magnitudePathSums); // the mag path's share of sum_b dLoss/du, which b_gate does not get
            // Gate path: dpi_gate = 1{pi_gate > 0} ((2/B) (gateRecon - x) W_dec^T + lambda/B ||W_dec||);
            // the auxiliary reconstruction's decoder gradients.
            gateRecon.muli(2.0 / batch);
            Nd4j.gemm(gatePositive, gateRecon, gWDec, true, false, 1.0, 1.0);
            gBDec.addi(gateRecon.sum(0));
            if (wSkip != null) {
                throw new IllegalStateException("gated transcoders are not supported");
            }
            Nd4j.gemm(gateRecon, wDec, f, false, true, 1.0, 0.0);
            row.assign(decoderNorms).muli(sparsityCoefficient / batch);
            f.addiRowVector(row);
            step(z, work, 0.0);
            f.muli(work);
            df.addi(f);
        }
        return loss;
    }

    @Override
    protected void afterBackward() {
        gBEnc.subi(magnitudePathSums);
    }

    @Override
    protected void inferenceActivation(INDArray preActivations) {
        INDArray magnitude = Nd4j.create(dtype, preActivations.shape());
        magnitudePreActivations(preActivations, magnitude);
        Nd4j.exec(new RectifiedLinear(magnitude, magnitude, 0.0));
        step(preActivations, preActivations, 0.0);
        preActivations.muli(magnitude);
    }

    @Override
    public INDArray exportThreshold() {
        return null;
    }

    @Override
    public String exportArchitecture() {
        return "gated";
    }
}
