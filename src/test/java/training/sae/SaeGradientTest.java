package training.sae;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Analytic gradients of every architecture and loss term against central finite differences of an
 * independent plain-Java loss ({@link ReferenceSae}), in DOUBLE on tiny shapes. JumpReLU's threshold
 * gradient is a straight-through estimate that finite differences cannot see, so it is checked
 * against the pseudo-derivative formula computed loop by loop.
 */
class SaeGradientTest {

    private static final int D_IN = 5;
    private static final int D_SAE = 9;
    private static final int BATCH = 7;
    private static final double H = 1e-6;

    private static SaeConfig.Builder base(SaeConfig.Architecture architecture) {
        return SaeConfig.builder(architecture, D_IN, D_SAE).batchSize(BATCH).totalTokens(BATCH * 10L);
    }

    /** Random parameters (not the training init, so every term is exercised) and random inputs. */
    private static double[][] randomise(SparseAutoencoder sae, long seed) {
        return randomise(sae, seed, D_IN);
    }

    private static double[][] randomise(SparseAutoencoder sae, long seed, int width) {
        Random random = new Random(seed);
        INDArray p = sae.parameters();
        for (int i = 0; i < p.length(); i++) {
            p.putScalar(0, i, 0.6 * random.nextGaussian());
        }
        if (sae instanceof JumpReluSae jump) {
            for (int i = 0; i < D_SAE; i++) {
                jump.logThreshold().putScalar(i, Math.log(0.15 + 0.3 * random.nextDouble()));
            }
        }
        double[][] x = new double[BATCH][width];
        for (int b = 0; b < BATCH; b++) {
            for (int j = 0; j < width; j++) {
                x[b][j] = random.nextGaussian();
            }
        }
        return x;
    }

    private static boolean[] deadPattern() {
        boolean[] dead = new boolean[D_SAE];
        for (int i = 0; i < D_SAE; i += 2) {
            dead[i] = true;
        }
        return dead;
    }

    private static double[] flat(SparseAutoencoder sae) {
        return sae.parameters().dup().reshape(sae.parameters().length()).toDoubleVector();
    }

    /**
     * Checks the model's loss against the reference and every gradient entry against central
     * differences of the reference (AuxK residual frozen at the base point, as the method detaches it).
     * JumpReLU's log-threshold entries are checked as straight-through + finite difference (the
     * latter sees only the pre-activation loss). Returns the analytic gradient.
     */
    static double[] check(SaeConfig config, double lambda, boolean[] dead, long seed) {
        SparseAutoencoder sae = SparseAutoencoder.create(config, DataType.DOUBLE);
        double[][] xs = randomise(sae, seed);
        // A transcoder's target: an independent random batch of width d_out.
        double[][] ys = config.isTranscoder() ? randomise(SparseAutoencoder.create(config, DataType.DOUBLE), seed + 1000, config.dOut()) : xs;
        sae.setSparsityCoefficient(lambda);
        sae.setDeadFeatures(dead);
        INDArray x = Nd4j.createFromArray(xs);
        INDArray y = config.isTranscoder() ? Nd4j.createFromArray(ys) : x;
        ReferenceSae reference = new ReferenceSae(config, lambda, dead);
        double[] p = flat(sae);
        double[][] residual = reference.residual(p, xs, ys);
        double expectedLoss = reference.loss(p, xs, ys, residual);

        assertEquals(expectedLoss, sae.loss(x, y).total(), 1e-10 * Math.max(1, Math.abs(expectedLoss)), "forward loss");
        SparseAutoencoder.LossParts parts = sae.forwardBackward(x, y);
        assertEquals(expectedLoss, parts.total(), 1e-10 * Math.max(1, Math.abs(expectedLoss)), "loss of the training pass");
        double[] analytic = sae.gradients().dup().reshape(p.length).toDoubleVector();

        double[] straightThrough = sae instanceof JumpReluSae ? reference.straightThroughLogThetaGradient(p, xs, ys) : null;
        int firstLogTheta = reference.shared;
        for (int i = 0; i < p.length; i++) {
            double[] plus = p.clone();
            double[] minus = p.clone();
            plus[i] += H;
            minus[i] -= H;
            double numeric = (reference.loss(plus, xs, ys, residual) - reference.loss(minus, xs, ys, residual)) / (2 * H);
            double expected = straightThrough != null && i >= firstLogTheta ? numeric + straightThrough[i - firstLogTheta] : numeric;
            assertEquals(expected, analytic[i], 1e-6 * Math.max(1, Math.abs(expected)),
                    config.architecture() + " gradient entry " + i + " (" + region(config, i) + ")");
        }
        return analytic;
    }

