package jobs.bench;

import activations.safetensors.DType;
import activations.safetensors.SafeTensorsWriter;
import activations.tokenizer.Gpt2TokenizerJson;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Gemma-2- and GPT-NeoX-shaped checkpoints with random weights in the exact Hugging Face layout
 * (config.json, BF16 model.safetensors, optionally GPT-2's tokenizer.json): what the forward
 * figures for those families run, and what end-to-end tests run the pipeline on. Speed does not
 * depend on trained weights, so every tensor of one shape shares one random array (the writer
 * keeps references), which keeps a multi-GB-shaped model's heap to one layer's worth.
 */
public final class RandomCheckpoints {

    /** Widths of a model; {@code headDim} is Gemma's own, GPT-NeoX uses d / heads. */
    public record Shape(int layers, int d, int heads, int kvHeads, int headDim, int dMlp, int vocab, int positions) {
    }

    private RandomCheckpoints() {
    }

    /**
     * A Gemma2ForCausalLM with tied embeddings, Gemma-2's default soft-caps (50 / 30), sliding
     * window 4096 on even layers and query_pre_attn_scalar = head_dim.
     */
    public static Path gemma2(Path dir, Shape s, Path gpt2TokenizerFiles) {
        ObjectNode cfg = new ObjectMapper().createObjectNode();
        cfg.putArray("architectures").add("Gemma2ForCausalLM");
        cfg.put("model_type", "gemma2").put("hidden_size", s.d()).put("num_hidden_layers", s.layers())
                .put("num_attention_heads", s.heads()).put("num_key_value_heads", s.kvHeads()).put("head_dim", s.headDim())
                .put("intermediate_size", s.dMlp()).put("vocab_size", s.vocab()).put("max_position_embeddings", s.positions())
                .put("rms_norm_eps", 1e-6).put("rope_theta", 10000.0).put("hidden_activation", "gelu_pytorch_tanh")
                .put("query_pre_attn_scalar", s.headDim()).put("sliding_window", 4096)
                .put("attn_logit_softcapping", 50.0).put("final_logit_softcapping", 30.0)
                .put("tie_word_embeddings", true).put("attention_bias", false);
        bosEos(cfg, s, gpt2TokenizerFiles);
        Weights w = new Weights();
        w.add("model.embed_tokens.weight", s.vocab(), s.d());
        for (int l = 0; l < s.layers(); l++) {
            String p = "model.layers." + l + ".";
            for (String norm : new String[] {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                    "post_feedforward_layernorm"}) {
                w.zeros(p + norm + ".weight", s.d()); // Gemma stores gain - 1
            }
            w.add(p + "self_attn.q_proj.weight", (long) s.heads() * s.headDim(), s.d());
            w.add(p + "self_attn.k_proj.weight", (long) s.kvHeads() * s.headDim(), s.d());
            w.add(p + "self_attn.v_proj.weight", (long) s.kvHeads() * s.headDim(), s.d());
            w.add(p + "self_attn.o_proj.weight", s.d(), (long) s.heads() * s.headDim());
            w.add(p + "mlp.gate_proj.weight", s.dMlp(), s.d());
            w.add(p + "mlp.up_proj.weight", s.dMlp(), s.d());
            w.add(p + "mlp.down_proj.weight", s.d(), s.dMlp());
        }
        w.zeros("model.norm.weight", s.d());
        return w.write(dir, cfg, gpt2TokenizerFiles);
    }

    /** A GPTNeoXForCausalLM as Pythia configures it: rotary_pct 0.25, parallel residual, exact GELU, untied embed_out. */
    public static Path gptNeox(Path dir, Shape s, Path gpt2TokenizerFiles) {
        ObjectNode cfg = new ObjectMapper().createObjectNode();
        cfg.putArray("architectures").add("GPTNeoXForCausalLM");
        cfg.put("model_type", "gpt_neox").put("hidden_size", s.d()).put("num_hidden_layers", s.layers())
                .put("num_attention_heads", s.heads()).put("intermediate_size", s.dMlp()).put("vocab_size", s.vocab())
                .put("max_position_embeddings", s.positions()).put("rotary_pct", 0.25).put("rotary_emb_base", 10000)
                .put("layer_norm_eps", 1e-5).put("hidden_act", "gelu").put("use_parallel_residual", true)
                .put("tie_word_embeddings", false);
        bosEos(cfg, s, gpt2TokenizerFiles);
        Weights w = new Weights();
        int d = s.d();
        w.add("gpt_neox.embed_in.weight", s.vocab(), d);
        for (int l = 0; l < s.layers(); l++) {
            String p = "gpt_neox.layers." + l + ".";
            w.ones(p + "input_layernorm.weight", d).zeros(p + "input_layernorm.bias", d);
            w.ones(p + "post_attention_layernorm.weight", d).zeros(p + "post_attention_layernorm.bias", d);
            w.add(p + "attention.query_key_value.weight", 3L * d, d).zeros(p + "attention.query_key_value.bias", 3 * d);
            w.add(p + "attention.dense.weight", d, d).zeros(p + "attention.dense.bias", d);
            w.add(p + "mlp.dense_h_to_4h.weight", s.dMlp(), d).zeros(p + "mlp.dense_h_to_4h.bias", s.dMlp());
            w.add(p + "mlp.dense_4h_to_h.weight", d, s.dMlp()).zeros(p + "mlp.dense_4h_to_h.bias", d);
        }
        w.ones("gpt_neox.final_layer_norm.weight", d).zeros("gpt_neox.final_layer_norm.bias", d);
        w.add("embed_out.weight", s.vocab(), d);
        return w.write(dir, cfg, gpt2TokenizerFiles);
    }

    private static void bosEos(ObjectNode cfg, Shape s, Path gpt2TokenizerFiles) {
        // With GPT-2's tokenizer, its <|endoftext|> (the last id) is BOS and EOS, as GPT-2 and Pythia use it.
        int special = gpt2TokenizerFiles != null ? 50256 : Math.min(2, s.vocab() - 1);
        cfg.put("bos_token_id", special).put("eos_token_id", special);
    }

    /** N(0, 0.02)-scaled weights, one shared array per shape. */
    private static final class Weights {
        private final SafeTensorsWriter writer = new SafeTensorsWriter();
        private final Map<Long, float[]> randomBySize = new HashMap<>();
        private final SplittableRandom random = new SplittableRandom(20261203);

        Weights add(String name, long rows, long cols) {
            float[] v = randomBySize.computeIfAbsent(rows * cols, n -> {
                float[] a = new float[Math.toIntExact(n)];
                for (int i = 0; i < a.length; i++) {
                    // a sum of three uniforms: roughly normal, std 0.02; only the scale matters here
                    a[i] = (float) ((random.nextDouble() + random.nextDouble() + random.nextDouble() - 1.5) * 0.04);
                }
                return a;
            });
            writer.add(name, DType.BF16, v, rows, cols);
            return this;
        }

        Weights zeros(String name, int n) {
            writer.add(name, DType.BF16, new float[n], n);
            return this;
        }

        Weights ones(String name, int n) {
            float[] v = new float[n];
            java.util.Arrays.fill(v, 1f);
            writer.add(name, DType.BF16, v, n);
            return this;
        }

        Path write(Path dir, ObjectNode cfg, Path gpt2TokenizerFiles) {
            try {
                Files.createDirectories(dir);
                Files.write(dir.resolve("config.json"), new ObjectMapper().writerWithDefaultPrettyPrinter().writeValueAsBytes(cfg));
                writer.write(dir.resolve("model.safetensors"));
                if (gpt2TokenizerFiles != null) {
                    Gpt2TokenizerJson.writeInto(gpt2TokenizerFiles.resolve("encoder.json"), gpt2TokenizerFiles.resolve("vocab.bpe"), dir);
                }
                return dir;
            } catch (IOException e) {
                throw new UncheckedIOException("cannot write the random model into " + dir + ": " + e.getMessage(), e);
            }
        }
    }
}
