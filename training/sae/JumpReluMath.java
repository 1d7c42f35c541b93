package training.sae;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastMulOp;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastRSubOp;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastSubOp;
import org.nd4j.linalg.api.ops.impl.scalar.RectifiedLinear;
import org.nd4j.linalg.api.ops.impl.scalar.Step;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.MulOp;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.stream.IntStream;

/**
 * The JumpReLU forward pass, its tanh sparsity penalty, the pre-activation loss and their
 * straight-through backward passes (REFERENCE section 2), on caller-owned preallocated arrays so
 * that the JumpReLU SAE and each layer of the cross-layer transcoder share one implementation.
 * Shapes: pre-activations {@code z}, {@code f}, {@code df}, {@code work}, {@code mask} are
 * [batch, n]; thresholds, decoder norms and the [n] scratch rows are vectors of the n features.
 *
 * <p>Pseudo-derivatives (rectangle kernel {@code K(u) = 1{|u| < 1/2}}, bandwidth eps):
 * {@code df/dtheta = -(theta/eps) K((z - theta)/eps)}, {@code dH/dtheta = -(1/eps) K(...)},
 * {@code df/dz = H(z - theta)}; no gradient reaches z through the step of the L0 term.
 */
public final class JumpReluMath {

    private JumpReluMath() {
    }

    /** threshold := exp(logThreshold); mask := H(z - threshold) (strict {@code >}); f := z * mask. {@code work} is scratch. */
    public static void activate(INDArray z, INDArray logThreshold, INDArray threshold, INDArray work, INDArray mask, INDArray f) {
        threshold.assign(logThreshold);
        Transforms.exp(threshold, false);
        Nd4j.exec(new BroadcastSubOp(z, threshold, work, 1));
        Nd4j.exec(new Step(work, mask, 0.0));
        Nd4j.exec(new MulOp(z, mask, f));
    }

    /** out := tanh(c f_i n_i); {@code row} is [n] scratch. */
    public static void tanhOfScaledActivations(INDArray f, INDArray decoderNorms, double tanhScale, INDArray row, INDArray out) {
        row.assign(decoderNorms).muli(tanhScale);
        Nd4j.exec(new BroadcastMulOp(f, row, out, 1));
        Transforms.tanh(out, false);
    }

    /** {@code lambdaOverBatch * sum tanh(c f n)}, using {@code scratch} [batch, n]. */
    public static double tanhPenalty(INDArray f, INDArray decoderNorms, double tanhScale, double lambdaOverBatch,
                                     INDArray row, INDArray scratch) {
        tanhOfScaledActivations(f, decoderNorms, tanhScale, row, scratch);
        return lambdaOverBatch * scratch.sumNumber().doubleValue();
    }

    /**
     * Backward pass of the sparsity term and of the straight-through threshold gradient of
     * everything that reaches f. On entry {@code df} holds dLoss/df of the other terms; on exit it
     * also holds the tanh term's dLoss/df (when {@code tanh}). Adds the tanh term's
     * dLoss/d||W_dec,i|| to {@code normGrad}, and OVERWRITES {@code gLogThreshold} with
     * dLoss/dlog_theta (sparsity term + straight-through of df). {@code f} and {@code work} are
     * destroyed (used as scratch); {@code rowA}, {@code rowB} are [n] scratch. Returns the tanh
     * penalty {@code lambdaOverBatch * sum tanh(c f n)} it computed on the way (0 without tanh), so a
     * training pass need not compute it separately.
     */
    public static double sparsityBackward(INDArray z, INDArray f, INDArray df, INDArray work, INDArray threshold,
                                        INDArray decoderNorms, INDArray normGrad, INDArray gLogThreshold,
                                        INDArray rowA, INDArray rowB, double lambdaOverBatch, double tanhScale,
                                        double bandwidth, boolean tanh) {
        double penalty = 0;
        if (tanh) {
            // d/df tanh(c f n) = c n (1 - t^2); d/dn = c f (1 - t^2).
            tanhOfScaledActivations(f, decoderNorms, tanhScale, rowA, work);
            penalty = lambdaOverBatch * work.sumNumber().doubleValue();
            work.muli(work).rsubi(1.0);
            Nd4j.exec(new MulOp(f, work, f));
            ColumnSums.of(f, rowB);
            normGrad.addi(rowB.muli(lambdaOverBatch * tanhScale));
            rowA.assign(decoderNorms).muli(lambdaOverBatch * tanhScale);
            Nd4j.exec(new BroadcastMulOp(work, rowA, work, 1));
            df.addi(work);
        }
        // work = K((z - theta)/eps) = 1{|z - theta| < eps/2}.
        Nd4j.exec(new BroadcastSubOp(z, threshold, work, 1));
        Transforms.abs(work, false);
        work.rsubi(bandwidth / 2);
        Nd4j.exec(new Step(work, work, 0.0));
        gLogThreshold.assign(0);
        if (!tanh) {
            // L0: dH/dtheta = -(1/eps) K, summed over the batch.
            ColumnSums.of(work, rowB);
            gLogThreshold.addi(rowB.muli(-lambdaOverBatch / bandwidth));
        }
        // Through f: dLoss/dtheta += sum_b dLoss/df * (-(theta/eps) K).
        Nd4j.exec(new MulOp(work, df, work));
        ColumnSums.of(work, rowB);
        gLogThreshold.addi(rowB.muli(threshold).muli(-1.0 / bandwidth));
        // d/dlog_theta = theta d/dtheta.
        gLogThreshold.muli(threshold);
        return penalty;
    }

