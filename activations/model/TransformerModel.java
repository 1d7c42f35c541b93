package activations.model;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.hooks.HookPoint.Kind;
import activations.hooks.Intervention;
import activations.model.TransformerWeights.Layer;
import activations.model.TransformerWeights.Linear;
import activations.model.TransformerWeights.Norm;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.FloatBuffer;
import org.bytedeco.javacpp.FloatPointer;

import static org.bytedeco.openblas.global.openblas_nolapack.CblasNoTrans;
import static org.bytedeco.openblas.global.openblas_nolapack.CblasRowMajor;
import static org.bytedeco.openblas.global.openblas_nolapack.CblasTrans;
import static org.bytedeco.openblas.global.openblas_nolapack.cblas_sgemm;
import java.nio.file.Path;

/**
 * The forward pass of a decoder-only transformer (Llama family, GPT-2, Gemma-2, GPT-NeoX) with
 * TransformerLens hook points, in one file: plain loops over float buffers for norms, RoPE, softmax and activations,
 * and ND4J gemm into preallocated buffers for every matrix product. A pass runs a batch of
 * equal-length sequences, copies out only the requested hooks, and stops after the last layer
 * anything was requested from.
 *
 * <p>Thread-safe: weights are shared and read-only; each thread reuses its own scratch buffers.
 */
public final class TransformerModel {

    private final ModelConfig config;
    private final TransformerWeights weights;
    private final double[] ropeInverseFrequencies;
    private final ThreadLocal<Buffers> scratch = new ThreadLocal<>();
    private volatile float[][] ropeTable = new float[2][0]; // cos, sin: [position * headDim/2 + i]

    private TransformerModel(ModelConfig config, TransformerWeights weights) {
        this.config = config;
        this.weights = weights;
        this.ropeInverseFrequencies = config.rotaryDim() > 0 ? ropeFrequencies(config) : null;
    }

    /** Loads a Hugging Face model directory (config.json + safetensors weights). */
    public static TransformerModel load(Path modelDir) {
        ModelConfig config = ModelConfig.load(modelDir);
        return new TransformerModel(config, TransformerWeights.load(modelDir, config));
    }

    public ModelConfig config() {
        return config;
    }

    /** The model's unembedding matrix [vocab, d] (read-only; used for logit lenses), before any logit soft-cap. */
    public INDArray unembedding() {
        return weights.unembed.weight();
    }

    /** The final norm's gain as applied before the unembedding (Gemma's {@code 1 + w}). */
    public float[] finalNormGain() {
        return weights.finalNorm.gain().clone();
    }

    /** True when the final norm centres its input (LayerNorm), false for RMSNorm: what direct logit attribution needs. */
    public boolean finalNormCentres() {
        return config.norm() == ModelConfig.NormKind.LAYER; // the same test normalize() makes
    }

    /** The final norm's bias (LayerNorm), or null (RMSNorm). */
    public float[] finalNormBias() {
        return weights.finalNorm.bias() == null ? null : weights.finalNorm.bias().clone();
    }

    /**
     * The linear maps a backward pass through the frozen model needs (attribution graphs), oriented
     * {@code x @ W}: layer l's value projection [d, kvDim] (the q|k|v columns of v) and output
     * projection [qDim, d], and both norms' gains. Read-only views of the weights.
     */
    public record FrozenLayer(INDArray value, INDArray output, float[] norm1Gain, float[] norm2Gain) {
    }

    public FrozenLayer frozenLayer(int layer) {
        Layer w = weights.layers.get(layer);
        INDArray qkv = w.qkv().transposed() ? w.qkv().weight().transpose() : w.qkv().weight();
        int from = config.qDim() + config.kvDim();
        INDArray value = qkv.get(org.nd4j.linalg.indexing.NDArrayIndex.all(),
                org.nd4j.linalg.indexing.NDArrayIndex.interval(from, from + config.kvDim()));
        INDArray output = w.attnOut().transposed() ? w.attnOut().weight().transpose() : w.attnOut().weight();
        return new FrozenLayer(value, output, w.norm1().gain().clone(), w.norm2().gain().clone());
    }

    /** The token embedding matrix [vocab, d] (read-only). */
    public INDArray tokenEmbedding() {
        return weights.tokenEmbedding;
    }

    /**
     * Runs {@code tokens} (batch x seqLen, equal lengths) and returns the captured hooks. Positions
     * start at 0 in every sequence.
     */
    public ForwardResult forward(int[][] tokens, ForwardRequest request) {
        int batch = tokens.length;
        if (batch == 0 || tokens[0].length == 0) {
            throw new IllegalArgumentException("nothing to run: the batch has no tokens");
        }
        int seqLen = tokens[0].length;
        if (seqLen > config.maxPositions()) {
            throw new IllegalArgumentException(seqLen + " tokens exceed the model's context of "
                    + config.maxPositions() + " positions; shorten the input or use a smaller context size");
        }
        for (int[] sequence : tokens) {
            if (sequence.length != seqLen) {
                throw new IllegalArgumentException("a batch needs sequences of equal length (" + seqLen + " and "
                        + sequence.length + "); pack or pad them first");
            }
            for (int id : sequence) {
                if (id < 0 || id >= config.vocabSize()) {
                    throw new IllegalArgumentException("token id " + id + " is outside the vocabulary [0, "
                            + config.vocabSize() + ")");
                }
            }
        }
        int lastLayer = -1;
        boolean needFinal = false;
        for (HookPoint hook : request.touched()) {
            if (hook.kind().perLayer) {
                lastLayer = Math.max(lastLayer, hook.layer());
            } else if (hook.kind() == Kind.LN_FINAL_SCALE || hook.kind() == Kind.LN_FINAL_NORMALIZED || hook.kind() == Kind.LOGITS) {
                needFinal = true;
                lastLayer = config.nLayers() - 1;
            }
        }

        boolean wantLogits = request.touches(new HookPoint(Kind.LOGITS, -1));
        Buffers b = buffers(batch, seqLen, wantLogits);
        Pass pass = new Pass(request, new ForwardResult(batch, seqLen), b);
        embed(tokens, pass);
        for (int l = 0; l <= lastLayer; l++) {
            layer(l, weights.layers.get(l), pass);
        }
        if (needFinal) {
            finalNormAndHead(pass, wantLogits);
        }
        return pass.result;
    }

