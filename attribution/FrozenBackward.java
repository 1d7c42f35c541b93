package attribution;

import activations.model.ModelConfig;
import activations.model.TransformerModel;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.List;

/**
 * Backward passes through the frozen local replacement model, batched over targets. With
 * attention patterns and norm scales frozen and MLPs replaced by features + errors, the residual
 * stream is linear in the nodes, so the gradient of a target (an encoder row at a layer's
 * transcoder input, or a demeaned unembedding row at the final norm) w.r.t. each layer's MLP
 * output and the embeddings gives every direct effect at once. Hand-written because nothing in
 * ND4J differentiates the Java forward pass; each step is the transpose of one linear forward
 * step: the LayerNorm/RMSNorm with a fixed divisor, the attention's value/output path with a
 * fixed pattern, and the transcoders' skip connections, the only paths through the MLP slot.
 *
 * <p>Gradients are [B * T, d] arrays, row {@code b * T + t}.
 */
final class FrozenBackward {

    /** A target: gradient {@code vector} at layer {@code layer}'s transcoder input, or at the final norm's output when layer = n_layers. */
    record Seed(int layer, int position, float[] vector) {
    }

    /** Gradients of a batch at each layer's MLP output and at the embeddings, each [B * T, d]. */
    record Gradients(int batch, INDArray[] mlpOutput, INDArray embedding) {
    }

    private final LocalReplacementModel m;
    private final int t;
    private final int d;
    private final int heads;
    private final int kvHeads;
    private final int headDim;
    private final boolean layerNorm;
    private final TransformerModel.FrozenLayer[] weights;
    private final INDArray[] patternTransposed; // [heads, k, q]
    private final INDArray finalGain;

    FrozenBackward(LocalReplacementModel m) {
        this.m = m;
        ModelConfig c = m.config;
        this.t = m.positions;
        this.d = c.dModel();
        this.heads = c.nHeads();
        this.kvHeads = c.nKvHeads();
        this.headDim = c.headDim();
        this.layerNorm = c.family() == ModelConfig.Family.GPT2;
        this.weights = new TransformerModel.FrozenLayer[m.layers];
        this.patternTransposed = new INDArray[m.layers];
        for (int l = 0; l < m.layers; l++) {
            weights[l] = m.model.frozenLayer(l);
            patternTransposed[l] = Nd4j.createFromArray(m.patterns[l]).reshape(heads, t, t).permute(0, 2, 1).dup('c');
        }
        float[] gain = m.model.finalNormGain();
        this.finalGain = Nd4j.createFromArray(gain);
    }

    Gradients run(List<Seed> seeds) {
        int batch = seeds.size();
        int rows = batch * t;
        int top = -1;
        for (Seed s : seeds) {
            top = Math.max(top, s.layer());
        }
        INDArray g = Nd4j.zeros(DataType.FLOAT, rows, d);
        if (top == m.layers) {
            INDArray atFinal = inject(seeds, m.layers);
            if (atFinal != null) {
                atFinal.muliRowVector(finalGain);
                g.addi(normBackward(atFinal, m.finalScale));
            }
            top = m.layers - 1;
        }
        INDArray[] mlpOutput = new INDArray[m.layers];
        for (int l = m.layers - 1; l >= 0; l--) {
            if (l > top) {
                mlpOutput[l] = Nd4j.zeros(DataType.FLOAT, rows, d);
                continue;
            }
            mlpOutput[l] = g.dup();
            INDArray atInput = null;
            INDArray skip = m.transcoder.skip(l);
            if (skip != null) {
                atInput = g.mmul(skip.transpose()); // out = x W_skip: dL/dx = dL/dout W_skip^T
                if (m.zeroFirst) {
                    atInput.muliColumnVector(firstPositionMask(batch)); // a left-out first position's MLP output is a constant
                }
            }
            INDArray seeded = inject(seeds, l);
            if (seeded != null) {
                atInput = atInput == null ? seeded : atInput.addi(seeded);
            }
            if (atInput != null) {
                g.addi(m.inputNormalized ? normBackward(atInput, m.ln2Scale[l]) : atInput);
            }
            g.addi(attentionBackward(l, g, batch));
        }
        return new Gradients(batch, mlpOutput, g);
    }

    /** The seeds at {@code layer} as a [B * T, d] gradient, or null when there are none. */
    private INDArray inject(List<Seed> seeds, int layer) {
        float[] into = null;
        for (int b = 0; b < seeds.size(); b++) {
            Seed s = seeds.get(b);
            if (s.layer() == layer) {
                into = into == null ? new float[seeds.size() * t * d] : into;
                System.arraycopy(s.vector(), 0, into, (b * t + s.position()) * d, d);
            }
        }
        return into == null ? null : Nd4j.createFromArray(into).reshape((long) seeds.size() * t, d);
    }

    private INDArray firstPositionMask(int batch) {
        float[] mask = new float[batch * t];
        for (int r = 0; r < mask.length; r++) {
            mask[r] = r % t == 0 ? 0f : 1f;
        }
        return Nd4j.createFromArray(mask).reshape((long) batch * t, 1);
    }

    /** Transpose of y = (x - mean(x)) / s (LayerNorm) or x / s (RMSNorm) with s fixed per position. */
    private INDArray normBackward(INDArray grad, float[] scale) {
        int rows = (int) grad.size(0);
        float[] inverse = new float[rows];
        for (int r = 0; r < rows; r++) {
            inverse[r] = 1f / scale[r % t];
        }
        INDArray out = grad.dup();
        if (layerNorm) {
            out.subiColumnVector(out.mean(1).reshape(rows, 1));
        }
        return out.muliColumnVector(Nd4j.createFromArray(inverse).reshape(rows, 1));
    }

    /**
     * Gradient at the residual stream entering layer l through its attention (the residual path
     * itself excluded): attn_out = (P . (ln1(x) W_v)) W_o, P fixed.
     */
    private INDArray attentionBackward(int l, INDArray g, int batch) {
        TransformerModel.FrozenLayer w = weights[l];
        INDArray z = g.mmul(w.output().transpose()); // [B*T, heads*hd]
        INDArray byHead = z.reshape(batch, t, heads, headDim).permute(2, 1, 0, 3).dup('c').reshape(heads, t, (long) batch * headDim);
        INDArray values = Nd4j.matmul(patternTransposed[l], byHead); // [heads, k, B*hd]
        INDArray perHead = values.reshape(heads, t, batch, headDim).permute(2, 1, 0, 3).dup('c'); // [B, T, heads, hd]
        int group = heads / kvHeads;
        INDArray perKv = perHead.reshape(batch, t, kvHeads, group, headDim).sum(3).reshape((long) batch * t, (long) kvHeads * headDim);
        INDArray normalized = perKv.mmul(w.value().transpose()).muliRowVector(Nd4j.createFromArray(w.norm1Gain()));
        return normBackward(normalized, m.ln1Scale[l]);
    }
}