    /**
     * The pre-activation loss {@code coefficientOverBatch * sum_b sum_i dead_i ReLU(theta_i - z_bi) n_i}.
     * With {@code backward}: subtracts its dz from {@code df} (a direct term, not through the
     * activation), adds its dLoss/dn to {@code normGrad} and its dLoss/dlog_theta to
     * {@code gLogThreshold}; {@code gap} and {@code mask} [batch, n] are scratch (destroyed).
     */
    public static double preActivationLoss(INDArray z, INDArray threshold, INDArray decoderNorms, INDArray deadMask,
                                           double coefficientOverBatch, boolean backward, INDArray gap, INDArray mask,
                                           INDArray df, INDArray normGrad, INDArray gLogThreshold,
                                           INDArray rowA, INDArray rowB) {
        // gap = ReLU(theta - z); only dead features count.
        Nd4j.exec(new BroadcastRSubOp(z, threshold, gap, 1));
        Nd4j.exec(new RectifiedLinear(gap, gap, 0.0));
        ColumnSums.of(gap, rowB);
        rowA.assign(decoderNorms).muli(deadMask);
        double loss = coefficientOverBatch * rowA.mul(rowB).sumNumber().doubleValue();
        if (backward) {
            double scale = coefficientOverBatch;
            normGrad.addi(rowB.muli(deadMask).muli(scale));
            Nd4j.exec(new Step(gap, mask, 0.0)); // theta > z
            ColumnSums.of(mask, rowB);
            // d/dtheta = scale n dead count(theta > z), then d/dlog_theta = theta d/dtheta.
            gLogThreshold.addi(rowB.muli(rowA).muli(threshold).muli(scale));
            rowA.muli(scale);
            Nd4j.exec(new BroadcastMulOp(mask, rowA, mask, 1));
            df.subi(mask);
        }
        return loss;
    }

    // ---- fused single-pass versions for large [batch, n] arrays (the cross-layer transcoder's hot path) ----
    //
    // The op-by-op methods above make ~30 passes over [batch, n] per layer, which at CLT sizes is
    // memory-bound and cost more than the gemms. These compute the SAME formulas in one pass each,
    // row-parallel, skipping the tanh where a feature is off; the CLT gradient tests check them
    // against finite differences and the pseudo-derivative definitions.

    private static int chunks(int rows) {
        return Math.max(1, Math.min(rows, 4 * Runtime.getRuntime().availableProcessors()));
    }

    /**
     * z += b_enc (per column); f = z where z > theta (strict) else 0; {@code fireCounts[i]} = rows
     * with f > 0. All arrays whole (non-view) except the [n] vectors, which are copied.
     */
    public static void fusedActivate(INDArray z, INDArray bEnc, INDArray threshold, INDArray f, INDArray fireCounts) {
        int rows = (int) z.size(0);
        int n = (int) z.size(1);
        double[] bias = bEnc.toDoubleVector();
        double[] theta = threshold.toDoubleVector();
        HostArray zs = new HostArray(z);
        HostArray fs = new HostArray(f);
        int chunks = chunks(rows);
        double[] counts = IntStream.range(0, chunks).parallel().mapToObj(c -> {
            double[] fired = new double[n];
            for (int r = c * rows / chunks; r < (c + 1) * rows / chunks; r++) {
                int base = r * n;
                for (int i = 0; i < n; i++) {
                    double v = zs.get(base + i) + bias[i];
                    zs.set(base + i, v);
                    double a = zs.get(base + i) > theta[i] ? zs.get(base + i) : 0; // compare in the array's precision
                    fs.set(base + i, a);
                    if (a != 0) {
                        fired[i]++;
                    }
                }
            }
            return fired;
        }).reduce(new double[n], (x, y) -> {
            double[] sum = x.clone();
            for (int i = 0; i < n; i++) {
                sum[i] += y[i];
            }
            return sum;
        });
        fireCounts.assign(Nd4j.createFromArray(counts).castTo(fireCounts.dataType()));
    }

