package activations.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * The architecture of a Hugging Face checkpoint, read from its {@code config.json}. Two families
 * cover the supported architectures: the Llama block (Llama, Mistral, Qwen2: RMSNorm, RoPE,
 * SwiGLU, grouped-query attention, optional attention biases) and GPT-2 (LayerNorm, learned
 * positions, gelu_new, Conv1D weights stored [in, out]).
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
        int eosTokenId) {

    public enum Family { LLAMA, GPT2 }

    /** RoPE frequency scaling ("linear" or Llama 3's "llama3"); {@code NONE} leaves RoPE as is. */
    public record RopeScaling(String type, double factor, double lowFreqFactor, double highFreqFactor,
                              int originalMaxPositions) {
        public static final RopeScaling NONE = new RopeScaling("none", 1, 1, 1, 0);
    }

    public static final List<String> SUPPORTED = List.of(
            "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "GPT2LMHeadModel");

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
                default -> modelType;
            };
        }
        switch (architecture) {
            case "GPT2LMHeadModel":
                return parseGpt2(json, source);
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
                json.path("rope_theta").asDouble(10000.0),
                ropeScaling(json.get("rope_scaling"), source),
                json.path("tie_word_embeddings").asBoolean(false),
                qwen || attentionBias, attentionBias,
                json.path("mlp_bias").asBoolean(false),
                window, false,
                json.path("bos_token_id").asInt(-1),
                json.path("eos_token_id").isArray() ? json.path("eos_token_id").path(0).asInt(-1)
                        : json.path("eos_token_id").asInt(-1));
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
                json.path("eos_token_id").asInt(50256));
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
}