    /** The final norm (its hook, then its gain) and, when asked, the unembedding with the final soft-cap. */
    private void finalNormAndHead(Pass pass, boolean wantLogits) {
        Buffers b = pass.buffers;
        normalize(b.resid, b.normed, b.rows, pass, new HookPoint(Kind.LN_FINAL_SCALE, -1));
        pass.visit(new HookPoint(Kind.LN_FINAL_NORMALIZED, -1), b.normed);
        applyGain(b.normed, weights.finalNorm, b.rows);
        // Not b.logits != null: a reused buffer may have room for logits this pass does not want.
        if (wantLogits) {
            linear(weights.unembed, b.normed, b.logits);
            softcap(b.logits, b.rows, config.finalSoftcap());
            pass.visit(new HookPoint(Kind.LOGITS, -1), b.logits);
        }
    }

    /** Next-token logits at the last position of one sequence. */
    public float[] lastLogits(int[] tokens) {
        HookPoint logits = new HookPoint(Kind.LOGITS, -1);
        return forward(new int[][] {tokens}, ForwardRequest.capture(logits)).row(logits, 0, tokens.length - 1);
    }

    /** Greedy decoding: appends up to {@code maxNewTokens} argmax tokens, stopping after {@code stopId}. */
    public int[] greedy(int[] prompt, int maxNewTokens, int stopId) {
        int[] sequence = prompt.clone();
        int[] generated = new int[0];
        for (int step = 0; step < maxNewTokens && sequence.length < config.maxPositions(); step++) {
            int next = argmax(lastLogits(sequence));
            generated = java.util.Arrays.copyOf(generated, generated.length + 1);
            generated[generated.length - 1] = next;
            if (next == stopId) {
                break;
            }
            sequence = java.util.Arrays.copyOf(sequence, sequence.length + 1);
            sequence[sequence.length - 1] = next;
        }
        return generated;
    }

    /**
     * Runs {@code tokens} as the next positions of the sequence whose earlier keys and values are in
     * {@code cache} (empty: the whole prompt), appends theirs, and returns the captures of the new
     * positions only ({@code batch 1 x tokens.length}). Every layer runs, so the cache stays
     * complete; interventions see only the new positions. The same numbers as recomputing the
     * whole prefix with {@link #forward}, at the cost of the new positions.
     */
    public ForwardResult forwardCached(int[] tokens, KvCache cache, ForwardRequest request) {
        int start = cache.length();
        if (tokens.length == 0) {
            throw new IllegalArgumentException("nothing to run: no new tokens");
        }
        if (cache.keys.length != config.nLayers() || cache.kvWidth != config.kvDim()) {
            throw new IllegalArgumentException("the key/value cache was made for another model");
        }
        if (start + tokens.length > config.maxPositions()) {
            throw new IllegalArgumentException((start + tokens.length) + " tokens exceed the model's context of "
                    + config.maxPositions() + " positions; generate fewer tokens or shorten the prompt");
        }
        for (int id : tokens) {
            if (id < 0 || id >= config.vocabSize()) {
                throw new IllegalArgumentException("token id " + id + " is outside the vocabulary [0, " + config.vocabSize() + ")");
            }
        }
        boolean wantLogits = request.touches(new HookPoint(Kind.LOGITS, -1));
        Buffers b = buffers(1, tokens.length, wantLogits);
        Pass pass = new Pass(request, new ForwardResult(1, tokens.length), b);
        pass.cache = cache;
        pass.start = start;
        cache.reserve(start + tokens.length);
        embed(new int[][] {tokens}, pass);
        for (int l = 0; l < config.nLayers(); l++) {
            layer(l, weights.layers.get(l), pass);
        }
        finalNormAndHead(pass, wantLogits);
        cache.advance(tokens.length);
        return pass.result;
    }

    /**
     * The model's own head on residual-stream rows ({@code rows x d}, row-major): final norm with
     * its gain (and bias), then the unembedding. A logit lens applies it to every layer's residual.
     */
    public float[] unembed(float[] residual) {
        int d = config.dModel();
        if (residual.length == 0 || residual.length % d != 0) {
            throw new IllegalArgumentException("residual rows must have width " + d + "; got " + residual.length + " values");
        }
        int rows = residual.length / d;
        Tensor in = new Tensor(rows, d);
        Tensor normed = new Tensor(rows, d);
        Tensor logits = new Tensor(rows, config.vocabSize());
        in.view.put(0, residual);
        normalize(in, normed, rows, null, null);
        applyGain(normed, weights.finalNorm, rows);
        linear(weights.unembed, normed, logits);
        softcap(logits, rows, config.finalSoftcap());
        float[] out = new float[rows * config.vocabSize()];
        logits.view.get(0, out);
        return out;
    }

    public static int argmax(float[] values) {
        int best = 0;
        for (int i = 1; i < values.length; i++) {
            if (values[i] > values[best]) {
                best = i;
            }
        }
        return best;
    }

    // ---------------------------------------------------------------- the pass