    /**
     * One pass of {@link #sparsityBackward} (tanh) + the activation mask + {@link #preActivationLoss}:
     * on entry {@code df} holds dLoss/df of the reconstruction; on exit it holds dLoss/dz. Adds
     * dLoss/dn to {@code normGrad}; OVERWRITES {@code gLogThreshold} and {@code gBEnc} (column sums of
     * dLoss/dz). Returns {tanh penalty, pre-activation loss}, both weighted.
     */
    public static double[] fusedTanhBackward(INDArray z, INDArray f, INDArray df, INDArray threshold, INDArray decoderNorms,
                                             INDArray deadMask, INDArray normGrad, INDArray gLogThreshold, INDArray gBEnc,
                                             double lambdaOverBatch, double tanhScale, double bandwidth,
                                             double preActOverBatch) {
        int rows = (int) z.size(0);
        int n = (int) z.size(1);
        double[] theta = threshold.toDoubleVector();
        double[] norm = decoderNorms.toDoubleVector();
        double[] dead = deadMask.toDoubleVector();
        HostArray zs = new HostArray(z);
        HostArray fs = new HostArray(f);
        HostArray gs = new HostArray(df);
        double sc = lambdaOverBatch * tanhScale;
        double halfWidth = bandwidth / 2;
        int chunks = chunks(rows);
        // Per chunk: [0..n) normGrad, [n..2n) dLoss/dtheta, [2n..3n) column sums of dz, [3n] penalty, [3n+1] pre-act.
        double[] total = IntStream.range(0, chunks).parallel().mapToObj(c -> {
            double[] acc = new double[3 * n + 2];
            for (int r = c * rows / chunks; r < (c + 1) * rows / chunks; r++) {
                int base = r * n;
                for (int i = 0; i < n; i++) {
                    double zz = zs.get(base + i);
                    double a = fs.get(base + i);
                    double g = gs.get(base + i);
                    double th = theta[i];
                    double dz = 0;
                    if (a != 0) {
                        double t = Math.tanh(tanhScale * a * norm[i]);
                        double sech2 = 1 - t * t;
                        acc[3 * n] += t;
                        g += sc * norm[i] * sech2;
                        acc[i] += sc * a * sech2;
                        dz = g;
                    } else {
                        g += sc * norm[i]; // tanh'(0) = 1: it still reaches theta through the kernel
                    }
                    if (Math.abs(zz - th) < halfWidth) {
                        acc[n + i] -= g * th / bandwidth;
                    }
                    if (dead[i] != 0 && th > zz) {
                        double gap = th - zz;
                        acc[3 * n + 1] += norm[i] * gap;
                        acc[i] += preActOverBatch * gap;
                        acc[n + i] += preActOverBatch * norm[i];
                        dz -= preActOverBatch * norm[i];
                    }
                    gs.set(base + i, dz);
                    acc[2 * n + i] += dz;
                }
            }
            return acc;
        }).reduce(new double[3 * n + 2], (x, y) -> {
            double[] sum = x.clone();
            for (int i = 0; i < sum.length; i++) {
                sum[i] += y[i];
            }
            return sum;
        });
        double[] ng = new double[n];
        double[] gLog = new double[n];
        double[] gb = new double[n];
        for (int i = 0; i < n; i++) {
            ng[i] = total[i];
            gLog[i] = theta[i] * total[n + i]; // d/dlog_theta = theta d/dtheta
            gb[i] = total[2 * n + i];
        }
        normGrad.addi(Nd4j.createFromArray(ng).castTo(normGrad.dataType()));
        gLogThreshold.assign(Nd4j.createFromArray(gLog).castTo(gLogThreshold.dataType()));
        gBEnc.assign(Nd4j.createFromArray(gb).castTo(gBEnc.dataType()));
        return new double[] {lambdaOverBatch * total[3 * n], preActOverBatch * total[3 * n + 1]};
    }
}
