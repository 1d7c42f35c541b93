package training.sae;

import java.util.Arrays;
import java.util.Comparator;
import java.util.stream.IntStream;

/**
 * A plain-Java, loop-by-loop SAE loss written straight from the formulas (REFERENCE section 2), on
 * a flat double parameter vector with the model's layout. Independent of ND4J, it is the oracle the
 * gradient tests difference numerically.
 */
final class ReferenceSae {

    final SaeConfig config;
    final int dIn;
    final int dSae;
    final int dOut;
    final boolean transcoder;
    final boolean skip;
    final int shared;
    double sparsityCoefficient;
    boolean[] dead;

    ReferenceSae(SaeConfig config, double sparsityCoefficient, boolean[] dead) {
        this.config = config;
        this.dIn = config.dIn();
        this.dSae = config.dSae();
        this.dOut = config.targetWidth();
        this.transcoder = config.isTranscoder();
        this.skip = config.skipConnection();
        this.shared = dIn * dSae + dSae + dSae * dOut + dOut + (skip ? dIn * dOut : 0);
        this.sparsityCoefficient = sparsityCoefficient;
        this.dead = dead;
    }

    double wEnc(double[] p, int j, int i) {
        return p[j * dSae + i];
    }

    double bEnc(double[] p, int i) {
        return p[dIn * dSae + i];
    }

    double wDec(double[] p, int i, int j) {
        return p[dIn * dSae + dSae + i * dOut + j];
    }

    double bDec(double[] p, int j) {
        return p[dIn * dSae + dSae + dSae * dOut + j];
    }

    double wSkip(double[] p, int j, int k) {
        return p[dIn * dSae + dSae + dSae * dOut + dOut + j * dOut + k];
    }

    double theta(double[] p, int i) {
        return Math.exp(p[shared + i]);
    }

    int logThetaIndex(int i) {
        return shared + i;
    }

    /** Gated: the per-latent magnitude scale exp(r_mag_i) and bias b_mag_i (extra parameters after the shared ones). */
    double rMag(double[] p, int i) {
        return p[shared + i];
    }

    double bMag(double[] p, int i) {
        return p[shared + dSae + i];
    }

    double[][] preActivations(double[] p, double[][] x) {
        double[][] z = new double[x.length][dSae];
        for (int b = 0; b < x.length; b++) {
            for (int i = 0; i < dSae; i++) {
                double s = bEnc(p, i);
                for (int j = 0; j < dIn; j++) {
                    s += (x[b][j] - (transcoder ? 0 : bDec(p, j))) * wEnc(p, j, i);
                }
                z[b][i] = s;
            }
        }
        return z;
    }

    double[][] activations(double[] p, double[][] z) {
        int batch = z.length;
        double[][] f = new double[batch][dSae];
        switch (config.architecture()) {
            case RELU -> {
                for (int b = 0; b < batch; b++) {
                    for (int i = 0; i < dSae; i++) {
                        f[b][i] = Math.max(z[b][i], 0);
                    }
                }
            }
            case JUMPRELU -> {
                for (int b = 0; b < batch; b++) {
                    for (int i = 0; i < dSae; i++) {
                        f[b][i] = z[b][i] > theta(p, i) ? z[b][i] : 0;
                    }
                }
            }
            case TOPK -> {
                for (int b = 0; b < batch; b++) {
                    final double[] row = z[b];
                    Integer[] order = IntStream.range(0, dSae).boxed().toArray(Integer[]::new);
                    Arrays.sort(order, Comparator.comparingDouble((Integer i) -> -row[i]));
                    for (int r = 0; r < config.k(); r++) {
                        f[b][order[r]] = Math.max(row[order[r]], 0);
                    }
                }
            }
            case GATED -> {
                for (int b = 0; b < batch; b++) {
                    for (int i = 0; i < dSae; i++) {
                        double u = z[b][i] - bEnc(p, i);
                        double mag = u * Math.exp(rMag(p, i)) + bMag(p, i);
                        f[b][i] = z[b][i] > 0 ? Math.max(mag, 0) : 0;
                    }
                }
            }
            case BATCHTOPK, MATRYOSHKA -> {
                double[] positives = Arrays.stream(z).flatMapToDouble(Arrays::stream).filter(v -> v > 0).sorted().toArray();
                int keep = Math.min(config.k() * batch, positives.length);
                double t = keep == 0 ? Double.POSITIVE_INFINITY : positives[positives.length - keep];
                for (int b = 0; b < batch; b++) {
                    for (int i = 0; i < dSae; i++) {
                        f[b][i] = z[b][i] >= t && z[b][i] > 0 ? z[b][i] : 0;
                    }
                }
            }
        }
        return f;
    }

