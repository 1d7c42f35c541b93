package training.sae;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.trainer.SaeStep;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The sparse training pass (decoder, its gradient and dLoss/dz over the active entries only)
 * against the dense one on the same parameters and batch, in FLOAT: loss parts and every gradient
 * entry agree within fp32 summation noise, and so do the parameters after one optimizer step;
 * and the per-batch decision takes the dense path at a large L0.
 */
class SparseDecodingTest {

    private static final int D_IN = 24;
    private static final int D_SAE = 256;
    private static final int BATCH = 64;

    private static SaeConfig.Builder base(SaeConfig.Architecture architecture) {
        return SaeConfig.builder(architecture, D_IN, D_SAE).batchSize(BATCH).totalTokens(BATCH * 10L);
    }

    /** Every third latent dead, so AuxK and the pre-activation loss take part. */
    private static boolean[] dead() {
        boolean[] dead = new boolean[D_SAE];
        for (int i = 0; i < D_SAE; i += 3) {
            dead[i] = true;
        }
        return dead;
    }

    private static INDArray randomParameters(SparseAutoencoder sae, Random random) {
        INDArray p = sae.parameters();
        float[] v = new float[(int) p.length()];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (0.3 * random.nextGaussian());
        }
        p.assign(Nd4j.createFromArray(v).reshape(p.shape()));
        return p;
    }

    private static INDArray batch(Random random, int width) {
        float[] v = new float[BATCH * width];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) random.nextGaussian();
        }
        return Nd4j.createFromArray(v).reshape(BATCH, width);
    }

    /**
     * Dense and sparse steps from the same parameters; returns the sparse SAE's mean L0. JumpReLU
     * thresholds are set to {@code threshold} (latents fire on a few percent of tokens).
     */
    private static double compare(SaeConfig config, boolean[] dead, double threshold) {
        Random random = new Random(7);
        SaeStep dense = new SaeStep(config);
        SaeStep sparse = new SaeStep(config);
        randomParameters(dense.sae(), random);
        if (dense.sae() instanceof JumpReluSae jump) {
            jump.logThreshold().assign(Math.log(threshold));
        }
        sparse.sae().parameters().assign(dense.sae().parameters());
        INDArray x = batch(random, D_IN);
        INDArray y = config.isTranscoder() ? batch(random, config.targetWidth()) : x;
        dense.sae().setDecoding(SparseAutoencoder.Decoding.DENSE);
        sparse.sae().setDecoding(SparseAutoencoder.Decoding.SPARSE);
        SparseAutoencoder.LossParts[] parts = new SparseAutoencoder.LossParts[2];
        SaeStep[] steps = {dense, sparse};
        for (int s = 0; s < 2; s++) {
            SparseAutoencoder sae = steps[s].sae();
            sae.setSparsityCoefficient(0.05);
            sae.setDeadFeatures(dead);
            parts[s] = config.isTranscoder() ? sae.forwardBackward(x, y) : sae.forwardBackward(x);
        }
        assertFalse(dense.sae().lastPassSparse());
        assertTrue(sparse.sae().lastPassSparse());
        String name = config.architecture() + (config.isTranscoder() ? " transcoder" : "");
        assertClose(parts[0].total(), parts[1].total(), name + " loss");
        assertClose(parts[0].mse(), parts[1].mse(), name + " mse");
        assertClose(parts[0].sparsity(), parts[1].sparsity(), name + " sparsity");
        assertClose(parts[0].auxiliary(), parts[1].auxiliary(), name + " auxiliary");
        assertEquals(parts[0].l0(), parts[1].l0(), 0.0, name + " L0");
        assertEquals(dense.sae().lastFireCounts(), sparse.sae().lastFireCounts(), name + " firing counts");
        assertArrayClose(dense.sae().lastReconstruction(), sparse.sae().lastReconstruction(), 1e-5, name + " reconstruction");

        float[] gd = dense.sae().gradients().dup().reshape(dense.sae().gradients().length()).toFloatVector();
        float[] gs = sparse.sae().gradients().dup().reshape(gd.length).toFloatVector();
        int[] ends = regionEnds(config, gd.length);
        int start = 0;
        for (int end : ends) {
            double scale = 0;
            for (int i = start; i < end; i++) {
                scale = Math.max(scale, Math.abs(gd[i]));
            }
            for (int i = start; i < end; i++) {
                assertEquals(gd[i], gs[i], 1e-5 * scale + 1e-9, name + " gradient entry " + i + " (region ending " + end + ")");
            }
            start = end;
        }

        double[] fire = dense.sae().lastFireCounts().toDoubleVector();
        dense.update(0, fire, BATCH);
        sparse.update(0, sparse.sae().lastFireCounts().toDoubleVector(), BATCH);
        float[] pd = dense.sae().parameters().dup().reshape(gd.length).toFloatVector();
        float[] ps = sparse.sae().parameters().dup().reshape(gd.length).toFloatVector();
        double lr = config.learningRate();
        double noiseFloor = 1e-5 * maxAbs(gd);
        for (int i = 0; i < pd.length; i++) {
            // Adam's first step moves each parameter by about lr * sign(g): a gradient that is 0 up to
            // summation noise may take either sign, anything larger must give the same parameter.
            boolean noise = Math.abs(gd[i]) <= noiseFloor;
            assertEquals(pd[i], ps[i], noise ? 2.01 * lr * Math.max(1, config.effectiveThresholdLearningRate() / lr) : 1e-5,
                    name + " parameter " + i + " after the step");
        }
        return parts[1].l0();
    }

    private static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }

    /** Ends of W_enc, b_enc, W_dec, b_dec, W_skip (if any) and the architecture's own parameters. */
    private static int[] regionEnds(SaeConfig c, int total) {
        int encEnd = c.dIn() * c.dSae();
        int decEnd = encEnd + c.dSae() + c.dSae() * c.targetWidth();
        int biasEnd = decEnd + c.targetWidth();
        int skipEnd = biasEnd + (c.skipConnection() ? c.dIn() * c.targetWidth() : 0);
        return java.util.stream.IntStream.of(encEnd, encEnd + c.dSae(), decEnd, biasEnd, skipEnd, total).distinct()
                .filter(e -> e > 0).toArray();
    }

    private static void assertClose(double expected, double actual, String what) {
        assertEquals(expected, actual, 1e-5 * Math.max(1e-3, Math.abs(expected)), what);
    }

    private static void assertArrayClose(INDArray expected, INDArray actual, double tolerance, String what) {
        float[] e = expected.dup().reshape(expected.length()).toFloatVector();
        float[] a = actual.dup().reshape(actual.length()).toFloatVector();
        double scale = maxAbs(e);
        for (int i = 0; i < e.length; i++) {
            assertEquals(e[i], a[i], tolerance * scale, what + " entry " + i);
        }
    }

    @Test
    void topKWithAuxK() {
        double l0 = compare(base(SaeConfig.Architecture.TOPK).k(8).auxKCoefficient(0.5).build(), dead(), 0);
        assertTrue(l0 > 0 && l0 <= 8, "L0 " + l0);
    }

    @Test
    void topKTranscoderWithSkip() {
        compare(base(SaeConfig.Architecture.TOPK).k(8).dOut(16).skipConnection(true).build(), dead(), 0);
    }

    @Test
    void batchTopKWithAuxK() {
        double l0 = compare(base(SaeConfig.Architecture.BATCHTOPK).k(6).auxKCoefficient(0.5).build(), dead(), 0);
        assertEquals(6, l0, 1e-9);
    }

    @Test
    void jumpReluL0WithPreActivationLoss() {
        double l0 = compare(base(SaeConfig.Architecture.JUMPRELU).bandwidth(1.0).preActLossCoefficient(0.1).build(), dead(), 3.5);
        assertTrue(l0 > 0.5 && l0 < 16, "L0 " + l0);
    }

    @Test
    void jumpReluTanh() {
        compare(base(SaeConfig.Architecture.JUMPRELU).jumpReluSparsity(SaeConfig.JumpReluSparsity.TANH).bandwidth(1.0)
                .preActLossCoefficient(0.1).build(), dead(), 3.5);
    }

    @Test
    void jumpReluQuadratic() {
        compare(base(SaeConfig.Architecture.JUMPRELU).jumpReluSparsity(SaeConfig.JumpReluSparsity.QUADRATIC).targetL0(4)
                .bandwidth(1.0).build(), new boolean[D_SAE], 3.5);
    }

    /**
     * TopK's row selection (which cuts each row to the entries at or above the k-th largest block
     * maximum before selecting) against the plain quickselect of {@link TopKSelection}, on integer
     * pre-activations with many ties: the same entries, ties to the lower column.
     */
    @Test
    void topKSelectionMatchesPlainSelectionWithTies() {
        Random random = new Random(9);
        SparseAutoencoder sae = SparseAutoencoder.create(base(SaeConfig.Architecture.TOPK).k(5).build(), DataType.FLOAT);
        INDArray p = sae.parameters();
        float[] v = new float[(int) p.length()];
        for (int i = 0; i < v.length; i++) {
            v[i] = random.nextInt(3) - 1;
        }
        p.assign(Nd4j.createFromArray(v).reshape(p.shape()));
        sae.bEnc().assign(0);
        sae.bDec().assign(0);
        float[] xs = new float[BATCH * D_IN];
        for (int i = 0; i < xs.length; i++) {
            xs[i] = random.nextInt(3) - 1;
        }
        INDArray x = Nd4j.createFromArray(xs).reshape(BATCH, D_IN);
        INDArray expected = TopKSelection.keepTopK(x.mmul(sae.wEnc()), 5);
        assertEquals(expected, sae.encode(x));
    }

    /** BatchTopK's batch threshold (found through block maxima) is the k * batch-th largest positive pre-activation. */
    @Test
    void batchTopKThresholdIsTheKthLargestPositive() {
        Random random = new Random(13);
        BatchTopKSae sae = (BatchTopKSae) SparseAutoencoder.create(base(SaeConfig.Architecture.BATCHTOPK).k(6).build(), DataType.FLOAT);
        randomParameters(sae, random);
        INDArray x = batch(random, D_IN);
        float[] z = x.subRowVector(sae.bDec()).mmul(sae.wEnc()).addiRowVector(sae.bEnc()).reshape(BATCH * D_SAE).toFloatVector();
        float[] positive = new float[z.length];
        int n = 0;
        for (float v : z) {
            if (v > 0) {
                positive[n++] = v;
            }
        }
        float[] sorted = java.util.Arrays.copyOf(positive, n);
        java.util.Arrays.sort(sorted);
        sae.forwardBackward(x);
        assertEquals(sorted[n - 6 * BATCH], sae.runningThreshold(), 0.0);
    }

    /** AUTO: sparse at a small L0, dense once the active entries would cost more than the dense products. */
    @Test
    void decisionFollowsTheMeasuredL0() {
        Random random = new Random(3);
        INDArray x = batch(random, D_IN);
        SparseAutoencoder small = SparseAutoencoder.create(base(SaeConfig.Architecture.TOPK).k(4).build(), DataType.FLOAT);
        randomParameters(small, random);
        small.setDecoding(SparseAutoencoder.Decoding.AUTO);
        small.forwardBackward(x);
        assertTrue(small.lastPassSparse(), "TopK k = 4 of 256");
        SparseAutoencoder large = SparseAutoencoder.create(base(SaeConfig.Architecture.TOPK).k(128).build(), DataType.FLOAT);
        randomParameters(large, random);
        large.setDecoding(SparseAutoencoder.Decoding.AUTO);
        large.forwardBackward(x);
        assertFalse(large.lastPassSparse(), "TopK k = 128 of 256");

        JumpReluSae jump = (JumpReluSae) SparseAutoencoder.create(base(SaeConfig.Architecture.JUMPRELU).build(), DataType.FLOAT);
        jump.setDecoding(SparseAutoencoder.Decoding.AUTO);
        randomParameters(jump, random);
        jump.logThreshold().assign(Math.log(4.0));
        double sparseL0 = jump.forwardBackward(x).l0();
        assertTrue(jump.lastPassSparse(), "JumpReLU at L0 " + sparseL0);
        jump.logThreshold().assign(Math.log(0.01));
        double denseL0 = jump.forwardBackward(x).l0();
        assertFalse(jump.lastPassSparse(), "JumpReLU at L0 " + denseL0);
        assertTrue(denseL0 > 64, "L0 " + denseL0);
        // Back to a small L0: the first pass goes by the last dense pass's L0, the next one is sparse again.
        jump.logThreshold().assign(Math.log(4.0));
        assertEquals(sparseL0, jump.forwardBackward(x).l0(), 1e-9);
        assertFalse(jump.lastPassSparse(), "the pass after a dense one at a large L0");
        jump.forwardBackward(x);
        assertTrue(jump.lastPassSparse(), "JumpReLU back at L0 " + sparseL0);
    }
}
