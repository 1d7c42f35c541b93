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
import java.nio.file.Path;

/**
 * The forward pass of a decoder-only transformer (Llama family or GPT-2) with TransformerLens hook
 * points, in one file: plain loops over float buffers for norms, RoPE, softmax and activations,
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
        this.ropeInverseFrequencies = config.family() == ModelConfig.Family.LLAMA ? ropeFrequencies(config) : null;
    }

    /** Loads a Hugging Face model directory (config.json + safetensors weights). */
    public static TransformerModel load(Path modelDir) {
        ModelConfig config = ModelConfig.load(modelDir);
        return new TransformerModel(config, TransformerWeights.load(modelDir, config));
    }

    public ModelConfig config() {
        return config;
    }

    /** The model's token embedding matrix [vocab, d] (read-only; used for logit lenses). */
    public INDArray unembedding() {
        return weights.unembed.weight();
    }

    /** The final norm's gain, applied before the unembedding. */
    public float[] finalNormGain() {
        return weights.finalNorm.gain().clone();
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
            normalize(b.resid, b.normed, b.rows, pass, new HookPoint(Kind.LN_FINAL_SCALE, -1));
            pass.visit(new HookPoint(Kind.LN_FINAL_NORMALIZED, -1), b.normed);
            applyGain(b.normed, weights.finalNorm, b.rows);
            // Not b.logits != null: a reused buffer may have room for logits this pass does not want.
            if (wantLogits) {
                linear(weights.unembed, b.normed, b.logits);
                pass.visit(new HookPoint(Kind.LOGITS, -1), b.logits);
            }
        }
        return pass.result;
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
        for (int s = 0; s < tokens.length; s++) {
            for (int t = 0; t < b.seqLen; t++) {
                table.get(tokens[s][t] * d, row);
                resid.put((s * b.seqLen + t) * d, row);
            }
        }
        pass.visit(new HookPoint(Kind.EMBED, -1), b.resid);
        if (weights.positionEmbedding != null) {
            FloatBuffer positions = weights.positionEmbedding.data().asNioFloat();
            FloatBuffer scratch = b.normed.view;
            for (int s = 0; s < tokens.length; s++) {
                for (int t = 0; t < b.seqLen; t++) {
                    positions.get(t * d, row);
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

        normalize(b.resid, b.normed, b.rows, pass, new HookPoint(Kind.LN1_SCALE, l));
        pass.visit(new HookPoint(Kind.LN1_NORMALIZED, l), b.normed);
        applyGain(b.normed, w.norm1(), b.rows);
        linear(w.qkv(), b.normed, b.qkv);
        attention(l, b, pass);
        linear(w.attnOut(), b.merged, b.attnOut);
        pass.visit(new HookPoint(Kind.ATTN_OUT, l), b.attnOut);
        b.resid.array.addi(b.attnOut.array);
        pass.visit(new HookPoint(Kind.RESID_MID, l), b.resid);

        normalize(b.resid, b.normed, b.rows, pass, new HookPoint(Kind.LN2_SCALE, l));
        pass.visit(new HookPoint(Kind.LN2_NORMALIZED, l), b.normed);
        applyGain(b.normed, w.norm2(), b.rows);
        linear(w.mlpIn(), b.normed, b.mlpIn);
        Tensor hidden = mlpActivation(b);
        pass.visit(new HookPoint(Kind.MLP_POST, l), hidden);
        linear(w.mlpOut(), hidden, b.mlpOut);
        pass.visit(new HookPoint(Kind.MLP_OUT, l), b.mlpOut);
        b.resid.array.addi(b.mlpOut.array);
        pass.visit(new HookPoint(Kind.RESID_POST, l), b.resid);
    }

    /** Causal self-attention from the fused q|k|v projection into {@code merged} [rows, qDim]. */
    private void attention(int layer, Buffers b, Pass pass) {
        int heads = config.nHeads();
        int headDim = config.headDim();
        int group = heads / config.nKvHeads();
        int qkvWidth = config.qDim() + 2 * config.kvDim();
        int seqLen = b.seqLen;
        float[][] rope = ropeInverseFrequencies == null ? null : ropeTable(seqLen);
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
                rotate(vec, t, rope);
                q.put(out, vec);
                qkv.get(row + config.qDim() + kvHead * headDim, vec);
                rotate(vec, t, rope);
                k.put(out, vec);
                qkv.get(row + config.qDim() + config.kvDim() + kvHead * headDim, vec);
                v.put(out, vec);
            }
        });

        Nd4j.matmul(b.q.array, b.k.array, b.scores.array, false, true, false);

        double scale = 1.0 / Math.sqrt(headDim);
        if (config.scaleAttnByInverseLayer()) {
            scale /= layer + 1;
        }
        float scoreScale = (float) scale;
        int window = config.slidingWindow();
        FloatBuffer scores = b.scores.view;
        ParallelLoops.forEach(b.batch * heads, bh -> {
            for (int i = 0; i < seqLen; i++) {
                int rowStart = (bh * seqLen + i) * seqLen;
                int first = window > 0 ? Math.max(0, i - window + 1) : 0;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = first; j <= i; j++) {
                    max = Math.max(max, scores.get(rowStart + j) * scoreScale);
                }
                double sum = 0;
                for (int j = first; j <= i; j++) {
                    float e = (float) Math.exp(scores.get(rowStart + j) * scoreScale - max);
                    scores.put(rowStart + j, e);
                    sum += e;
                }
                float inv = (float) (1.0 / sum);
                for (int j = 0; j < seqLen; j++) {
                    boolean visible = j >= first && j <= i;
                    scores.put(rowStart + j, visible ? scores.get(rowStart + j) * inv : 0f);
                }
            }
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

    /** Hugging Face's rotate_half RoPE: pairs (i, i + headDim/2) rotate by position * frequency i. */
    private static void rotate(float[] vec, int position, float[][] rope) {
        if (rope == null) {
            return;
        }
        int half = vec.length / 2;
        int base = position * half;
        for (int i = 0; i < half; i++) {
            float cos = rope[0][base + i];
            float sin = rope[1][base + i];
            float x1 = vec[i];
            float x2 = vec[i + half];
            vec[i] = x1 * cos - x2 * sin;
            vec[i + half] = x2 * cos + x1 * sin;
        }
    }

    private float[][] ropeTable(int positions) {
        float[][] table = ropeTable;
        int half = config.headDim() / 2;
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
        int half = c.headDim() / 2;
        double[] inv = new double[half];
        ModelConfig.RopeScaling scaling = c.ropeScaling();
        for (int i = 0; i < half; i++) {
            double f = 1.0 / Math.pow(c.ropeTheta(), (2.0 * i) / c.headDim());
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

    /** SwiGLU (Llama: silu(gate) * up) or gelu_new (GPT-2, in place); returns the hidden activation. */
    private Tensor mlpActivation(Buffers b) {
        int dMlp = config.dMlp();
        FloatBuffer in = b.mlpIn.view;
        if (config.family() == ModelConfig.Family.LLAMA) {
            FloatBuffer out = b.mlpHidden.view;
            ParallelLoops.forEach(b.rows, r -> {
                int gate = r * 2 * dMlp;
                int up = gate + dMlp;
                for (int i = 0; i < dMlp; i++) {
                    float g = in.get(gate + i);
                    out.put(r * dMlp + i, g / (1f + (float) Math.exp(-g)) * in.get(up + i));
                }
            });
            return b.mlpHidden;
        }
        ParallelLoops.forEach(b.rows, r -> {
            for (int i = r * dMlp; i < (r + 1) * dMlp; i++) {
                in.put(i, geluNew(in.get(i)));
            }
        });
        return b.mlpIn;
    }

    /** GPT-2's tanh approximation of GELU; tanh through exp, which the JIT intrinsifies. */
    static float geluNew(float x) {
        double y = 0.7978845608028654 * (x + 0.044715 * x * x * x);
        double tanh = 1.0 - 2.0 / (Math.exp(2 * y) + 1.0);
        return (float) (0.5 * x * (1.0 + tanh));
    }

    /**
     * Normalizes each row without its gain: RMSNorm (Llama) or LayerNorm (GPT-2). When the pass
     * touches {@code scaleHook} the divisor sqrt(var + eps) of each row goes through it first, so
     * a replaced scale (frozen norms) is the one applied.
     */
    private void normalize(Tensor in, Tensor out, int rows, Pass pass, HookPoint scaleHook) {
        boolean layerNorm = config.family() == ModelConfig.Family.GPT2;
        int d = config.dModel();
        FloatBuffer x = in.view;
        FloatBuffer y = out.view;
        double eps = config.normEps();
        FloatBuffer scale = pass.request.touches(scaleHook) ? pass.buffers.scale.view : null;
        if (scale != null) {
            ParallelLoops.forEach(rows, r -> scale.put(r, (float) rowScale(x, r * d, d, layerNorm, eps)));
            pass.visit(scaleHook, pass.buffers.scale);
        }
        ParallelLoops.forEach(rows, r -> {
            int base = r * d;
            double mean = 0;
            if (layerNorm) {
                for (int i = 0; i < d; i++) {
                    mean += x.get(base + i);
                }
                mean /= d;
            }
            double squares = 0;
            for (int i = 0; i < d; i++) {
                double c = x.get(base + i) - mean;
                squares += c * c;
            }
            double inv = scale == null ? 1.0 / Math.sqrt(squares / d + eps) : 1.0 / scale.get(r);
            for (int i = 0; i < d; i++) {
                y.put(base + i, (float) ((x.get(base + i) - mean) * inv));
            }
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
        float[] gain = norm.gain();
        float[] bias = norm.bias();
        int d = gain.length;
        ParallelLoops.forEach(rows, r -> {
            int base = r * d;
            for (int i = 0; i < d; i++) {
                float value = y.get(base + i) * gain[i];
                y.put(base + i, bias == null ? value : value + bias[i]);
            }
        });
    }

    private static void linear(Linear w, Tensor in, Tensor out) {
        Nd4j.gemm(in.array, w.weight(), out.array, false, w.transposed(), 1.0, 0.0);
        if (w.bias() != null) {
            out.array.addiRowVector(w.bias());
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
            q = new Tensor(bh, seqLen, c.headDim());
            k = new Tensor(bh, seqLen, c.headDim());
            v = new Tensor(bh, seqLen, c.headDim());
            scores = new Tensor(bh, seqLen, seqLen);
            context = new Tensor(bh, seqLen, c.headDim());
            merged = new Tensor(rows, c.qDim());
            attnOut = new Tensor(rows, c.dModel());
            boolean gated = c.family() == ModelConfig.Family.LLAMA;
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