    private void embed(int[][] tokens, Pass pass) {
        Buffers b = pass.buffers;
        int d = config.dModel();
        FloatBuffer table = weights.tokenEmbedding.data().asNioFloat();
        FloatBuffer resid = b.resid.view;
        float[] row = new float[d];
        float scale = config.embeddingScale(); // Gemma: sqrt(d_model), rounded to fp32 as transformers does
        for (int s = 0; s < tokens.length; s++) {
            for (int t = 0; t < b.seqLen; t++) {
                table.get(tokens[s][t] * d, row);
                if (scale != 1f) {
                    for (int i = 0; i < d; i++) {
                        row[i] *= scale;
                    }
                }
                resid.put((s * b.seqLen + t) * d, row);
            }
        }
        pass.visit(new HookPoint(Kind.EMBED, -1), b.resid);
        if (weights.positionEmbedding != null) {
            FloatBuffer positions = weights.positionEmbedding.data().asNioFloat();
            FloatBuffer scratch = b.normed.view;
            for (int s = 0; s < tokens.length; s++) {
                for (int t = 0; t < b.seqLen; t++) {
                    positions.get((pass.start + t) * d, row);
                    scratch.put((s * b.seqLen + t) * d, row);
                }
            }
            pass.visit(new HookPoint(Kind.POS_EMBED, -1), b.normed);
            b.resid.array.addi(b.normed.array);
        }
    }

    private void layer(int l, Layer w, Pass pass) {
        Buffers b = pass.buffers;
        int d = config.dModel();
        pass.visit(new HookPoint(Kind.RESID_PRE, l), b.resid);
        norm(b.resid, b.normed, pass, new HookPoint(Kind.LN1_SCALE, l), new HookPoint(Kind.LN1_NORMALIZED, l), w.norm1());
        linear(w.qkv(), b.normed, b.qkv);
        if (pass.cache == null) {
            attention(l, b, pass);
        } else {
            cachedAttention(l, pass);
        }
        HookPoint attnOutHook = new HookPoint(Kind.ATTN_OUT, l);
        // Without a sandwich norm or a hook on it, the output projection accumulates straight into
        // the residual stream (gemm with beta 1): no attnOut buffer pass and no separate add.
        boolean attnIntoResid = w.postAttnNorm() == null && !config.parallelResidual() && !pass.request.touches(attnOutHook);
        if (attnIntoResid) {
            linear(w.attnOut(), b.merged, b.resid, 1.0);
        } else {
            linear(w.attnOut(), b.merged, b.attnOut, 0.0);
            if (w.postAttnNorm() != null) { // Gemma-2's sandwich norm: hook_attn_out is what the residual receives
                norm(b.attnOut, b.attnOut, pass, null, new HookPoint(Kind.LN1_POST_NORMALIZED, l), w.postAttnNorm());
            }
            pass.visit(attnOutHook, b.attnOut);
        }
        if (!config.parallelResidual()) {
            if (!attnIntoResid) {
                b.resid.array.addi(b.attnOut.array);
            }
            pass.visit(new HookPoint(Kind.RESID_MID, l), b.resid);
        } // else (GPT-NeoX) the MLP also reads the block input and both outputs are added at the end

        norm(b.resid, b.normed, pass, new HookPoint(Kind.LN2_SCALE, l), new HookPoint(Kind.LN2_NORMALIZED, l), w.norm2());
        pass.visit(new HookPoint(Kind.MLP_IN, l), b.normed);
        linear(w.mlpIn(), b.normed, b.mlpIn);
        Tensor hidden = mlpActivation(b);
        pass.visit(new HookPoint(Kind.MLP_POST, l), hidden);
        HookPoint mlpOutHook = new HookPoint(Kind.MLP_OUT, l);
        if (config.parallelResidual()) {
            b.resid.array.addi(b.attnOut.array);
        }
        if (w.postMlpNorm() == null && !pass.request.touches(mlpOutHook)) {
            linear(w.mlpOut(), hidden, b.resid, 1.0); // accumulate into the residual, as above
        } else {
            linear(w.mlpOut(), hidden, b.mlpOut, 0.0);
            if (w.postMlpNorm() != null) {
                norm(b.mlpOut, b.mlpOut, pass, null, new HookPoint(Kind.LN2_POST_NORMALIZED, l), w.postMlpNorm());
            }
            pass.visit(mlpOutHook, b.mlpOut);
            b.resid.array.addi(b.mlpOut.array);
        }
        pass.visit(new HookPoint(Kind.RESID_POST, l), b.resid);
    }

    /** The attention scores' scale: 1/sqrt(head_dim), or Gemma's query_pre_attn_scalar^-0.5; GPT-2's optional 1/(layer+1). */
    private float scoreScale(int layer) {
        double scale = config.attentionScale();
        if (config.scaleAttnByInverseLayer()) {
            scale /= layer + 1;
        }
        return (float) scale;
    }

    /**
     * Query rows per block of the attention products. Blocks let each product skip the masked
     * columns right of the diagonal, and 32 x 128 x 64 stays within OpenBLAS's single-thread size,
     * so every (sequence, head) runs whole on one core of the loop.
     */
    private static final int ATTENTION_BLOCK = 32;

    /** True when ND4J's host memory can go straight to OpenBLAS (the CPU backend); else batched matmuls. */
    private static final boolean HOST_BLAS = hostBlas();

    private static boolean hostBlas() {
        try {
            return Nd4j.getBackend().getClass().getName().contains("Cpu")
                    && org.bytedeco.openblas.global.openblas_nolapack.CblasRowMajor >= 0;
        } catch (NoClassDefFoundError | UnsatisfiedLinkError e) {
            return false;
        }
    }

