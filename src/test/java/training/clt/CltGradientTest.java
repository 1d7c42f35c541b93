package training.clt;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CLT's analytic gradients against central finite differences of an independent loop-by-loop
 * loss written from REFERENCE sections 2-3 (DOUBLE, L=3, d=4, F=5), for every term: MSE over all
 * target layers, tanh sparsity on concatenated decoder norms, pre-activation loss on dead
 * features. The log-threshold gradient is a straight-through estimate, checked against the
 * pseudo-derivative definitions computed here (plus the finite difference, which sees only the
 * pre-activation loss).
 */
class CltGradientTest {

    private static final int L = 3;
    private static final int D = 4;
    private static final int F = 5;
    private static final int B = 6;
    private static final double H = 1e-6;

    /** The plain-Java oracle on a flat parameter vector with the model's layout. */
    private static final class Reference {
        final CltConfig c;
        final double lambda;
        final boolean[] dead;

        Reference(CltConfig c, double lambda, boolean[] dead) {
            this.c = c;
            this.lambda = lambda;
            this.dead = dead;
        }

        int encBase(int l) { return l * (D * F + 2 * F); }
        double wEnc(double[] p, int l, int j, int i) { return p[encBase(l) + j * F + i]; }
        double bEnc(double[] p, int l, int i) { return p[encBase(l) + D * F + i]; }
        int logThetaIndex(int l, int i) { return encBase(l) + D * F + F + i; }
        double theta(double[] p, int l, int i) { return Math.exp(p[logThetaIndex(l, i)]); }
        double bDec(double[] p, int t, int j) { return p[L * (D * F + 2 * F) + t * D + j]; }

        int decBase(int l, int t) {
            int offset = L * (D * F + 2 * F) + L * D;
            for (int s = 0; s < L; s++) {
                for (int u = s; u < L; u++) {
                    if (s == l && u == t) {
                        return offset;
                    }
                    offset += F * D;
                }
            }
            throw new AssertionError();
        }

        double wDec(double[] p, int l, int t, int i, int j) { return p[decBase(l, t) + i * D + j]; }

        double z(double[] p, double[][][] x, int b, int l, int i) {
            double s = bEnc(p, l, i);
            for (int j = 0; j < D; j++) {
                s += x[l][b][j] * wEnc(p, l, j, i);
            }
            return s;
        }

        double a(double[] p, double[][][] x, int b, int l, int i) {
            double z = z(p, x, b, l, i);
            return z > theta(p, l, i) ? z : 0;
        }

        double norm(double[] p, int l, int i) {
            double s = 0;
            for (int t = l; t < L; t++) {
                for (int j = 0; j < D; j++) {
                    s += wDec(p, l, t, i, j) * wDec(p, l, t, i, j);
                }
            }
            return Math.sqrt(s);
        }

        double yHat(double[] p, double[][][] x, int b, int t, int j) {
            double s = bDec(p, t, j);
            for (int l = 0; l <= t; l++) {
                for (int i = 0; i < F; i++) {
                    s += a(p, x, b, l, i) * wDec(p, l, t, i, j);
                }
            }
            return s;
        }

        double loss(double[] p, double[][][] x, double[][][] y) {
            double loss = 0;
            for (int b = 0; b < B; b++) {
                for (int t = 0; t < L; t++) {
                    for (int j = 0; j < D; j++) {
                        double e = yHat(p, x, b, t, j) - y[t][b][j];
                        loss += e * e / B;
                    }
                }
                for (int l = 0; l < L; l++) {
                    for (int i = 0; i < F; i++) {
                        double n = norm(p, l, i);
                        loss += lambda / B * Math.tanh(c.tanhScale() * a(p, x, b, l, i) * n);
                        if (dead[l * F + i]) {
                            loss += c.preActLossCoefficient() / B * Math.max(theta(p, l, i) - z(p, x, b, l, i), 0) * n;
                        }
                    }
                }
            }
            return loss;
        }

        /**
         * d/dlog_theta through the activation only: theta * sum_b g_bli * (-(theta/eps) K((z - theta)/eps)),
         * K(u) = 1{|u| < 1/2}, g = dLoss/da (MSE through every target layer + tanh term).
         */
        double straightThrough(double[] p, double[][][] x, double[][][] y, int l, int i) {
            double eps = c.bandwidth();
            double theta = theta(p, l, i);
            double n = norm(p, l, i);
            double g = 0;
            for (int b = 0; b < B; b++) {
                double z = z(p, x, b, l, i);
                double kernel = Math.abs((z - theta) / eps) < 0.5 ? 1 : 0;
                double dLda = 0;
                for (int t = l; t < L; t++) {
                    for (int j = 0; j < D; j++) {
                        dLda += 2.0 / B * (yHat(p, x, b, t, j) - y[t][b][j]) * wDec(p, l, t, i, j);
                    }
                }
                double tanh = Math.tanh(c.tanhScale() * a(p, x, b, l, i) * n);
                dLda += lambda / B * c.tanhScale() * n * (1 - tanh * tanh);
                g += dLda * (-(theta / eps) * kernel);
            }
            return theta * g;
        }
    }