    double[][] reconstruction(double[] p, double[][] f, double[][] x) {
        return reconstruction(p, f, x, dSae);
    }

    /** The reconstruction from the first {@code width} latents only (a Matryoshka prefix). */
    double[][] reconstruction(double[] p, double[][] f, double[][] x, int width) {
        double[][] xHat = new double[f.length][dOut];
        for (int b = 0; b < f.length; b++) {
            for (int j = 0; j < dOut; j++) {
                double s = bDec(p, j);
                for (int i = 0; i < width; i++) {
                    s += f[b][i] * wDec(p, i, j);
                }
                if (skip) {
                    for (int k = 0; k < dIn; k++) {
                        s += x[b][k] * wSkip(p, k, j);
                    }
                }
                xHat[b][j] = s;
            }
        }
        return xHat;
    }

    double decoderNorm(double[] p, int i) {
        double s = 0;
        for (int j = 0; j < dOut; j++) {
            s += wDec(p, i, j) * wDec(p, i, j);
        }
        return Math.sqrt(s);
    }

    /** x - x_hat at parameters p: AuxK's residual, which the loss treats as a constant. */
    double[][] residual(double[] p, double[][] x, double[][] y) {
        double[][] xHat = reconstruction(p, activations(p, preActivations(p, x)), x);
        double[][] e = new double[x.length][dOut];
        for (int b = 0; b < x.length; b++) {
            for (int j = 0; j < dOut; j++) {
                e[b][j] = y[b][j] - xHat[b][j];
            }
        }
        return e;
    }

    /** The total loss; AuxK uses {@code frozenResidual} as its target. */
    double loss(double[] p, double[][] x, double[][] y, double[][] frozenResidual) {
        int batch = x.length;
        double[][] z = preActivations(p, x);
        double[][] f = activations(p, z);
        double[][] xHat = reconstruction(p, f, x);
        double mse = 0;
        for (int b = 0; b < batch; b++) {
            for (int j = 0; j < dOut; j++) {
                mse += (xHat[b][j] - y[b][j]) * (xHat[b][j] - y[b][j]);
            }
        }
        double loss = mse / batch;
        double lambda = sparsityCoefficient;
        if (config.architecture() == SaeConfig.Architecture.MATRYOSHKA) {
            int[] widths = config.effectiveMatryoshkaWidths();
            for (int l = 0; l < widths.length - 1; l++) {
                double[][] inner = reconstruction(p, f, x, widths[l]);
                for (int b = 0; b < batch; b++) {
                    for (int j = 0; j < dOut; j++) {
                        loss += (inner[b][j] - y[b][j]) * (inner[b][j] - y[b][j]) / batch;
                    }
                }
            }
        }
        if (config.architecture() == SaeConfig.Architecture.GATED) {
            // Auxiliary reconstruction from ReLU(pi_gate) (its gradient reaches the decoder, as in SAELens).
            for (int b = 0; b < batch; b++) {
                for (int j = 0; j < dOut; j++) {
                    double r = bDec(p, j) - y[b][j];
                    for (int i = 0; i < dSae; i++) {
                        r += Math.max(z[b][i], 0) * wDec(p, i, j);
                    }
                    loss += r * r / batch;
                }
            }
        }
        if (config.architecture() == SaeConfig.Architecture.JUMPRELU
                && config.jumpReluSparsity() == SaeConfig.JumpReluSparsity.QUADRATIC) {
            double gap = meanL0(p, z) / config.targetL0() - 1;
            loss += lambda * dOut * gap * gap;
        }
        for (int b = 0; b < batch; b++) {
            for (int i = 0; i < dSae; i++) {
                double n = decoderNorm(p, i);
                switch (config.architecture()) {
                    case RELU -> loss += lambda / batch * f[b][i] * n;
                    case GATED -> loss += lambda / batch * Math.max(z[b][i], 0) * n;
                    case JUMPRELU -> {
                        if (config.jumpReluSparsity() == SaeConfig.JumpReluSparsity.QUADRATIC) {
                            // counted once for the batch, above
                        } else if (config.jumpReluSparsity() == SaeConfig.JumpReluSparsity.L0) {
                            loss += lambda / batch * (z[b][i] > theta(p, i) ? 1 : 0);
                        } else {
                            loss += lambda / batch * Math.tanh(config.tanhScale() * f[b][i] * n);
                        }
                        if (dead[i]) {
                            loss += config.preActLossCoefficient() / batch * Math.max(theta(p, i) - z[b][i], 0) * n;
                        }
                    }
                    default -> {
                    }
                }
            }
        }
        if (config.usesAuxK()) {
            loss += auxK(p, z, frozenResidual);
        }
        return loss;
    }

