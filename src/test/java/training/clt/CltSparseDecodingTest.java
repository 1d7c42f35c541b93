package training.clt;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.sae.SparseAutoencoder;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CLT's sparse training pass (each layer's active features decoding into every later layer,
 * gradients over the entries only) against the dense pass on the same parameters and batch, in
 * FLOAT, with the tanh penalty and the pre-activation loss on dead features: loss parts and every
 * gradient entry agree within fp32 summation noise, and so do the parameters after one step; and
 * the per-batch decision takes the dense path when most features fire.
 */
class CltSparseDecodingTest {

    private static final int L = 3;
    private static final int D = 16;
    private static final int F = 128;
    private static final int B = 48;

    private static CltConfig config() {
        return CltConfig.builder(L, D, F).batchSize(B).totalTokens(B * 10L).bandwidth(0.5).sparsityCoefficient(0.05)
                .preActLossCoefficient(0.1).thresholdInit(1.0).build();
    }

    private static void randomParameters(CrossLayerTranscoder clt, Random random, double logTheta) {
        INDArray p = clt.parameters();
        float[] v = new float[(int) p.length()];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (0.3 * random.nextGaussian());
        }
        p.assign(Nd4j.createFromArray(v).reshape(p.shape()));
        for (int l = 0; l < L; l++) {
            clt.logThreshold(l).assign(logTheta);
        }
    }

    private static INDArray[] batches(Random random) {
        INDArray[] out = new INDArray[L];
        for (int l = 0; l < L; l++) {
            float[] v = new float[B * D];
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) random.nextGaussian();
            }
            out[l] = Nd4j.createFromArray(v).reshape(B, D);
        }
        return out;
    }

    private static boolean[] dead() {
        boolean[] dead = new boolean[L * F];
        for (int i = 0; i < dead.length; i += 3) {
            dead[i] = true;
        }
        return dead;
    }

    @Test
    void sparseStepEqualsDenseStep() {
        Random random = new Random(11);
        CltConfig config = config();
        CltStep dense = new CltStep(config);
        CltStep sparse = new CltStep(config);
        randomParameters(dense.clt(), random, Math.log(2.5));
        sparse.clt().parameters().assign(dense.clt().parameters());
        INDArray[] x = batches(random);
        INDArray[] y = batches(random);
        dense.clt().setDecoding(SparseAutoencoder.Decoding.DENSE);
        sparse.clt().setDecoding(SparseAutoencoder.Decoding.SPARSE);
        CrossLayerTranscoder.LossParts[] parts = new CrossLayerTranscoder.LossParts[2];
        CltStep[] steps = {dense, sparse};
        for (int s = 0; s < 2; s++) {
            steps[s].clt().setSparsityCoefficient(0.05);
            steps[s].clt().setDeadFeatures(dead());
            parts[s] = steps[s].clt().forwardBackward(x, y);
        }
        assertFalse(dense.clt().lastPassSparse());
        assertTrue(sparse.clt().lastPassSparse());
        double l0 = parts[1].l0();
        assertTrue(l0 > 1 && l0 < 0.2 * L * F, "L0 " + l0);
        assertClose(parts[0].total(), parts[1].total(), "loss");
        assertClose(parts[0].mse(), parts[1].mse(), "mse");
        assertClose(parts[0].sparsity(), parts[1].sparsity(), "tanh penalty");
        assertClose(parts[0].preActivation(), parts[1].preActivation(), "pre-activation loss");
        assertTrue(parts[1].preActivation() > 0, "the pre-activation loss takes part");
        assertEquals(dense.clt().lastFireCounts(), sparse.clt().lastFireCounts(), "firing counts");
        for (int t = 0; t < L; t++) {
            float[] e = dense.clt().lastPrediction(t).dup().reshape(B * D).toFloatVector();
            float[] a = sparse.clt().lastPrediction(t).dup().reshape(B * D).toFloatVector();
            for (int i = 0; i < e.length; i++) {
                assertEquals(e[i], a[i], 1e-5 * (1 + Math.abs(e[i])), "prediction of layer " + t);
            }
        }

        float[] gd = dense.clt().gradients().dup().reshape(dense.clt().gradients().length()).toFloatVector();
        float[] gs = sparse.clt().gradients().dup().reshape(gd.length).toFloatVector();
        // Regions in layout order: per layer W_enc, b_enc, log theta; the b_dec; each decoder.
        java.util.List<Integer> ends = new java.util.ArrayList<>();
        int offset = 0;
        for (int l = 0; l < L; l++) {
            ends.add(offset += D * F);
            ends.add(offset += F);
            ends.add(offset += F);
        }
        ends.add(offset += L * D);
        for (int l = 0; l < L; l++) {
            for (int t = l; t < L; t++) {
                ends.add(offset += F * D);
            }
        }
        assertEquals(gd.length, offset);
        int start = 0;
        for (int end : ends) {
            double scale = 0;
            for (int i = start; i < end; i++) {
                scale = Math.max(scale, Math.abs(gd[i]));
            }
            assertTrue(scale > 0, "region ending " + end + " has a gradient");
            for (int i = start; i < end; i++) {
                assertEquals(gd[i], gs[i], 1e-5 * scale + 1e-9, "gradient entry " + i + " (region ending " + end + ")");
            }
            start = end;
        }

        double maxGradient = 0;
        for (float g : gd) {
            maxGradient = Math.max(maxGradient, Math.abs(g));
        }
        dense.update(0, dense.clt().lastFireCounts().toDoubleVector(), B);
        sparse.update(0, sparse.clt().lastFireCounts().toDoubleVector(), B);
        float[] pd = dense.clt().parameters().dup().reshape(gd.length).toFloatVector();
        float[] ps = sparse.clt().parameters().dup().reshape(gd.length).toFloatVector();
        for (int i = 0; i < pd.length; i++) {
            // Adam's first step moves by about lr * sign(g): only a gradient at the noise floor may differ in sign.
            boolean noise = Math.abs(gd[i]) <= 1e-5 * maxGradient;
            assertEquals(pd[i], ps[i], noise ? 2.01 * config.learningRate() : 1e-5, "parameter " + i + " after the step");
        }
    }

    @Test
    void decisionFollowsTheMeasuredL0() {
        Random random = new Random(5);
        CrossLayerTranscoder clt = new CrossLayerTranscoder(config(), DataType.FLOAT);
        INDArray[] x = batches(random);
        INDArray[] y = batches(random);
        randomParameters(clt, random, Math.log(3.0));
        clt.setDecoding(SparseAutoencoder.Decoding.AUTO);
        double sparseL0 = clt.forwardBackward(x, y).l0();
        assertTrue(clt.lastPassSparse(), "L0 " + sparseL0 + " of " + L * F);
        randomParameters(clt, random, Math.log(0.01));
        double denseL0 = clt.forwardBackward(x, y).l0();
        assertFalse(clt.lastPassSparse(), "L0 " + denseL0 + " of " + L * F);
        assertTrue(denseL0 > 0.3 * L * F, "L0 " + denseL0);
        // Back to a small L0: one more dense pass (it goes by the last dense L0), then sparse again.
        for (int l = 0; l < L; l++) {
            clt.logThreshold(l).assign(Math.log(3.0));
        }
        double smallL0 = clt.forwardBackward(x, y).l0();
        assertFalse(clt.lastPassSparse(), "the pass after a dense one at L0 " + denseL0);
        clt.forwardBackward(x, y);
        assertTrue(clt.lastPassSparse(), "back at L0 " + smallL0);
    }

    private static void assertClose(double expected, double actual, String what) {
        assertEquals(expected, actual, 1e-5 * Math.max(1e-3, Math.abs(expected)), what);
    }
}