    private static String region(int i) {
        return region(base(SaeConfig.Architecture.RELU).build(), i);
    }

    private static String region(SaeConfig c, int i) {
        int dIn = c.dIn();
        int dSae = c.dSae();
        int dOut = c.targetWidth();
        int decEnd = dIn * dSae + dSae + dSae * dOut;
        int[] ends = {dIn * dSae, dIn * dSae + dSae, decEnd, decEnd + dOut, decEnd + dOut + (c.skipConnection() ? dIn * dOut : 0)};
        String[] names = {"W_enc", "b_enc", "W_dec", "b_dec", "W_skip"};
        for (int r = 0; r < ends.length; r++) {
            if (i < ends[r]) {
                return names[r];
            }
        }
        return "log_threshold";
    }

    @Test
    void reluMseOnly() {
        check(base(SaeConfig.Architecture.RELU).build(), 0.0, new boolean[D_SAE], 1);
    }

    @Test
    void reluWithDecoderNormWeightedL1() {
        check(base(SaeConfig.Architecture.RELU).build(), 0.7, new boolean[D_SAE], 2);
    }

    @Test
    void jumpReluMseOnly() {
        check(base(SaeConfig.Architecture.JUMPRELU).bandwidth(0.4).preActLossCoefficient(0).build(), 0.0, new boolean[D_SAE], 3);
    }

    @Test
    void jumpReluL0() {
        check(base(SaeConfig.Architecture.JUMPRELU).bandwidth(0.4).preActLossCoefficient(0).build(), 0.8, new boolean[D_SAE], 4);
    }

    @Test
    void jumpReluTanh() {
        check(base(SaeConfig.Architecture.JUMPRELU).bandwidth(0.4).preActLossCoefficient(0)
                .jumpReluSparsity(SaeConfig.JumpReluSparsity.TANH).build(), 0.8, new boolean[D_SAE], 5);
    }

    @Test
    void jumpReluPreActivationLossOnDeadFeatures() {
        check(base(SaeConfig.Architecture.JUMPRELU).bandwidth(0.4).preActLossCoefficient(0.3).build(), 0.5, deadPattern(), 6);
        check(base(SaeConfig.Architecture.JUMPRELU).bandwidth(0.4).preActLossCoefficient(0.3)
                .jumpReluSparsity(SaeConfig.JumpReluSparsity.TANH).build(), 0.5, deadPattern(), 7);
    }

    @Test
    void jumpReluL0GivesNoGradientToPreActivationsThroughTheStep() {
        SaeConfig config = base(SaeConfig.Architecture.JUMPRELU).bandwidth(0.4).preActLossCoefficient(0).build();
        double[] without = gradients(config, 0.0, 8);
        double[] with = gradients(config, 5.0, 8);
        int encoderEnd = D_IN * D_SAE + D_SAE;
        int decoderBiasStart = 2 * D_IN * D_SAE + D_SAE;
        boolean thresholdMoved = false;
        for (int i = 0; i < with.length; i++) {
            if (i < encoderEnd || (i >= decoderBiasStart && i < decoderBiasStart + D_IN)) {
                assertEquals(without[i], with[i], 1e-12, "L0 must not reach z (entry " + i + ", " + region(i) + ")");
            } else if (i >= decoderBiasStart + D_IN) {
                thresholdMoved |= Math.abs(with[i] - without[i]) > 1e-6;
            }
        }
        assertTrue(thresholdMoved, "the L0 term must reach the thresholds through the pseudo-derivative");
    }

    private static double[] gradients(SaeConfig config, double lambda, long seed) {
        SparseAutoencoder sae = SparseAutoencoder.create(config, DataType.DOUBLE);
        double[][] xs = randomise(sae, seed);
        sae.setSparsityCoefficient(lambda);
        sae.forwardBackward(Nd4j.createFromArray(xs));
        return sae.gradients().dup().reshape(sae.parameters().length()).toDoubleVector();
    }

    // ---- transcoders: target of another width, no b_dec in the encoder, optional skip ----

    private static SaeConfig.Builder transcoder(SaeConfig.Architecture architecture, boolean skip) {
        return base(architecture).dOut(D_OUT).skipConnection(skip);
    }

    private static final int D_OUT = 4;

