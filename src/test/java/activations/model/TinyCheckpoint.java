package activations.model;

import activations.safetensors.SafeTensorsWriter;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/** Writes small random checkpoints in Hugging Face layout (config.json + model.safetensors). */
public final class TinyCheckpoint implements ReferenceTransformer.Spec {

    final boolean gpt2;
    final int d;
    final int layers;
    final int heads;
    final int kvHeads;
    final int dMlp;
    final int vocab;
    final int positions;
    final boolean qkvBias;
    final boolean tied;
    final int window;
    final Map<String, float[]> weights = new LinkedHashMap<>();
    private final Map<String, long[]> shapes = new LinkedHashMap<>();

    private TinyCheckpoint(boolean gpt2, int d, int layers, int heads, int kvHeads, int dMlp, int vocab,
                           int positions, boolean qkvBias, boolean tied, int window) {
        this.gpt2 = gpt2;
        this.d = d;
        this.layers = layers;
        this.heads = heads;
        this.kvHeads = kvHeads;
        this.dMlp = dMlp;
        this.vocab = vocab;
        this.positions = positions;
        this.qkvBias = qkvBias;
        this.tied = tied;
        this.window = window;
    }

    public static TinyCheckpoint gpt2(int d, int layers, int heads, int vocab, int positions, long seed) {
        TinyCheckpoint c = new TinyCheckpoint(true, d, layers, heads, heads, 4 * d, vocab, positions, true, true, 0);
        Random r = new Random(seed);
        c.put("transformer.wte.weight", r, 0.5, vocab, d);
        c.put("transformer.wpe.weight", r, 0.3, positions, d);
        for (int l = 0; l < layers; l++) {
            String p = "transformer.h." + l + ".";
            c.putAround(p + "ln_1.weight", r, 1, d);
            c.put(p + "ln_1.bias", r, 0.1, d);
            c.put(p + "attn.c_attn.weight", r, 0.4, d, 3 * d);
            c.put(p + "attn.c_attn.bias", r, 0.1, 3 * d);
            c.put(p + "attn.c_proj.weight", r, 0.4, d, d);
            c.put(p + "attn.c_proj.bias", r, 0.1, d);
            c.putAround(p + "ln_2.weight", r, 1, d);
            c.put(p + "ln_2.bias", r, 0.1, d);
            c.put(p + "mlp.c_fc.weight", r, 0.4, d, 4 * d);
            c.put(p + "mlp.c_fc.bias", r, 0.1, 4 * d);
            c.put(p + "mlp.c_proj.weight", r, 0.3, 4 * d, d);
            c.put(p + "mlp.c_proj.bias", r, 0.1, d);
        }
        c.putAround("transformer.ln_f.weight", r, 1, d);
        c.put("transformer.ln_f.bias", r, 0.1, d);
        return c;
    }

    /** A Llama-block model; qkvBias and untied embeddings make it Qwen2-like, window Mistral-like. */
    public static TinyCheckpoint llama(int d, int layers, int heads, int kvHeads, int dMlp, int vocab, int positions,
                                boolean qkvBias, boolean tied, int window, long seed) {
        TinyCheckpoint c = new TinyCheckpoint(false, d, layers, heads, kvHeads, dMlp, vocab, positions, qkvBias, tied, window);
        Random r = new Random(seed);
        int hd = d / heads;
        c.put("model.embed_tokens.weight", r, 0.5, vocab, d);
        for (int l = 0; l < layers; l++) {
            String p = "model.layers." + l + ".";
            c.putAround(p + "input_layernorm.weight", r, 1, d);
            c.put(p + "self_attn.q_proj.weight", r, 0.5, heads * hd, d);
            c.put(p + "self_attn.k_proj.weight", r, 0.5, kvHeads * hd, d);
            c.put(p + "self_attn.v_proj.weight", r, 0.5, kvHeads * hd, d);
            if (qkvBias) {
                c.put(p + "self_attn.q_proj.bias", r, 0.2, heads * hd);
                c.put(p + "self_attn.k_proj.bias", r, 0.2, kvHeads * hd);
                c.put(p + "self_attn.v_proj.bias", r, 0.2, kvHeads * hd);
            }
            c.put(p + "self_attn.o_proj.weight", r, 0.4, d, heads * hd);
            c.putAround(p + "post_attention_layernorm.weight", r, 1, d);
            c.put(p + "mlp.gate_proj.weight", r, 0.4, dMlp, d);
            c.put(p + "mlp.up_proj.weight", r, 0.4, dMlp, d);
            c.put(p + "mlp.down_proj.weight", r, 0.3, d, dMlp);
        }
        c.putAround("model.norm.weight", r, 1, d);
        if (!tied) {
            c.put("lm_head.weight", r, 0.5, vocab, d);
        }
        return c;
    }

    private void put(String name, Random r, double scale, long... shape) {
        long n = 1;
        for (long s : shape) {
            n *= s;
        }
        float[] v = new float[(int) n];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (r.nextGaussian() * scale);
        }
        weights.put(name, v);
        shapes.put(name, shape);
    }

    private void putAround(String name, Random r, double center, int n) {
        put(name, r, 0.2, n);
        float[] v = weights.get(name);
        for (int i = 0; i < n; i++) {
            v[i] += (float) center;
        }
    }

    /** Writes config.json and model.safetensors; {@code rename} maps tensor names on disk. */
    Path write(Path dir, java.util.function.UnaryOperator<String> rename) {
        try {
            Files.createDirectories(dir);
            ObjectMapper json = new ObjectMapper();
            ObjectNode cfg = json.createObjectNode();
            if (gpt2) {
                cfg.putArray("architectures").add("GPT2LMHeadModel");
                cfg.put("model_type", "gpt2").put("n_embd", d).put("n_layer", layers).put("n_head", heads)
                        .put("n_positions", positions).put("vocab_size", vocab).put("layer_norm_epsilon", 1e-5)
                        .put("activation_function", "gelu_new");
            } else {
                String arch = qkvBias ? "Qwen2ForCausalLM" : window > 0 ? "MistralForCausalLM" : "LlamaForCausalLM";
                cfg.putArray("architectures").add(arch);
                cfg.put("hidden_size", d).put("num_hidden_layers", layers).put("num_attention_heads", heads)
                        .put("num_key_value_heads", kvHeads).put("intermediate_size", dMlp).put("vocab_size", vocab)
                        .put("max_position_embeddings", positions).put("rms_norm_eps", 1e-6)
                        .put("rope_theta", 10000.0).put("tie_word_embeddings", tied).put("hidden_act", "silu");
                if (window > 0) {
                    cfg.put("sliding_window", window);
                }
            }
            Files.write(dir.resolve("config.json"), json.writerWithDefaultPrettyPrinter().writeValueAsBytes(cfg));
            SafeTensorsWriter writer = new SafeTensorsWriter();
            weights.forEach((name, v) -> writer.addF32(rename.apply(name), v, shapes.get(name)));
            writer.write(dir.resolve("model.safetensors"));
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    long[] shape(String name) {
        return shapes.get(name).clone();
    }

    public Path write(Path dir) {
        return write(dir, n -> n);
    }

    @Override public boolean gpt2() { return gpt2; }
    @Override public int d() { return d; }
    @Override public int layers() { return layers; }
    @Override public int heads() { return heads; }
    @Override public int kvHeads() { return kvHeads; }
    @Override public int headDim() { return d / heads; }
    @Override public int dMlp() { return dMlp; }
    @Override public double eps() { return gpt2 ? 1e-5 : 1e-6; }
    @Override public double ropeTheta() { return 10000.0; }
    @Override public int slidingWindow() { return window; }
}