    private static double[][][] random(Random r, double scale, double shift) {
        double[][][] v = new double[L][B][D];
        for (double[][] layer : v) {
            for (double[] row : layer) {
                for (int j = 0; j < D; j++) {
                    row[j] = scale * r.nextGaussian() + shift;
                }
            }
        }
        return v;
    }

    private static INDArray[] arrays(double[][][] v) {
        INDArray[] out = new INDArray[L];
        for (int l = 0; l < L; l++) {
            out[l] = Nd4j.createFromArray(v[l]);
        }
        return out;
    }

    private static void check(double lambda, double preAct, boolean[] dead, long seed) {
        CltConfig config = CltConfig.builder(L, D, F).bandwidth(0.4).preActLossCoefficient(preAct).batchSize(B)
                .totalTokens(B * 4L).build();
        CrossLayerTranscoder clt = new CrossLayerTranscoder(config, DataType.DOUBLE);
        Random r = new Random(seed);
        INDArray p = clt.parameters();
        for (int i = 0; i < p.length(); i++) {
            p.putScalar(0, i, 0.6 * r.nextGaussian());
        }
        for (int l = 0; l < L; l++) {
            for (int i = 0; i < F; i++) {
                clt.logThreshold(l).putScalar(i, Math.log(0.15 + 0.3 * r.nextDouble()));
            }
        }
        double[][][] x = random(r, 1.0, 0.1);
        double[][][] y = random(r, 1.0, -0.2);
        clt.setSparsityCoefficient(lambda);
        clt.setDeadFeatures(dead);
        Reference ref = new Reference(config, lambda, dead);
        double[] flat = p.dup().reshape(p.length()).toDoubleVector();
        double expected = ref.loss(flat, x, y);
        assertEquals(expected, clt.loss(arrays(x), arrays(y)).total(), 1e-10 * Math.max(1, expected), "forward loss");
        CrossLayerTranscoder.LossParts parts = clt.forwardBackward(arrays(x), arrays(y));
        assertEquals(expected, parts.total(), 1e-10 * Math.max(1, expected), "loss of the training pass");
        double[] analytic = clt.gradients().dup().reshape(flat.length).toDoubleVector();

        int thresholdsSeen = 0;
        int kernelHits = 0;
        for (int k = 0; k < flat.length; k++) {
            double[] plus = flat.clone();
            double[] minus = flat.clone();
            plus[k] += H;
            minus[k] -= H;
            double numeric = (ref.loss(plus, x, y) - ref.loss(minus, x, y)) / (2 * H);
            double want = numeric;
            for (int l = 0; l < L; l++) {
                for (int i = 0; i < F; i++) {
                    if (ref.logThetaIndex(l, i) == k) {
                        double st = ref.straightThrough(flat, x, y, l, i);
                        want += st;
                        thresholdsSeen++;
                        kernelHits += st != 0 ? 1 : 0;
                    }
                }
            }
            assertEquals(want, analytic[k], 1e-6 * Math.max(1, Math.abs(want)), "gradient entry " + k);
        }
        assertEquals(L * F, thresholdsSeen);
        assertTrue(kernelHits > 0, "no threshold was within the kernel: the straight-through path went untested");
    }

    @Test
    void mseOnly() {
        check(0, 0, new boolean[L * F], 1);
    }

    @Test
    void tanhSparsityOnConcatenatedDecoderNorms() {
        check(0.7, 0, new boolean[L * F], 2);
    }

    @Test
    void preActivationLossOnDeadFeatures() {
        boolean[] dead = new boolean[L * F];
        for (int k = 0; k < dead.length; k += 2) {
            dead[k] = true;
        }
        check(0.5, 0.3, dead, 3);
    }

    @Test
    void memoryCheckFailsBeforeAllocatingWithTheSizes() {
        CltConfig big = CltConfig.builder(26, 2304, 16384).batchSize(4096).build();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CrossLayerTranscoder.checkFits(big, 16L << 30));
        assertTrue(e.getMessage().startsWith("CLT needs ") && e.getMessage().contains("but the budget is 16.0 GiB")
                && e.getMessage().contains("--features-per-layer"), e.getMessage());
        // Hand count for L=2, d=3, F=4: encoders 2*(12+8) + b_dec 6 + decoders 4*3*3 = 82.
        assertEquals(82, CrossLayerTranscoder.parameterCount(CltConfig.builder(2, 3, 4).batchSize(1).totalTokens(1).build()));
        CltConfig small = CltConfig.builder(2, 3, 4).batchSize(10).totalTokens(10).build();
        CrossLayerTranscoder.MemoryEstimate m = CrossLayerTranscoder.checkFits(small, 1L << 20);
        // params 82 floats x 4 copies; buffers 2*2*10*4 + 3*10*4 + 4*2*10*3 + 4*3 = 160 + 120 + 240 + 12 = 532 floats.
        assertEquals(4 * 82 * 4 + 532 * 4, m.totalBytes());
    }
}
