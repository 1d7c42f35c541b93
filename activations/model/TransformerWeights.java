package activations.model;

import activations.safetensors.SafeTensors;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A checkpoint's weights in fp32 ND4J arrays, in one layout for every family: every linear layer
 * is a {@link Linear} applied with one gemm; Llama's and Gemma's q/k/v and gate/up projections are
 * fused at load time so each is a single gemm, and GPT-NeoX's per-head fused q|k|v is reordered to
 * the same [all q | all k | all v] layout. Norm gains are stored as applied (Gemma's {@code 1 + w}).
 * Every tensor's shape is checked against config.json.
 */
final class TransformerWeights {

    /** y = x W (+ b), W stored [in, out], or [out, in] with {@code transposed} (Hugging Face nn.Linear). */
    record Linear(INDArray weight, boolean transposed, INDArray bias, int in, int out) {
    }

    /** A norm's gain and (LayerNorm only) bias, small enough to apply in Java loops. */
    record Norm(float[] gain, float[] bias) {
    }

    /** norm2 is the norm before the MLP; postAttnNorm and postMlpNorm are Gemma-2's sandwich norms (else null). */
    record Layer(Norm norm1, Linear qkv, Linear attnOut, Norm norm2, Linear mlpIn, Linear mlpOut,
                 Norm postAttnNorm, Norm postMlpNorm) {
    }

    final INDArray tokenEmbedding;      // [vocab, d]
    final INDArray positionEmbedding;   // [positions, d], GPT-2 only
    final List<Layer> layers;
    final Norm finalNorm;
    final Linear unembed;               // d -> vocab

    private TransformerWeights(INDArray tokenEmbedding, INDArray positionEmbedding, List<Layer> layers,
                               Norm finalNorm, Linear unembed) {
        this.tokenEmbedding = tokenEmbedding;
        this.positionEmbedding = positionEmbedding;
        this.layers = layers;
        this.finalNorm = finalNorm;
        this.unembed = unembed;
    }

    static TransformerWeights load(Path dir, ModelConfig config) {
        try (CheckpointFiles files = CheckpointFiles.open(dir)) {
            return switch (config.family()) {
                case GPT2 -> loadGpt2(files, config);
                case GPT_NEOX -> loadGptNeox(files, config);
                case LLAMA, GEMMA2 -> loadLlama(files, config);
            };
        }
    }

    private static TransformerWeights loadLlama(CheckpointFiles files, ModelConfig c) {
        Loader in = new Loader(files, c);
        int d = c.dModel();
        INDArray embedding;
        if (files.has("model.embed_tokens.weight")) {
            embedding = in.matrix("model.embed_tokens.weight", c.vocabSize(), d);
        } else if (c.tiedEmbeddings() && files.has("lm_head.weight")) {
            // Tied checkpoints may store only lm_head (the safetensors metadata maps one onto the other).
            embedding = in.matrix("lm_head.weight", c.vocabSize(), d);
        } else {
            throw new IllegalArgumentException("the weights have no model.embed_tokens.weight; config.json and the weights do not match");
        }
        List<Layer> layers = new ArrayList<>();
        for (int l = 0; l < c.nLayers(); l++) {
            String p = "model.layers." + l + ".";
            INDArray q = in.matrix(p + "self_attn.q_proj.weight", c.qDim(), d);
            INDArray k = in.matrix(p + "self_attn.k_proj.weight", c.kvDim(), d);
            INDArray v = in.matrix(p + "self_attn.v_proj.weight", c.kvDim(), d);
            INDArray qkvBias = null;
            if (c.qkvBias()) {
                qkvBias = Nd4j.concat(1,
                        in.row(p + "self_attn.q_proj.bias", c.qDim()),
                        in.row(p + "self_attn.k_proj.bias", c.kvDim()),
                        in.row(p + "self_attn.v_proj.bias", c.kvDim()));
            }
            Linear qkv = new Linear(Nd4j.concat(0, q, k, v), true, qkvBias, d, c.qDim() + 2 * c.kvDim());
            Linear o = new Linear(in.matrix(p + "self_attn.o_proj.weight", d, c.qDim()), true,
                    c.outputBias() ? in.row(p + "self_attn.o_proj.bias", d) : null, c.qDim(), d);
            INDArray gate = in.matrix(p + "mlp.gate_proj.weight", c.dMlp(), d);
            INDArray up = in.matrix(p + "mlp.up_proj.weight", c.dMlp(), d);
            INDArray gateUpBias = c.mlpBias() ? Nd4j.concat(1,
                    in.row(p + "mlp.gate_proj.bias", c.dMlp()), in.row(p + "mlp.up_proj.bias", c.dMlp())) : null;
            Linear gateUp = new Linear(Nd4j.concat(0, gate, up), true, gateUpBias, d, 2 * c.dMlp());
            Linear down = new Linear(in.matrix(p + "mlp.down_proj.weight", d, c.dMlp()), true,
                    c.mlpBias() ? in.row(p + "mlp.down_proj.bias", d) : null, c.dMlp(), d);
            // Gemma-2's post_attention_layernorm normalizes the attention output; Llama's is the pre-MLP norm.
            if (c.sandwichNorms()) {
                layers.add(new Layer(in.gain(p + "input_layernorm.weight", d), qkv, o,
                        in.gain(p + "pre_feedforward_layernorm.weight", d), gateUp, down,
                        in.gain(p + "post_attention_layernorm.weight", d), in.gain(p + "post_feedforward_layernorm.weight", d)));
            } else {
                layers.add(new Layer(in.gain(p + "input_layernorm.weight", d), qkv, o,
                        in.gain(p + "post_attention_layernorm.weight", d), gateUp, down, null, null));
            }
        }
        Norm finalNorm = in.gain("model.norm.weight", d);
        INDArray head;
        if (c.tiedEmbeddings()) {
            head = embedding;
        } else if (files.has("lm_head.weight")) {
            head = in.matrix("lm_head.weight", c.vocabSize(), d);
        } else {
            throw new IllegalArgumentException("config.json says tie_word_embeddings=false but the weights have no "
                    + "lm_head.weight; set tie_word_embeddings=true if the model shares its embedding");
        }
        return new TransformerWeights(embedding, null, layers, finalNorm, new Linear(head, true, null, d, c.vocabSize()));
    }

    private static TransformerWeights loadGpt2(CheckpointFiles files, ModelConfig c) {
        // The original "gpt2" upload names tensors without the "transformer." prefix.
        String root = files.has("transformer.wte.weight") ? "transformer." : "";
        Loader in = new Loader(files, c);
        int d = c.dModel();
        INDArray wte = in.matrix(root + "wte.weight", c.vocabSize(), d);
        INDArray wpe = in.matrix(root + "wpe.weight", c.maxPositions(), d);
        List<Layer> layers = new ArrayList<>();
        for (int l = 0; l < c.nLayers(); l++) {
            String p = root + "h." + l + ".";
            // GPT-2's Conv1D stores weights [in, out]: no transpose.
            Linear qkv = new Linear(in.matrix(p + "attn.c_attn.weight", d, 3 * d), false,
                    in.row(p + "attn.c_attn.bias", 3 * d), d, 3 * d);
            Linear o = new Linear(in.matrix(p + "attn.c_proj.weight", d, d), false, in.row(p + "attn.c_proj.bias", d), d, d);
            Linear fc = new Linear(in.matrix(p + "mlp.c_fc.weight", d, c.dMlp()), false,
                    in.row(p + "mlp.c_fc.bias", c.dMlp()), d, c.dMlp());
            Linear proj = new Linear(in.matrix(p + "mlp.c_proj.weight", c.dMlp(), d), false,
                    in.row(p + "mlp.c_proj.bias", d), c.dMlp(), d);
            layers.add(new Layer(
                    new Norm(in.vector(p + "ln_1.weight", d), in.vector(p + "ln_1.bias", d)), qkv, o,
                    new Norm(in.vector(p + "ln_2.weight", d), in.vector(p + "ln_2.bias", d)), fc, proj, null, null));
        }
        Norm finalNorm = new Norm(in.vector(root + "ln_f.weight", d), in.vector(root + "ln_f.bias", d));
        return new TransformerWeights(wte, wpe, layers, finalNorm, new Linear(wte, true, null, d, c.vocabSize()));
    }

    private static TransformerWeights loadGptNeox(CheckpointFiles files, ModelConfig c) {
        Loader in = new Loader(files, c);
        int d = c.dModel();
        INDArray embedding = in.matrix("gpt_neox.embed_in.weight", c.vocabSize(), d);
        List<Layer> layers = new ArrayList<>();
        for (int l = 0; l < c.nLayers(); l++) {
            String p = "gpt_neox.layers." + l + ".";
            float[] qkvWeight = headMajorQkvToBlocks(in.read(p + "attention.query_key_value.weight", 3L * d, d), d, c);
            INDArray qkvBias = c.qkvBias() ? Nd4j.create(headMajorQkvToBlocks(
                    in.read(p + "attention.query_key_value.bias", 3L * d), 1, c), new long[] {1, 3L * d}, DataType.FLOAT) : null;
            Linear qkv = new Linear(Nd4j.create(qkvWeight, new long[] {3L * d, d}, DataType.FLOAT), true, qkvBias, d, 3 * d);
            Linear dense = new Linear(in.matrix(p + "attention.dense.weight", d, d), true,
                    c.outputBias() ? in.row(p + "attention.dense.bias", d) : null, d, d);
            Linear up = new Linear(in.matrix(p + "mlp.dense_h_to_4h.weight", c.dMlp(), d), true,
                    in.row(p + "mlp.dense_h_to_4h.bias", c.dMlp()), d, c.dMlp());
            Linear down = new Linear(in.matrix(p + "mlp.dense_4h_to_h.weight", d, c.dMlp()), true,
                    in.row(p + "mlp.dense_4h_to_h.bias", d), c.dMlp(), d);
            layers.add(new Layer(in.layerNorm(p + "input_layernorm", d), qkv, dense,
                    in.layerNorm(p + "post_attention_layernorm", d), up, down, null, null));
        }
        Norm finalNorm = in.layerNorm("gpt_neox.final_layer_norm", d);
        INDArray head;
        if (c.tiedEmbeddings()) {
            head = embedding;
        } else if (files.has("embed_out.weight")) {
            head = in.matrix("embed_out.weight", c.vocabSize(), d);
        } else {
            throw new IllegalArgumentException("config.json says tie_word_embeddings=false but the weights have no "
                    + "embed_out.weight; set tie_word_embeddings=true if the model shares its embedding");
        }
        return new TransformerWeights(embedding, null, layers, finalNorm, new Linear(head, true, null, d, c.vocabSize()));
    }

    /**
     * GPT-NeoX's query_key_value output is per head [q_h | k_h | v_h] (row h*3*hs + part*hs + i of
     * the [3d, d] weight); the forward pass reads [all q | all k | all v] (row part*d + h*hs + i).
     */
    private static float[] headMajorQkvToBlocks(float[] rows, int width, ModelConfig c) {
        int hs = c.headDim();
        int d = c.dModel();
        float[] out = new float[rows.length];
        for (int h = 0; h < c.nHeads(); h++) {
            for (int part = 0; part < 3; part++) {
                for (int i = 0; i < hs; i++) {
                    System.arraycopy(rows, (h * 3 * hs + part * hs + i) * width, out, (part * d + h * hs + i) * width, width);
                }
            }
        }
        return out;
    }

    /** Reads tensors with the shape config.json implies, or fails naming both shapes. */
    private record Loader(CheckpointFiles files, ModelConfig config) {

        INDArray matrix(String name, long rows, long cols) {
            float[] data = read(name, rows, cols);
            return Nd4j.create(data, new long[] {rows, cols}, DataType.FLOAT);
        }

        INDArray row(String name, long n) {
            return Nd4j.create(read(name, n), new long[] {1, n}, DataType.FLOAT);
        }

        float[] vector(String name, long n) {
            return read(name, n);
        }

        /** An RMSNorm gain as applied: the stored weight plus the family's offset (Gemma stores w for 1 + w). */
        Norm gain(String name, int n) {
            float[] g = read(name, n);
            for (int i = 0; i < n; i++) {
                g[i] += config.normGainOffset();
            }
            return new Norm(g, null);
        }

        Norm layerNorm(String prefix, int n) {
            return new Norm(read(prefix + ".weight", n), read(prefix + ".bias", n));
        }

        float[] read(String name, long... expected) {
            SafeTensors.TensorInfo info = files.info(name);
            if (!Arrays.equals(info.shape(), expected)) {
                throw new IllegalArgumentException("tensor '" + name + "' has shape " + info.shapeString()
                        + " but config.json implies " + Arrays.toString(expected) + " (" + describe(config)
                        + "); the config and the weights do not match");
            }
            return files.floats(name);
        }

        private static String describe(ModelConfig c) {
            return "d_model " + c.dModel() + ", heads " + c.nHeads() + "/" + c.nKvHeads() + " kv, head_dim "
                    + c.headDim() + ", d_mlp " + c.dMlp() + ", vocab " + c.vocabSize();
        }
    }
}
