package activations.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;

/**
 * The architecture of a Hugging Face checkpoint, read from its {@code config.json}. Four families
 * cover the supported architectures: the Llama block (Llama, Mistral, Qwen2: RMSNorm, RoPE,
 * SwiGLU, grouped-query attention, optional attention biases), GPT-2 (LayerNorm, learned
 * positions, gelu_new, Conv1D weights stored [in, out]), Gemma-2 (the Llama block with
 * {@code (1 + weight)} RMSNorm gains, sandwich norms, GeGLU, soft-capped attention and logits,
 * sliding window on some layers, scaled embeddings) and GPT-NeoX/Pythia (LayerNorm, partial
 * rotary, parallel or sequential residual, exact GELU, a fused per-head q|k|v weight).
 *
 * <p>The forward pass never asks which family it runs: the components after {@code eosTokenId}
 * are the switches that tell the families apart, each set by the family's parser.
 */
public record ModelConfig(
        Family family,
        String architecture,
        int dModel,
        int nLayers,
        int nHeads,
        int nKvHeads,
        int headDim,
        int dMlp,
        int vocabSize,
        int maxPositions,
        double normEps,
        double ropeTheta,
        RopeScaling ropeScaling,
        boolean tiedEmbeddings,
        boolean qkvBias,
        boolean outputBias,
        boolean mlpBias,
        int slidingWindow,
        boolean scaleAttnByInverseLayer,
        int bosTokenId,
        int eosTokenId,
        NormKind norm,
        float normGainOffset,
        boolean sandwichNorms,
        boolean parallelResidual,
        Activation activation,
        boolean gatedMlp,
        int rotaryDim,
        double attentionScale,
        double attentionSoftcap,
        double finalSoftcap,
        float embeddingScale,
        List<Boolean> slidingLayers) {

    public enum Family { LLAMA, GPT2, GEMMA2, GPT_NEOX }

    /** RMSNorm (no mean, no bias) or LayerNorm (mean-centred, with bias). */
    public enum NormKind { RMS, LAYER }

    /** The MLP's nonlinearity; with {@code gatedMlp} it is applied to the gate and multiplies the up projection. */
    public enum Activation { SILU, GELU_TANH, GELU_EXACT }

    /** RoPE frequency scaling ("linear" or Llama 3's "llama3"); {@code NONE} leaves RoPE as is. */
    public record RopeScaling(String type, double factor, double lowFreqFactor, double highFreqFactor,
                              int originalMaxPositions) {
        public static final RopeScaling NONE = new RopeScaling("none", 1, 1, 1, 0);
    }

    public static final List<String> SUPPORTED = List.of(
            "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "GPT2LMHeadModel",
            "Gemma2ForCausalLM", "GPTNeoXForCausalLM");

    public static ModelConfig load(Path modelDir) {
        Path file = modelDir.resolve("config.json");
        JsonNode json;
        try {
            json = new ObjectMapper().readTree(Files.readAllBytes(file));
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException(modelDir + " is not a model directory: config.json is missing "
                    + "(expected a Hugging Face checkpoint: config.json, model.safetensors, tokenizer.json)");
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": not valid JSON (" + e.getMessage() + ")");
        }
        return parse(json, file.toString());
    }

    static ModelConfig parse(JsonNode json, String source) {
        String architecture = json.path("architectures").path(0).asText("");
        String modelType = json.path("model_type").asText("");
        if (architecture.isEmpty()) {
            architecture = switch (modelType) {
                case "llama" -> "LlamaForCausalLM";
                case "mistral" -> "MistralForCausalLM";
                case "qwen2" -> "Qwen2ForCausalLM";
                case "gpt2" -> "GPT2LMHeadModel";
                case "gemma2" -> "Gemma2ForCausalLM";
                case "gpt_neox" -> "GPTNeoXForCausalLM";
                default -> modelType;
            };
        }
        switch (architecture) {
            case "GPT2LMHeadModel":
                return parseGpt2(json, source);
            case "Gemma2ForCausalLM":
                return parseGemma2(json, source);
            case "GPTNeoXForCausalLM":
                return parseGptNeox(json, source);
            case "LlamaForCausalLM":
            case "MistralForCausalLM":
            case "Qwen2ForCausalLM":
                return parseLlama(json, source, architecture);
            default:
                throw new IllegalArgumentException(source + ": unsupported architecture '" + architecture
                        + "'; Spindle runs " + String.join(", ", SUPPORTED));
        }
    }

    private static ModelConfig parseLlama(JsonNode json, String source, String architecture) {
        int d = required(json, "hidden_size", source);
        int heads = required(json, "num_attention_heads", source);
        int kvHeads = json.path("num_key_value_heads").asInt(heads);
        int headDim = json.hasNonNull("head_dim") ? json.get("head_dim").asInt() : d / heads;
        String act = json.path("hidden_act").asText("silu");
        if (!act.equals("silu")) {
            throw new IllegalArgumentException(source + ": hidden_act '" + act + "' is not supported for "
                    + architecture + " (only silu)");
        }
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException(source + ": num_attention_heads " + heads
                    + " is not a multiple of num_key_value_heads " + kvHeads);
        }
        boolean qwen = architecture.equals("Qwen2ForCausalLM");
        boolean attentionBias = json.path("attention_bias").asBoolean(false);
        int window = 0;
        if (json.hasNonNull("sliding_window")
                && (!qwen || json.path("use_sliding_window").asBoolean(false))) {
            window = json.get("sliding_window").asInt();
        }
        return new ModelConfig(Family.LLAMA, architecture, d,
                required(json, "num_hidden_layers", source), heads, kvHeads, headDim,
                required(json, "intermediate_size", source),
                required(json, "vocab_size", source),
                json.path("max_position_embeddings").asInt(2048),
                json.path("rms_norm_eps").asDouble(1e-6),
                ropeTheta(json, 10000.0),
                ropeScaling(ropeNode(json), source), // transformers 5: rope_parameters
                json.path("tie_word_embeddings").asBoolean(false),
                qwen || attentionBias, attentionBias,
                json.path("mlp_bias").asBoolean(false),
                window, false,
                json.path("bos_token_id").asInt(-1), eosTokenId(json),
                NormKind.RMS, 0f, false, false, Activation.SILU, true, headDim, 1.0 / Math.sqrt(headDim),
                0, 0, 1f, everyLayer(required(json, "num_hidden_layers", source), true));
    }

    /**
     * Gemma-2 as transformers' {@code modeling_gemma2.py} runs it. Defaults are Gemma2Config's for
     * keys a config.json leaves out; an explicit null softcap or window switches the feature off.
     */
    private static ModelConfig parseGemma2(JsonNode json, String source) {
        String arch = "Gemma2ForCausalLM";
        int d = required(json, "hidden_size", source);
        int layers = required(json, "num_hidden_layers", source);
        int heads = required(json, "num_attention_heads", source);
        int kvHeads = json.path("num_key_value_heads").asInt(heads);
        int headDim = json.has("head_dim") ? required(json, "head_dim", source) : 256;
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException(source + ": num_attention_heads " + heads
                    + " is not a multiple of num_key_value_heads " + kvHeads);
        }
        if (json.path("use_bidirectional_attention").asBoolean(false)) {
            throw new IllegalArgumentException(source + ": use_bidirectional_attention=true is not supported for "
                    + arch + " (Spindle runs causal language models)");
        }
        String actName = json.has("hidden_activation") && !json.get("hidden_activation").isNull()
                ? json.get("hidden_activation").asText() : json.path("hidden_act").asText("gelu_pytorch_tanh");
        Activation act = gelu(actName, source, arch);
        int window = json.has("sliding_window") ? json.get("sliding_window").asInt(0) : 4096;
        boolean bias = json.path("attention_bias").asBoolean(false);
        double queryScalar = json.has("query_pre_attn_scalar") ? json.get("query_pre_attn_scalar").asDouble() : 256;
        if (!(queryScalar > 0)) {
            throw new IllegalArgumentException(source + ": query_pre_attn_scalar must be positive");
        }
        return new ModelConfig(Family.GEMMA2, arch, d, layers, heads, kvHeads, headDim,
                required(json, "intermediate_size", source),
                required(json, "vocab_size", source),
                json.path("max_position_embeddings").asInt(8192),
                json.path("rms_norm_eps").asDouble(1e-6),
                ropeTheta(json, 10000.0),
                ropeScaling(ropeNode(json), source),
                json.path("tie_word_embeddings").asBoolean(true),
                bias, bias, false, window, false,
                json.path("bos_token_id").asInt(2), json.has("eos_token_id") ? eosTokenId(json) : 1,
                NormKind.RMS, 1f, true, false, act, true, headDim, 1.0 / Math.sqrt(queryScalar),
                softcap(json, "attn_logit_softcapping", 50.0, source),
                softcap(json, "final_logit_softcapping", 30.0, source),
                (float) Math.sqrt(d), gemmaSlidingLayers(json, layers, source));
    }

    /**
     * Which Gemma-2 layers use the sliding window. Newer transformers read {@code layer_types}
     * ("sliding_attention" / "full_attention" per layer); older ones, and newer ones when the key is
     * absent, slide on even layer indices (0, 2, ...).
     */
    private static List<Boolean> gemmaSlidingLayers(JsonNode json, int layers, String source) {
        JsonNode types = json.get("layer_types");
        if (types == null || types.isNull()) {
            List<Boolean> sliding = new ArrayList<>();
            for (int l = 0; l < layers; l++) {
                sliding.add(l % 2 == 0);
            }
            return Collections.unmodifiableList(sliding);
        }
        if (!types.isArray() || types.size() != layers) {
            throw new IllegalArgumentException(source + ": layer_types must list one attention type per layer ("
                    + layers + "), found " + (types.isArray() ? types.size() + " entries" : types.getNodeType()));
        }
        List<Boolean> sliding = new ArrayList<>();
        for (JsonNode t : types) {
            switch (t.asText()) {
                case "sliding_attention" -> sliding.add(true);
                case "full_attention" -> sliding.add(false);
                default -> throw new IllegalArgumentException(source + ": layer_types entry '" + t.asText()
                        + "' is not supported (sliding_attention, full_attention)");
            }
        }
        return Collections.unmodifiableList(sliding);
    }

    /** GPT-NeoX / Pythia as transformers' {@code modeling_gpt_neox.py} runs it. */
    private static ModelConfig parseGptNeox(JsonNode json, String source) {
        String arch = "GPTNeoXForCausalLM";
        int d = required(json, "hidden_size", source);
        int layers = required(json, "num_hidden_layers", source);
        int heads = required(json, "num_attention_heads", source);
        if (d % heads != 0) {
            throw new IllegalArgumentException(source + ": hidden_size " + d + " is not a multiple of num_attention_heads " + heads);
        }
        int headDim = d / heads;
        Activation act = gelu(json.path("hidden_act").asText("gelu"), source, arch);
        JsonNode rope = ropeNode(json);
        double pct = rope != null && rope.has("partial_rotary_factor") ? rope.get("partial_rotary_factor").asDouble()
                : json.has("partial_rotary_factor") ? json.get("partial_rotary_factor").asDouble()
                : json.path("rotary_pct").asDouble(0.25);
        int rotaryDim = (int) (headDim * pct); // Python's int(): truncation, as transformers does
        if (pct <= 0 || pct > 1 || rotaryDim % 2 != 0) {
            throw new IllegalArgumentException(source + ": rotary_pct " + pct + " gives " + rotaryDim
                    + " rotary dimensions of " + headDim + "; Spindle needs an even number in [2, head size]");
        }
        boolean bias = json.path("attention_bias").asBoolean(true);
        return new ModelConfig(Family.GPT_NEOX, arch, d, layers, heads, heads, headDim,
                required(json, "intermediate_size", source),
                required(json, "vocab_size", source),
                json.path("max_position_embeddings").asInt(2048),
                json.path("layer_norm_eps").asDouble(1e-5),
                json.has("rotary_emb_base") ? json.get("rotary_emb_base").asDouble() : ropeTheta(json, 10000.0),
                ropeScaling(ropeNode(json), source),
                json.path("tie_word_embeddings").asBoolean(false),
                bias, bias, true, 0, false,
                json.path("bos_token_id").asInt(0), json.has("eos_token_id") ? eosTokenId(json) : 2,
                NormKind.LAYER, 0f, false, json.path("use_parallel_residual").asBoolean(true), act, false,
                rotaryDim, 1.0 / Math.sqrt(headDim), 0, 0, 1f, everyLayer(layers, false));
    }

    private static Activation gelu(String name, String source, String architecture) {
        return switch (name) {
            case "gelu" -> Activation.GELU_EXACT;
            case "gelu_pytorch_tanh", "gelu_new" -> Activation.GELU_TANH;
            default -> throw new IllegalArgumentException(source + ": hidden activation '" + name
                    + "' is not supported for " + architecture + " (gelu, gelu_new, gelu_pytorch_tanh)");
        };
    }

    /** A tanh soft-cap's scale; 0 when the key is null (no capping), the family's default when absent. */
    private static double softcap(JsonNode json, String key, double absentDefault, String source) {
        if (!json.has(key)) {
            return absentDefault;
        }
        if (json.get(key).isNull()) {
            return 0;
        }
        double cap = json.get(key).asDouble();
        if (!(cap > 0)) {
            throw new IllegalArgumentException(source + ": '" + key + "' must be positive or null, got " + json.get(key));
        }
        return cap;
    }

    /** transformers 5 moves rope_theta and rope_type into rope_parameters; older configs use rope_scaling. */
    private static JsonNode ropeNode(JsonNode json) {
        JsonNode parameters = json.get("rope_parameters");
        return parameters != null && !parameters.isNull() ? parameters : json.get("rope_scaling");
    }

    private static double ropeTheta(JsonNode json, double fallback) {
        JsonNode parameters = json.get("rope_parameters");
        if (parameters != null && parameters.has("rope_theta")) {
            return parameters.get("rope_theta").asDouble();
        }
        return json.path("rope_theta").asDouble(fallback);
    }

    private static int eosTokenId(JsonNode json) {
        return json.path("eos_token_id").isArray() ? json.path("eos_token_id").path(0).asInt(-1)
                : json.path("eos_token_id").asInt(-1);
    }

    private static List<Boolean> everyLayer(int layers, boolean value) {
        return Collections.nCopies(layers, value);
    }

    private static RopeScaling ropeScaling(JsonNode node, String source) {
        if (node == null || node.isNull()) {
            return RopeScaling.NONE;
        }
        String type = node.path("rope_type").asText(node.path("type").asText("")).toLowerCase(Locale.ROOT);
        double factor = node.path("factor").asDouble(1.0);
        switch (type) {
            case "default":
                return RopeScaling.NONE;
            case "linear":
                return new RopeScaling("linear", factor, 1, 1, 0);
            case "llama3":
                return new RopeScaling("llama3", factor,
                        node.path("low_freq_factor").asDouble(1.0),
                        node.path("high_freq_factor").asDouble(4.0),
                        node.path("original_max_position_embeddings").asInt(8192));
            default:
                throw new IllegalArgumentException(source + ": rope_scaling type '" + type
                        + "' is not supported (default, linear, llama3)");
        }
    }

    private static ModelConfig parseGpt2(JsonNode json, String source) {
        int d = required(json, "n_embd", source);
        int heads = required(json, "n_head", source);
        String act = json.path("activation_function").asText("gelu_new");
        if (!act.equals("gelu_new")) {
            throw new IllegalArgumentException(source + ": activation_function '" + act
                    + "' is not supported for GPT2LMHeadModel (only gelu_new)");
        }
        if (!json.path("scale_attn_weights").asBoolean(true)) {
            throw new IllegalArgumentException(source + ": scale_attn_weights=false is not supported");
        }
        int inner = json.hasNonNull("n_inner") ? json.get("n_inner").asInt() : 4 * d;
        return new ModelConfig(Family.GPT2, "GPT2LMHeadModel", d,
                required(json, "n_layer", source), heads, heads, d / heads, inner,
                required(json, "vocab_size", source),
                json.path("n_positions").asInt(1024),
                json.path("layer_norm_epsilon").asDouble(1e-5),
                0, RopeScaling.NONE, true, true, true, true, 0,
                json.path("scale_attn_by_inverse_layer_idx").asBoolean(false),
                json.path("bos_token_id").asInt(50256),
                json.path("eos_token_id").asInt(50256),
                NormKind.LAYER, 0f, false, false, Activation.GELU_TANH, false, 0, 1.0 / Math.sqrt(d / heads),
                0, 0, 1f, everyLayer(required(json, "n_layer", source), false));
    }

    private static int required(JsonNode json, String key, String source) {
        JsonNode node = json.get(key);
        if (node == null || !node.canConvertToInt() || node.asInt() <= 0) {
            throw new IllegalArgumentException(source + ": '" + key + "' is missing or not a positive integer");
        }
        return node.asInt();
    }

    /** Width of the attention's query projection (n_heads x head_dim). */
    public int qDim() {
        return nHeads * headDim;
    }

    public int kvDim() {
        return nKvHeads * headDim;
    }

    /** The attention window of layer l (0: the whole causal prefix). */
    public int windowAt(int layer) {
        return slidingWindow > 0 && slidingLayers.get(layer) ? slidingWindow : 0;
    }
}