    @Test
    void reluTranscoderWithAndWithoutSkip() {
        check(transcoder(SaeConfig.Architecture.RELU, false).build(), 0.7, new boolean[D_SAE], 21);
        check(transcoder(SaeConfig.Architecture.RELU, true).build(), 0.7, new boolean[D_SAE], 22);
    }

    @Test
    void jumpReluTranscoderTanhWithPreActivationLossAndSkip() {
        check(transcoder(SaeConfig.Architecture.JUMPRELU, true).bandwidth(0.4).preActLossCoefficient(0.3)
                .jumpReluSparsity(SaeConfig.JumpReluSparsity.TANH).build(), 0.5, deadPattern(), 23);
        check(transcoder(SaeConfig.Architecture.JUMPRELU, false).bandwidth(0.4).preActLossCoefficient(0.3).build(),
                0.5, deadPattern(), 24);
    }

    @Test
    void topKTranscodersWithAuxK() {
        check(transcoder(SaeConfig.Architecture.TOPK, true).k(3).auxKCoefficient(0.5).kAux(2).build(), 0.0, deadPattern(), 25);
        check(transcoder(SaeConfig.Architecture.BATCHTOPK, false).k(2).auxKCoefficient(0.5).kAux(3).build(), 0.0, deadPattern(), 26);
    }

    @Test
    void transcoderWithTheSameWidthStillSkipsTheDecoderBiasInTheEncoder() {
        // d_out = d_in: only the transcoder flag distinguishes it from an SAE.
        check(base(SaeConfig.Architecture.RELU).dOut(D_IN).skipConnection(true).build(), 0.3, new boolean[D_SAE], 27);
    }

    @Test
    void topKMseOnly() {
        check(base(SaeConfig.Architecture.TOPK).k(3).build(), 0.0, new boolean[D_SAE], 9);
    }

    @Test
    void topKWithAuxK() {
        check(base(SaeConfig.Architecture.TOPK).k(3).auxKCoefficient(0.5).kAux(2).build(), 0.0, deadPattern(), 10);
        // More k_aux than dead latents: all dead latents used, scale capped at 1.
        check(base(SaeConfig.Architecture.TOPK).k(2).auxKCoefficient(0.5).kAux(7).build(), 0.0, deadPattern(), 11);
    }

    @Test
    void batchTopKMseOnly() {
        check(base(SaeConfig.Architecture.BATCHTOPK).k(2).build(), 0.0, new boolean[D_SAE], 12);
    }

    @Test
    void jumpReluQuadraticPenaltyAboveAndBelowTheTarget() {
        // Random thresholds fire about half the latents: a target below that L0 and one above it.
        for (double target : new double[] {1.5, 8.0}) {
            check(base(SaeConfig.Architecture.JUMPRELU).bandwidth(0.4).preActLossCoefficient(0)
                    .jumpReluSparsity(SaeConfig.JumpReluSparsity.QUADRATIC).targetL0(target).build(), 0.8, new boolean[D_SAE], 31);
        }
        check(base(SaeConfig.Architecture.JUMPRELU).bandwidth(0.4).preActLossCoefficient(0.3)
                .jumpReluSparsity(SaeConfig.JumpReluSparsity.QUADRATIC).targetL0(3).build(), 0.5, deadPattern(), 32);
    }

    @Test
    void matryoshkaNestedPrefixLosses() {
        check(base(SaeConfig.Architecture.MATRYOSHKA).k(2).matryoshkaWidths(java.util.List.of(2, 5)).build(), 0.0,
                new boolean[D_SAE], 33);
        check(base(SaeConfig.Architecture.MATRYOSHKA).k(3).auxKCoefficient(0.5).kAux(3)
                .matryoshkaWidths(java.util.List.of(3, 7, D_SAE)).build(), 0.0, deadPattern(), 34);
        check(transcoder(SaeConfig.Architecture.MATRYOSHKA, true).k(2).matryoshkaWidths(java.util.List.of(4)).build(), 0.0,
                new boolean[D_SAE], 35);
    }

    @Test
    void gatedWithSparsityAndAuxiliaryLoss() {
        check(base(SaeConfig.Architecture.GATED).build(), 0.0, new boolean[D_SAE], 36);
        check(base(SaeConfig.Architecture.GATED).build(), 0.7, new boolean[D_SAE], 37);
    }

    @Test
    void batchTopKWithAuxK() {
        check(base(SaeConfig.Architecture.BATCHTOPK).k(2).auxKCoefficient(0.5).kAux(3).build(), 0.0, deadPattern(), 13);
    }
}