    /**
     * Causal self-attention from the fused q|k|v projection into {@code merged} [rows, qDim]: RoPE
     * in place on the q|k columns, then per (sequence, head) both products as OpenBLAS calls on
     * strided views of qkv (no head-major copies), in row blocks that stop at the diagonal (and
     * start at a sliding window's edge), with the softmax between them and the context written
     * straight into its head's columns of merged.
     */
    private void attention(int layer, Buffers b, Pass pass) {
        if (!HOST_BLAS) {
            attentionBatched(layer, b, pass);
            return;
        }
        int heads = config.nHeads();
        int kvHeads = config.nKvHeads();
        int headDim = config.headDim();
        int group = heads / kvHeads;
        int qDim = config.qDim();
        int kvDim = config.kvDim();
        int width = qDim + 2 * kvDim;
        int seqLen = b.seqLen;
        float[][] rope = ropeInverseFrequencies == null ? null : ropeTable(seqLen);
        int rotaryHalf = config.rotaryDim() / 2;
        FloatBuffer qkv = b.qkv.view;
        if (rope != null) {
            ParallelLoops.forEach(b.rows, r -> {
                float[] row = new float[qDim + kvDim];
                qkv.get(r * width, row);
                for (int h = 0; h < heads + kvHeads; h++) {
                    rotate(row, h * headDim, r % seqLen, rope, rotaryHalf);
                }
                qkv.put(r * width, row);
            });
        }
        float scoreScale = scoreScale(layer);
        float cap = (float) config.attentionSoftcap();
        int window = config.windowAt(layer);
        // Rows per block kept within OpenBLAS's single-thread size (rows x seqLen x headDim <= 2^18) at wide heads.
        int blockRows = Math.max(8, Math.min(ATTENTION_BLOCK, (1 << 18) / (seqLen * headDim)));
        HookPoint patternHook = new HookPoint(Kind.ATTN_PATTERN, layer);
        // A touched pattern is visited (and may be replaced) whole before any context product.
        boolean fused = !pass.request.touches(patternHook);
        FloatBuffer scores = b.scores.view;
        org.bytedeco.javacpp.Pointer qkvBase = b.qkv.array.data().addressPointer();
        org.bytedeco.javacpp.Pointer scoresBase = b.scores.array.data().addressPointer();
        org.bytedeco.javacpp.Pointer mergedBase = b.merged.array.data().addressPointer();
        ParallelLoops.forEach(b.batch * heads, bh -> {
            int s = bh / heads;
            int h = bh % heads;
            int kvHead = h / group;
            FloatPointer a = new FloatPointer(qkvBase);
            FloatPointer bt = new FloatPointer(qkvBase);
            FloatPointer c = new FloatPointer(scoresBase);
            FloatPointer out = new FloatPointer(mergedBase);
            float[] p = new float[blockRows * seqLen];
            int block = bh * seqLen * seqLen;
            for (int r0 = 0; r0 < seqLen; r0 += blockRows) {
                int r1 = Math.min(seqLen, r0 + blockRows);
                int c0 = window > 0 ? Math.max(0, r0 - window + 1) : 0;
                int rows = r1 - r0;
                // scores[r0:r1, c0:r1] = scale * q[r0:r1] k[c0:r1]^T
                a.position((long) (s * seqLen + r0) * width + h * headDim);
                bt.position((long) (s * seqLen + c0) * width + qDim + kvHead * headDim);
                c.position((long) block + r0 * seqLen + c0);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r1 - c0, headDim, scoreScale,
                        a, width, bt, width, 0f, c, seqLen);
                scores.get(block + r0 * seqLen, p, 0, rows * seqLen);
                for (int i = r0; i < r1; i++) {
                    softmaxRow(p, (i - r0) * seqLen, seqLen, window > 0 ? Math.max(0, i - window + 1) : 0, i, cap);
                }
                scores.put(block + r0 * seqLen, p, 0, rows * seqLen);
                if (fused) {
                    context(c, bt, out, s, h, kvHead, r0, r1, c0, r1, block, width, seqLen);
                }
            }
        });
        if (!fused) {
            pass.visit(patternHook, b.pattern);
            ParallelLoops.forEach(b.batch * heads, bh -> {
                int s = bh / heads;
                int h = bh % heads;
                FloatPointer a = new FloatPointer(scoresBase);
                FloatPointer v = new FloatPointer(qkvBase);
                FloatPointer out = new FloatPointer(mergedBase);
                for (int r0 = 0; r0 < seqLen; r0 += blockRows) {
                    // Every column: a replaced pattern need not be causal.
                    context(a, v, out, s, h, h / group, r0, Math.min(seqLen, r0 + blockRows), 0, seqLen,
                            bh * seqLen * seqLen, width, seqLen);
                }
            });
        }
    }

    /**
     * merged[s, r0:r1, head h] = pattern[r0:r1, c0:c1] v[c0:c1]; the three pointers are the
     * caller's scratch views, repositioned here.
     */
    private void context(FloatPointer pattern, FloatPointer v, FloatPointer out, int s, int h, int kvHead,
                         int r0, int r1, int c0, int c1, int block, int width, int seqLen) {
        int qDim = config.qDim();
        int headDim = config.headDim();
        pattern.position((long) block + r0 * seqLen + c0);
        v.position((long) (s * seqLen + c0) * width + qDim + config.kvDim() + kvHead * headDim);
        out.position((long) (s * seqLen + r0) * qDim + h * headDim);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, headDim, c1 - c0, 1f,
                pattern, seqLen, v, width, 0f, out, qDim);
    }

    /**
     * One row of scaled scores to its pattern in place: Gemma-2's soft-cap, the softmax over the
     * visible columns [first, last], zeros elsewhere.
     */
    private static void softmaxRow(float[] p, int rowStart, int seqLen, int first, int last, float cap) {
        float max = Float.NEGATIVE_INFINITY;
        for (int j = rowStart + first; j <= rowStart + last; j++) {
            float score = p[j];
            if (cap > 0) { // Gemma-2: cap * tanh(score / cap), before the mask and softmax
                score = cap * tanh(score / cap);
                p[j] = score;
            }
            max = Math.max(max, score);
        }
        double sum = 0;
        for (int j = rowStart + first; j <= rowStart + last; j++) {
            float e = (float) Math.exp(p[j] - max);
            p[j] = e;
            sum += e;
        }
        float inv = (float) (1.0 / sum);
        for (int j = rowStart + first; j <= rowStart + last; j++) {
            p[j] *= inv;
        }
        java.util.Arrays.fill(p, rowStart, rowStart + first, 0f);
        java.util.Arrays.fill(p, rowStart + last + 1, rowStart + seqLen, 0f);
    }

    /** The batched-matmul attention for backends whose memory OpenBLAS cannot read (CUDA). */
    private void attentionBatched(int layer, Buffers b, Pass pass) {
        int heads = config.nHeads();
        int headDim = config.headDim();
        int group = heads / config.nKvHeads();
        int qkvWidth = config.qDim() + 2 * config.kvDim();
        int seqLen = b.seqLen;
        float[][] rope = ropeInverseFrequencies == null ? null : ropeTable(seqLen);
        int rotaryHalf = config.rotaryDim() / 2;
        FloatBuffer qkv = b.qkv.view;
        FloatBuffer q = b.q.view;
        FloatBuffer k = b.k.view;
        FloatBuffer v = b.v.view;

        // Head-major copies so each (sequence, head) is a contiguous [seqLen, headDim] block for the
        // batched matmuls; grouped-query heads share their key/value head.
        ParallelLoops.forEach(b.batch * heads, bh -> {
            int s = bh / heads;
            int h = bh % heads;
            int kvHead = h / group;
            float[] vec = new float[headDim];
            for (int t = 0; t < seqLen; t++) {
                int row = (s * seqLen + t) * qkvWidth;
                int out = (bh * seqLen + t) * headDim;
                qkv.get(row + h * headDim, vec);
                rotate(vec, t, rope, rotaryHalf);
                q.put(out, vec);
                qkv.get(row + config.qDim() + kvHead * headDim, vec);
                rotate(vec, t, rope, rotaryHalf);
                k.put(out, vec);
                qkv.get(row + config.qDim() + config.kvDim() + kvHead * headDim, vec);
                v.put(out, vec);
            }
        });

        Nd4j.matmul(b.q.array, b.k.array, b.scores.array, false, true, false);

        float scoreScale = scoreScale(layer);
        float cap = (float) config.attentionSoftcap();
        int window = config.windowAt(layer);
        FloatBuffer scores = b.scores.view;
        ParallelLoops.forEach(b.batch * heads, bh -> {
            float[] p = new float[seqLen * seqLen]; // one (sequence, head) block, copied in bulk
            scores.get(bh * seqLen * seqLen, p);
            for (int i = 0; i < seqLen; i++) {
                int rowStart = i * seqLen;
                int first = window > 0 ? Math.max(0, i - window + 1) : 0;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = first; j <= i; j++) {
                    float score = p[rowStart + j] * scoreScale;
                    if (cap > 0) { // Gemma-2: cap * tanh(score / cap), before the mask and softmax
                        score = cap * tanh(score / cap);
                    }
                    p[rowStart + j] = score;
                    max = Math.max(max, score);
                }
                double sum = 0;
                for (int j = first; j <= i; j++) {
                    float e = (float) Math.exp(p[rowStart + j] - max);
                    p[rowStart + j] = e;
                    sum += e;
                }
                float inv = (float) (1.0 / sum);
                for (int j = 0; j < seqLen; j++) {
                    boolean visible = j >= first && j <= i;
                    p[rowStart + j] = visible ? p[rowStart + j] * inv : 0f;
                }
            }
            scores.put(bh * seqLen * seqLen, p);
        });
        pass.visit(new HookPoint(Kind.ATTN_PATTERN, layer), b.pattern);

        Nd4j.matmul(b.scores.array, b.v.array, b.context.array, false, false, false);

        FloatBuffer context = b.context.view;
        FloatBuffer merged = b.merged.view;
        ParallelLoops.forEach(b.batch * heads, bh -> {
            int s = bh / heads;
            int h = bh % heads;
            float[] vec = new float[headDim];
            for (int t = 0; t < seqLen; t++) {
                context.get((bh * seqLen + t) * headDim, vec);
                merged.put((s * seqLen + t) * config.qDim() + h * headDim, vec);
            }
        });
    }

    /**
     * Attention of the new positions over the cache and themselves: their keys and values go into
     * the cache first, then each (head, new position) attends over every cached position with
     * plain loops (one query row each; llama3.java-style), the same math as {@link #attention}.
     */
    private void cachedAttention(int layer, Pass pass) {
        Buffers b = pass.buffers;
        KvCache cache = pass.cache;
        int start = pass.start;
        int n = b.seqLen;
        int heads = config.nHeads();
        int headDim = config.headDim();
        int group = heads / config.nKvHeads();
        int qDim = config.qDim();
        int kvDim = config.kvDim();
        int qkvWidth = qDim + 2 * kvDim;
        float[][] rope = ropeInverseFrequencies == null ? null : ropeTable(start + n);
        int rotaryHalf = config.rotaryDim() / 2;
        FloatBuffer qkv = b.qkv.view;
        float[] keys = cache.keys[layer];
        float[] values = cache.values[layer];
        float[] vec = new float[headDim];
        for (int t = 0; t < n; t++) {
            for (int kv = 0; kv < config.nKvHeads(); kv++) {
                int at = (start + t) * kvDim + kv * headDim;
                qkv.get(t * qkvWidth + qDim + kv * headDim, vec);
                rotate(vec, start + t, rope, rotaryHalf);
                System.arraycopy(vec, 0, keys, at, headDim);
                qkv.get(t * qkvWidth + qDim + kvDim + kv * headDim, values, at, headDim);
            }
        }
        float scoreScale = scoreScale(layer);
        float cap = (float) config.attentionSoftcap();
        int window = config.windowAt(layer);
        FloatBuffer merged = b.merged.view;
        ParallelLoops.forEach(heads * n, ht -> {
            int h = ht / n;
            int t = ht % n;
            int position = start + t;
            int kvOffset = (h / group) * headDim;
            float[] q = new float[headDim];
            qkv.get(t * qkvWidth + h * headDim, q);
            rotate(q, position, rope, rotaryHalf);
            int first = window > 0 ? Math.max(0, position - window + 1) : 0;
            float[] weightsOf = new float[position + 1];
            float max = Float.NEGATIVE_INFINITY;
            for (int j = first; j <= position; j++) {
                float dot = 0;
                int k = j * kvDim + kvOffset;
                for (int i = 0; i < headDim; i++) {
                    dot += q[i] * keys[k + i];
                }
                float score = dot * scoreScale;
                weightsOf[j] = cap > 0 ? cap * tanh(score / cap) : score;
                max = Math.max(max, weightsOf[j]);
            }
            double sum = 0;
            for (int j = first; j <= position; j++) {
                weightsOf[j] = (float) Math.exp(weightsOf[j] - max);
                sum += weightsOf[j];
            }
            float inv = (float) (1.0 / sum);
            float[] out = new float[headDim];
            for (int j = first; j <= position; j++) {
                float p = weightsOf[j] * inv;
                int v = j * kvDim + kvOffset;
                for (int i = 0; i < headDim; i++) {
                    out[i] += p * values[v + i];
                }
            }
            merged.put(t * qDim + h * headDim, out);
        });
    }

    /**
     * Hugging Face's rotate_half RoPE on the first 2 * half dimensions (all of them, or GPT-NeoX's
     * rotary_pct share): pairs (i, i + half) rotate by position * frequency i; the rest pass through.
     */
    private static void rotate(float[] vec, int position, float[][] rope, int half) {
        rotate(vec, 0, position, rope, half);
    }

    /** The same on the head starting at {@code from} in {@code vec}. */
    private static void rotate(float[] vec, int from, int position, float[][] rope, int half) {
        if (rope == null) {
            return;
        }
        int base = position * half;
        for (int i = 0; i < half; i++) {
            float cos = rope[0][base + i];
            float sin = rope[1][base + i];
            float x1 = vec[from + i];
            float x2 = vec[from + i + half];
            vec[from + i] = x1 * cos - x2 * sin;
            vec[from + i + half] = x2 * cos + x1 * sin;
        }
    }

    private float[][] ropeTable(int positions) {
        float[][] table = ropeTable;
        int half = config.rotaryDim() / 2;
        if (table[0].length >= positions * half) {
            return table;
        }
        synchronized (this) {
            float[] cos = new float[positions * half];
            float[] sin = new float[positions * half];
            for (int p = 0; p < positions; p++) {
                for (int i = 0; i < half; i++) {
                    double angle = p * ropeInverseFrequencies[i];
                    cos[p * half + i] = (float) Math.cos(angle);
                    sin[p * half + i] = (float) Math.sin(angle);
                }
            }
            table = new float[][] {cos, sin};
            ropeTable = table;
            return table;
        }
    }

    private static double[] ropeFrequencies(ModelConfig c) {
        int half = c.rotaryDim() / 2;
        double[] inv = new double[half];
        ModelConfig.RopeScaling scaling = c.ropeScaling();
        for (int i = 0; i < half; i++) {
            double f = 1.0 / Math.pow(c.ropeTheta(), (2.0 * i) / c.rotaryDim());
            if (scaling.type().equals("linear")) {
                f /= scaling.factor();
            } else if (scaling.type().equals("llama3")) {
                // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, a smooth blend between.
                double lowWavelength = scaling.originalMaxPositions() / scaling.lowFreqFactor();
                double highWavelength = scaling.originalMaxPositions() / scaling.highFreqFactor();
                double wavelength = 2 * Math.PI / f;
                if (wavelength > lowWavelength) {
                    f /= scaling.factor();
                } else if (wavelength >= highWavelength) {
                    double smooth = (scaling.originalMaxPositions() / wavelength - scaling.lowFreqFactor())
                            / (scaling.highFreqFactor() - scaling.lowFreqFactor());
                    f = (1 - smooth) * f / scaling.factor() + smooth * f;
                }
            }
            inv[i] = f;
        }
        return inv;
    }

    /**
     * Gated (act(gate) * up: Llama's SwiGLU, Gemma's GeGLU) or plain (act in place: GPT-2, GPT-NeoX);
     * returns the hidden activation.
     */
    private Tensor mlpActivation(Buffers b) {
        int dMlp = config.dMlp();
        FloatBuffer in = b.mlpIn.view;
        ModelConfig.Activation act = config.activation();
        // Rows are copied into float[] and back in bulk: element-wise FloatBuffer access cost more than the math.
        if (config.gatedMlp()) {
            FloatBuffer out = b.mlpHidden.view;
            ParallelLoops.forEach(b.rows, r -> {
                float[] gate = new float[dMlp];
                float[] up = new float[dMlp];
                in.get(r * 2 * dMlp, gate);
                in.get(r * 2 * dMlp + dMlp, up);
                activate(act, gate);
                for (int i = 0; i < dMlp; i++) {
                    gate[i] *= up[i];
                }
                out.put(r * dMlp, gate);
            });
            return b.mlpHidden;
        }
        ParallelLoops.forEach(b.rows, r -> {
            float[] row = new float[dMlp];
            in.get(r * dMlp, row);
            activate(act, row);
            in.put(r * dMlp, row);
        });
        return b.mlpIn;
    }

    /** The activation in place; GPT-2's GELU as one loop the JIT vectorises (no call per element). */
    private static void activate(ModelConfig.Activation act, float[] x) {
        if (act == ModelConfig.Activation.GELU_TANH) {
            for (int i = 0; i < x.length; i++) {
                float v = x[i];
                x[i] = 0.5f * v * (1f + tanhRational(0.7978845608028654f * (v + 0.044715f * v * v * v)));
            }
            return;
        }
        for (int i = 0; i < x.length; i++) {
            x[i] = activate(act, x[i]);
        }
    }

    /**
     * tanh as Eigen's rational fit (generic_fast_tanh_float: a degree-13/6 ratio, clamped where
     * fp32 tanh is +-1), within 4e-7 of Math.tanh everywhere; plain float arithmetic, so a loop of
     * it vectorises, where exp() is a call per element. Written here because neither the JDK nor
     * ND4J offers a float tanh usable inside a Java loop.
     */
    static float tanhRational(float x) {
        float c = Math.max(-7.90531110763549805f, Math.min(7.90531110763549805f, x));
        float c2 = c * c;
        float p = c2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
        p = c2 * p + -8.60467152213735e-11f;
        p = c2 * p + 5.12229709037114e-08f;
        p = c2 * p + 1.48572235717979e-05f;
        p = c2 * p + 6.37261928875436e-04f;
        p = c2 * p + 4.89352455891786e-03f;
        float q = c2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
        q = c2 * q + 2.26843463243900e-03f;
        q = c2 * q + 4.89352518554385e-03f;
        return c * p / q;
    }

    private static float activate(ModelConfig.Activation act, float x) {
        return switch (act) {
            case SILU -> x / (1f + (float) Math.exp(-x));
            case GELU_TANH -> geluNew(x);
            case GELU_EXACT -> geluExact(x);
        };
    }

    /** x * Phi(x) with the normal CDF through erfc, accurate in the negative tail too. */
    static float geluExact(float x) {
        return (float) (0.5 * x * erfc(-x / Math.sqrt(2)));
    }

    /**
     * The complementary error function to ~1.2e-7 relative error (the Chebyshev fit of Numerical
     * Recipes, 6.2), written here because java.lang.Math has no erf and ND4J offers it only as an
     * array op; fp32 activations need no more.
     */
    static double erfc(double x) {
        double z = Math.abs(x);
        double t = 1.0 / (1.0 + 0.5 * z);
        double r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
                + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
                + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? r : 2.0 - r;
    }

    /** Gemma-2's tanh soft-cap, cap * tanh(x / cap), in place; a cap of 0 leaves the values as they are. */
    private static void softcap(Tensor t, int rows, double cap) {
        if (cap <= 0) {
            return;
        }
        FloatBuffer v = t.view;
        int width = t.width;
        float c = (float) cap;
        ParallelLoops.forEach(rows, r -> {
            for (int i = r * width; i < (r + 1) * width; i++) {
                v.put(i, c * tanh(v.get(i) / c));
            }
        });
    }

    /** tanh through exp, which the JIT intrinsifies (Math.tanh is not); saturates cleanly at +-1. */
    static float tanh(float x) {
        return (float) (1.0 - 2.0 / (Math.exp(2.0 * x) + 1.0));
    }

    /** GPT-2's tanh approximation of GELU; tanh through exp, which the JIT intrinsifies. */
    static float geluNew(float x) {
        double y = 0.7978845608028654 * (x + 0.044715 * x * x * x);
        double tanh = 1.0 - 2.0 / (Math.exp(2 * y) + 1.0);
        return (float) (0.5 * x * (1.0 + tanh));
    }

    /**
     * Normalizes each row without its gain: RMSNorm (Llama, Gemma) or LayerNorm (GPT-2, GPT-NeoX). When the pass
     * touches {@code scaleHook} the divisor sqrt(var + eps) of each row goes through it first, so
     * a replaced scale (frozen norms) is the one applied.
     */
    private void normalize(Tensor in, Tensor out, int rows, Pass pass, HookPoint scaleHook) {
        normalize(in, out, rows, pass, scaleHook, null);
    }

    /** The same, then {@code fusedGain}'s gain and bias (when not null) in the same pass over each row. */
    private void normalize(Tensor in, Tensor out, int rows, Pass pass, HookPoint scaleHook, Norm fusedGain) {
        boolean layerNorm = config.norm() == ModelConfig.NormKind.LAYER;
        int d = config.dModel();
        FloatBuffer x = in.view;
        FloatBuffer y = out.view;
        double eps = config.normEps();
        FloatBuffer scale = scaleHook != null && pass.request.touches(scaleHook) ? pass.buffers.scale.view : null;
        if (scale != null) {
            ParallelLoops.forEach(rows, r -> scale.put(r, (float) rowScale(x, r * d, d, layerNorm, eps)));
            pass.visit(scaleHook, pass.buffers.scale);
        }
        ParallelLoops.forEach(rows, r -> {
            float[] row = new float[d]; // bulk copies: element-wise FloatBuffer access dominated
            x.get(r * d, row);
            // Four independent sums: one chained double add per element was latency-bound.
            double mean = 0;
            if (layerNorm) {
                double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                int i = 0;
                for (; i + 3 < d; i += 4) {
                    s0 += row[i];
                    s1 += row[i + 1];
                    s2 += row[i + 2];
                    s3 += row[i + 3];
                }
                for (; i < d; i++) {
                    s0 += row[i];
                }
                mean = (s0 + s1 + s2 + s3) / d;
            }
            double inv;
            if (scale == null) {
                double q0 = 0, q1 = 0, q2 = 0, q3 = 0;
                int i = 0;
                for (; i + 3 < d; i += 4) {
                    double c0 = row[i] - mean;
                    double c1 = row[i + 1] - mean;
                    double c2 = row[i + 2] - mean;
                    double c3 = row[i + 3] - mean;
                    q0 += c0 * c0;
                    q1 += c1 * c1;
                    q2 += c2 * c2;
                    q3 += c3 * c3;
                }
                for (; i < d; i++) {
                    double c = row[i] - mean;
                    q0 += c * c;
                }
                inv = 1.0 / Math.sqrt((q0 + q1 + q2 + q3) / d + eps);
            } else {
                inv = 1.0 / scale.get(r);
            }
            for (int i = 0; i < d; i++) {
                row[i] = (float) ((row[i] - mean) * inv);
            }
            if (fusedGain != null) {
                applyGain(row, fusedGain);
            }
            y.put(r * d, row);
        });
    }

    private static double rowScale(FloatBuffer x, int base, int d, boolean layerNorm, double eps) {
        double mean = 0;
        for (int i = 0; layerNorm && i < d; i++) {
            mean += x.get(base + i) / (double) d;
        }
        double squares = 0;
        for (int i = 0; i < d; i++) {
            double c = x.get(base + i) - mean;
            squares += c * c;
        }
        return Math.sqrt(squares / d + eps);
    }

    private static void applyGain(Tensor t, Norm norm, int rows) {
        FloatBuffer y = t.view;
        int d = norm.gain().length;
        ParallelLoops.forEach(rows, r -> {
            float[] row = new float[d];
            y.get(r * d, row);
            applyGain(row, norm);
            y.put(r * d, row);
        });
    }

    /** One row times the norm's gain, plus its bias. */
    private static void applyGain(float[] row, Norm norm) {
        float[] gain = norm.gain();
        float[] bias = norm.bias();
        for (int i = 0; i < row.length; i++) {
            row[i] *= gain[i];
        }
        if (bias != null) {
            for (int i = 0; i < row.length; i++) {
                row[i] += bias[i];
            }
        }
    }

    private static void linear(Linear w, Tensor in, Tensor out) {
        linear(w, in, out, 0.0);
    }

    /** out = in @ W + bias + beta * out (beta 1: accumulate into out). */
    private static void linear(Linear w, Tensor in, Tensor out, double beta) {
        Nd4j.gemm(in.array, w.weight(), out.array, false, w.transposed(), 1.0, beta);
        if (w.bias() != null) {
            out.array.addiRowVector(w.bias());
        }
    }

    /**
     * A norm with its gain (and bias): the normalized rows go through {@code normalizedHook} before
     * the gain when the pass touches it; otherwise the gain is applied in the same pass over the rows.
     */
    private void norm(Tensor in, Tensor out, Pass pass, HookPoint scaleHook, HookPoint normalizedHook, Norm gain) {
        if (pass.request.touches(normalizedHook)) {
            normalize(in, out, pass.buffers.rows, pass, scaleHook, null);
            pass.visit(normalizedHook, out);
            applyGain(out, gain, pass.buffers.rows);
        } else {
            normalize(in, out, pass.buffers.rows, pass, scaleHook, gain);
        }
    }

    // ---------------------------------------------------------------- buffers

    /** A preallocated fp32 array and a view of its memory for the Java loops. */
    private static final class Tensor {
        final INDArray array;
        final FloatBuffer view;
        final int width;

        Tensor(long... shape) {
            array = Nd4j.create(DataType.FLOAT, shape);
            view = array.data().asNioFloat();
            width = (int) shape[shape.length - 1];
        }

        /** The same memory seen with another row width (attention patterns: heads * seqLen per row). */
        Tensor(Tensor same, int width) {
            array = same.array;
            view = same.view;
            this.width = width;
        }
    }

    /** Scratch for one (batch, seqLen) shape, reused across passes of the same shape. */
    private static final class Buffers {
        final int batch;
        final int seqLen;
        final int rows;
        final Tensor resid;
        final Tensor normed;
        final Tensor qkv;
        final Tensor q;
        final Tensor k;
        final Tensor v;
        final Tensor scores;
        final Tensor context;
        final Tensor merged;
        final Tensor attnOut;
        final Tensor mlpIn;
        final Tensor mlpHidden;
        final Tensor mlpOut;
        final Tensor logits;
        final Tensor pattern; // scores after softmax, [batch, heads, q, k] as rows of heads * seqLen
        final Tensor scale; // one norm's divisor per row

        Buffers(ModelConfig c, int batch, int seqLen, boolean withLogits) {
            this.batch = batch;
            this.seqLen = seqLen;
            this.rows = batch * seqLen;
            long bh = (long) batch * c.nHeads();
            resid = new Tensor(rows, c.dModel());
            normed = new Tensor(rows, c.dModel());
            qkv = new Tensor(rows, c.qDim() + 2L * c.kvDim());
            // Head-major copies only for the batched fallback; the host path reads qkv in place.
            q = HOST_BLAS ? null : new Tensor(bh, seqLen, c.headDim());
            k = HOST_BLAS ? null : new Tensor(bh, seqLen, c.headDim());
            v = HOST_BLAS ? null : new Tensor(bh, seqLen, c.headDim());
            scores = new Tensor(bh, seqLen, seqLen);
            context = HOST_BLAS ? null : new Tensor(bh, seqLen, c.headDim());
            merged = new Tensor(rows, c.qDim());
            attnOut = new Tensor(rows, c.dModel());
            boolean gated = c.gatedMlp();
            mlpIn = new Tensor(rows, (gated ? 2L : 1L) * c.dMlp());
            mlpHidden = gated ? new Tensor(rows, c.dMlp()) : null;
            mlpOut = new Tensor(rows, c.dModel());
            logits = withLogits ? new Tensor(rows, c.vocabSize()) : null;
            pattern = new Tensor(scores, c.nHeads() * seqLen);
            scale = new Tensor(rows, 1);
        }

        boolean fits(int batch, int seqLen, boolean withLogits) {
            return this.batch == batch && this.seqLen == seqLen && (logits != null || !withLogits);
        }
    }

    private Buffers buffers(int batch, int seqLen, boolean withLogits) {
        Buffers b = scratch.get();
        if (b == null || !b.fits(batch, seqLen, withLogits)) {
            b = new Buffers(config, batch, seqLen, withLogits);
            scratch.set(b);
        }
        return b;
    }

    /** One pass's request, result and buffers; visits hooks in forward order. */
    private static final class Pass {
        final ForwardRequest request;
        final ForwardResult result;
        final Buffers buffers;
        KvCache cache;  // incremental decoding: attend over the cache, positions from start
        int start;

        Pass(ForwardRequest request, ForwardResult result, Buffers buffers) {
            this.request = request;
            this.result = result;
            this.buffers = buffers;
        }

        void visit(HookPoint hook, Tensor value) {
            if (!request.touches(hook)) {
                return;
            }
            for (Intervention intervention : request.interventionsAt(hook)) {
                intervention.apply(hook, value.view, buffers.batch, buffers.seqLen, value.width);
            }
            if (request.captured().contains(hook)) {
                float[] copy = new float[buffers.rows * value.width];
                value.view.get(0, copy);
                result.put(hook, copy, value.width);
            }
        }
    }
}
