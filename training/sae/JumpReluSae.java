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
 * Sparsity: L0 {@code lambda sum_i H(z_i - theta_i)}, tanh {@code lambda sum_i tanh(c f_i ||W_dec,i||)},
 * or quadratic {@code lambda d (L0 / L0_target - 1)^2} with {@code L0} the batch's mean count of active
 * latents (Gemma Scope 2, SAELens 6) and d the target width: normalized inputs have E||x||^2 = d, so
 * at lambda = 1 an L0 of twice the target costs what reconstructing nothing would, whatever the
 * width. Its threshold gradient is the L0 term's with the coefficient
 * {@code 2 lambda d (L0 / L0_target - 1) / L0_target}, so it pushes thresholds up above the target
 * and down below it; plus the pre-activation loss {@code lambda_p sum_i ReLU(theta_i - z_i) ||W_dec,i||} on dead features.
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

    /**
     * A positive {@code thresholdInit} sets every threshold to it. 0 (the reference default) starts
     * each feature's threshold at the quantile of its own pre-activations, over the normalization
     * sample, that it exceeds on {@code targetL0 / d_sae} of the tokens: the first batch then fires
     * about {@code targetL0} latents per token whatever the activation scale, instead of nearly all
     * of them (a constant far below the pre-activations) or none (far above).
     */
    @Override
    protected void initializeExtra(INDArray inputSample) {
        if (config.thresholdInit() > 0 || inputSample == null || inputSample.rows() == 0) {
            logThreshold.assign(Math.log(config.thresholdInit() > 0 ? config.thresholdInit() : 0.01));
            return;
        }
        logThreshold.assign(Nd4j.createFromArray(logQuantileThresholds(preActivations(inputSample), config.targetL0() / dSae))
                .castTo(dtype));
    }

    /**
     * log of the per-column value exceeded by {@code fraction} of the rows of {@code z} [n, d_sae],
     * floored at a small positive value (exp(log_theta) must stay positive) when a feature's
     * quantile is not positive.
     */
    static double[] logQuantileThresholds(INDArray z, double fraction) {
        int rows = (int) z.rows();
        int cols = (int) z.columns();
        double[][] columns = z.transpose().dup('c').toDoubleMatrix();
        int above = (int) Math.max(1, Math.min(rows - 1, Math.round(fraction * rows)));
        double[] out = new double[cols];
        for (int i = 0; i < cols; i++) {
            double[] c = columns[i];
            java.util.Arrays.sort(c);
            double q = c[rows - above - 1]; // 'above' values lie strictly above this one (ties aside)
            double spread = c[rows - 1] - c[0];
            out[i] = Math.log(q > 0 ? q : Math.max(1e-3 * spread, 1e-6));
        }
        return out;
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

    private boolean quadratic() {
        return config.jumpReluSparsity() == SaeConfig.JumpReluSparsity.QUADRATIC;
    }

    /** lambda d: the quadratic penalty in units of the normalized target's energy E||y||^2 = d. */
    private double quadraticWeight() {
        return sparsityCoefficient * dOut;
    }

    /** The batch's mean number of active latents per token. */
    private double batchL0() {
        return fireCounts.sumNumber().doubleValue() / batch;
    }

    @Override
    protected double sparsityLoss() {
        if (quadratic()) {
            double gap = batchL0() / config.targetL0() - 1;
            return quadraticWeight() * gap * gap;
        }
        if (!tanh()) {
            return sparsityCoefficient * batchL0();
        }
        return JumpReluMath.tanhPenalty(f, decoderNorms, config.tanhScale(), sparsityCoefficient / batch, rowA, df);
    }

    @Override
    protected void sparsityBackward() {
        // Quadratic: d/dtheta lambda (L0/T - 1)^2 = [2 lambda (L0/T - 1) / T] dL0/dtheta, i.e. the L0 term's
        // straight-through gradient with that coefficient (negative below the target: thresholds fall).
        double coefficient = quadratic()
                ? 2 * quadraticWeight() * (batchL0() / config.targetL0() - 1) / config.targetL0()
                : sparsityCoefficient;
        JumpReluMath.sparsityBackward(z, f, df, work, threshold, decoderNorms, normGrad, gLogThreshold, rowA, rowB,
                coefficient / batch, config.tanhScale(), bandwidth, tanh());
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

    // ---- sparse path: the active latents plus every entry the straight-through gradients read ----

    private float[] hostTheta;
    private float[] hostNorms;
    private boolean[] hostDead;
    /** Per dead latent, over the batch: sum of ReLU(theta - z) and the count of theta > z (pre-activation loss). */
    private double[] gapSums;
    private double[] belowCounts;

    private boolean preActivationLossOn() {
        return config.preActLossCoefficient() != 0 && deadCount > 0;
    }

    /**
     * One pass over z: the active latents (z > theta), the inactive entries inside the threshold
     * window |z - theta| < eps/2 (their dLoss/df reaches theta through the rectangle kernel), and
     * the dead latents' entries with z >= theta (the exceptions to the pre-activation loss's
     * rank-one dz, see {@link #sparseAuxiliaryLoss}); then the cost model on the counts.
     */
    @Override
    protected boolean activateSparse(boolean training) {
        if (denseAgain()) {
            return false;
        }
        threshold.assign(logThreshold);
        Transforms.exp(threshold, false);
        hostTheta = SparseRows.read(threshold, hostTheta);
        float[] theta = hostTheta;
        float halfWidth = (float) (bandwidth / 2);
        boolean preAct = preActivationLossOn();
        boolean[] dead = null;
        if (preAct) {
            float[] deadHost = SparseRows.read(deadMask, null);
            dead = new boolean[dSae];
            for (int i = 0; i < dSae; i++) {
                dead[i] = deadHost[i] != 0;
            }
        }
        hostDead = dead;
        boolean[] deadFinal = dead;
        java.nio.FloatBuffer zs = SparseRows.floats(z);
        SparseRows.Sink[] sinks = active.fill(batch, dSae, (r, sink) -> {
            float[] row = sink.row(dSae);
            zs.get(r * dSae, row, 0, dSae);
            double[] acc = preAct ? sink.accumulator(2 * dSae) : null;
            for (int i = 0; i < dSae; i++) {
                float zz = row[i];
                float th = theta[i];
                boolean on = zz > th;
                boolean exception = false;
                if (preAct && deadFinal[i]) {
                    float gap = th - zz;
                    if (gap > 0) {
                        acc[i] += gap;
                        acc[dSae + i] += 1;
                    } else {
                        exception = true;
                    }
                }
                if (on || exception || Math.abs(zz - th) < halfWidth) {
                    sink.add(i, on ? zz : 0f, zz);
                }
            }
        });
        if (!sparsePays(active.activeCount(), active.size())) {
            return false;
        }
        if (preAct) {
            gapSums = new double[dSae];
            belowCounts = new double[dSae];
            for (SparseRows.Sink sink : sinks) {
                if (sink.used()) {
                    for (int i = 0; i < dSae; i++) {
                        gapSums[i] += sink.accumulator[i];
                        belowCounts[i] += sink.accumulator[dSae + i];
                    }
                }
            }
        }
        fireCounts.assign(Nd4j.createFromArray(active.activeColumnCounts()).castTo(dtype));
        hostNorms = SparseRows.read(decoderNorms, hostNorms);
        return true;
    }

    @Override
    protected double sparseSparsityLoss() {
        if (!tanh()) {
            return sparsityLoss(); // from the firing counts only
        }
        double c = config.tanhScale();
        double sum = 0;
        for (int e = 0; e < active.size(); e++) {
            float a = active.f[e];
            if (a != 0) {
                sum += Math.tanh(c * a * hostNorms[active.col[e]]);
            }
        }
        return sparsityCoefficient / batch * sum;
    }

    /** {@link JumpReluMath#sparsityBackward} and the mask, entry by entry (the formulas are the same). */
    @Override
    protected void sparseSparsityBackward() {
        double coefficient = quadratic()
                ? 2 * quadraticWeight() * (batchL0() / config.targetL0() - 1) / config.targetL0()
                : sparsityCoefficient;
        double lambdaOverBatch = coefficient / batch;
        boolean tanh = tanh();
        double c = config.tanhScale();
        double sc = lambdaOverBatch * c;
        float halfWidth = (float) (bandwidth / 2);
        double[] thetaGrad = new double[dSae];
        double[] norms = tanh ? new double[dSae] : null;
        for (int e = 0; e < active.size(); e++) {
            int i = active.col[e];
            double g = active.grad[e]; // dLoss/df at an active entry; at an inactive one it is in inactiveDf
            float a = active.f[e];
            if (tanh) {
                double n = hostNorms[i];
                if (a != 0) {
                    double t = Math.tanh(c * a * n);
                    double sech2 = 1 - t * t;
                    g += sc * n * sech2;
                    norms[i] += sc * a * sech2;
                } else {
                    g += sc * n; // tanh'(0) = 1: it still reaches theta through the kernel
                }
            }
            if (Math.abs(active.pre[e] - hostTheta[i]) < halfWidth) {
                if (!tanh) {
                    thetaGrad[i] -= lambdaOverBatch / bandwidth; // L0: dH/dtheta = -(1/eps) K
                }
                thetaGrad[i] -= g * hostTheta[i] / bandwidth;
            }
            active.grad[e] = a != 0 ? (float) g : 0f;
        }
        // Inactive entries are all inside the window (an inactive dead-latent exception has z = theta).
        for (int i = 0; i < dSae; i++) {
            thetaGrad[i] -= inactiveDf[i] * hostTheta[i] / bandwidth;
        }
        for (int i = 0; i < dSae; i++) {
            thetaGrad[i] *= hostTheta[i]; // d/dlog_theta = theta d/dtheta
        }
        gLogThreshold.assign(Nd4j.createFromArray(thetaGrad).castTo(dtype));
        if (tanh) {
            normGrad.addi(Nd4j.createFromArray(norms).castTo(dtype));
        }
    }

    /**
     * The pre-activation loss on the sparse path. Its dz, -(c/B) n_i wherever theta_i > z on a dead
     * latent, is dense in those columns: it goes in as the rank-one term -(c/B) n_i at every row,
     * with the rows where z >= theta (entries of {@link #active}) given +(c/B) n_i back.
     */
    @Override
    protected double sparseAuxiliaryLoss(boolean backward, double residualScale, float[][] err, float[][] wDecHost, float[][] gDecHost) {
        if (!preActivationLossOn()) {
            return 0;
        }
        double scale = config.preActLossCoefficient() / batch;
        double loss = 0;
        double[] ng = new double[dSae];
        double[] gLog = new double[dSae];
        double[] rankOne = new double[dSae];
        for (int i = 0; i < dSae; i++) {
            if (hostDead[i]) {
                loss += hostNorms[i] * gapSums[i];
                ng[i] = gapSums[i] * scale;
                gLog[i] = belowCounts[i] * hostNorms[i] * hostTheta[i] * scale;
                rankOne[i] = -scale * hostNorms[i];
            }
        }
        if (backward) {
            normGrad.addi(Nd4j.createFromArray(ng).castTo(dtype));
            gLogThreshold.addi(Nd4j.createFromArray(gLog).castTo(dtype));
            for (int e = 0; e < active.size(); e++) {
                int i = active.col[e];
                if (hostDead[i] && !(hostTheta[i] > active.pre[e])) {
                    active.grad[e] += (float) (scale * hostNorms[i]);
                }
            }
            rankOneColumns = rankOne;
        }
        return scale * loss;
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