    /** Mean over the batch of the number of latents above their threshold. */
    double meanL0(double[] p, double[][] z) {
        double count = 0;
        for (double[] row : z) {
            for (int i = 0; i < dSae; i++) {
                count += row[i] > theta(p, i) ? 1 : 0;
            }
        }
        return count / z.length;
    }

    double auxK(double[] p, double[][] z, double[][] residual) {
        int deadCount = 0;
        for (boolean d : dead) {
            deadCount += d ? 1 : 0;
        }
        if (deadCount == 0 || config.auxKCoefficient() == 0) {
            return 0;
        }
        int kAux = config.effectiveKAux();
        double scale = Math.min(1.0, deadCount / (double) kAux);
        int keep = Math.min(kAux, deadCount);
        double total = 0;
        for (int b = 0; b < z.length; b++) {
            final double[] row = z[b];
            Integer[] order = IntStream.range(0, dSae).filter(i -> dead[i]).boxed().toArray(Integer[]::new);
            Arrays.sort(order, Comparator.comparingDouble((Integer i) -> -row[i]));
            for (int j = 0; j < dOut; j++) {
                double s = 0;
                for (int r = 0; r < keep; r++) {
                    s += row[order[r]] * wDec(p, order[r], j);
                }
                total += (s - residual[b][j]) * (s - residual[b][j]);
            }
        }
        return config.auxKCoefficient() * scale * total / z.length;
    }

    /**
     * JumpReLU's straight-through gradient for log_theta, from the formulas alone: with
     * g_bi = dLoss/df_bi, dLoss/dtheta_i = sum_b g_bi (-(theta_i/eps) K_bi) + [L0] lambda/B sum_b (-(1/eps) K_bi),
     * K_bi = 1{|z_bi - theta_i| < eps/2}; dLoss/dlog_theta = theta dLoss/dtheta. Excludes the
     * pre-activation loss, whose theta derivative is an ordinary one.
     */
    double[] straightThroughLogThetaGradient(double[] p, double[][] x, double[][] y) {
        int batch = x.length;
        double eps = config.bandwidth();
        double[][] z = preActivations(p, x);
        double[][] f = activations(p, z);
        double[][] xHat = reconstruction(p, f, x);
        double[] out = new double[dSae];
        // The L0 count's coefficient: lambda, or for the quadratic penalty d/dL0 of lambda d (L0/T - 1)^2.
        double l0Coefficient = config.jumpReluSparsity() == SaeConfig.JumpReluSparsity.QUADRATIC
                ? 2 * sparsityCoefficient * dOut * (meanL0(p, z) / config.targetL0() - 1) / config.targetL0()
                : sparsityCoefficient;
        for (int i = 0; i < dSae; i++) {
            double theta = theta(p, i);
            double n = decoderNorm(p, i);
            double g = 0;
            for (int b = 0; b < batch; b++) {
                double k = Math.abs(z[b][i] - theta) < eps / 2 ? 1 : 0;
                double dLdf = 0;
                for (int j = 0; j < dOut; j++) {
                    dLdf += 2.0 / batch * (xHat[b][j] - y[b][j]) * wDec(p, i, j);
                }
                if (config.jumpReluSparsity() == SaeConfig.JumpReluSparsity.TANH) {
                    double t = Math.tanh(config.tanhScale() * f[b][i] * n);
                    dLdf += sparsityCoefficient / batch * config.tanhScale() * n * (1 - t * t);
                } else {
                    g += l0Coefficient / batch * (-k / eps);
                }
                g += dLdf * (-(theta / eps) * k);
            }
            out[i] = theta * g;
        }
        return out;
    }
}
