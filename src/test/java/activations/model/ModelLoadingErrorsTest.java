package activations.model;

import activations.safetensors.SafeTensorsException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Broken model directories fail with one line that names the problem and the fix. */
class ModelLoadingErrorsTest {

    @Test
    void missingDirectoryOrConfig(@TempDir Path dir) {
        var e = assertThrows(IllegalArgumentException.class, () -> TransformerModel.load(dir.resolve("nope")));
        assertTrue(e.getMessage().contains("config.json is missing"), e.getMessage());
    }

    @Test
    void missingWeights(@TempDir Path dir) throws IOException {
        TinyCheckpoint.gpt2(8, 1, 2, 11, 8, 1).write(dir);
        Files.delete(dir.resolve("model.safetensors"));
        var e = assertThrows(IllegalArgumentException.class, () -> TransformerModel.load(dir));
        assertTrue(e.getMessage().contains("model.safetensors"), e.getMessage());
    }

    @Test
    void configThatDoesNotMatchTheWeights(@TempDir Path dir) throws IOException {
        TinyCheckpoint.llama(16, 1, 4, 2, 24, 11, 8, false, true, 0, 1).write(dir);
        Path config = dir.resolve("config.json");
        Files.writeString(config, Files.readString(config).replace("\"intermediate_size\" : 24", "\"intermediate_size\" : 32"));
        var e = assertThrows(IllegalArgumentException.class, () -> TransformerModel.load(dir));
        assertTrue(e.getMessage().contains("gate_proj.weight' has shape [24, 16] but config.json implies [32, 16]"), e.getMessage());
    }

    @Test
    void unsupportedArchitectureListsTheSupportedOnes(@TempDir Path dir) throws IOException {
        Files.writeString(dir.resolve("config.json"), "{\"architectures\": [\"BertModel\"]}");
        var e = assertThrows(IllegalArgumentException.class, () -> TransformerModel.load(dir));
        assertTrue(e.getMessage().contains("GPT2LMHeadModel") && e.getMessage().contains("BertModel"), e.getMessage());
    }

    /** A Gemma-2 or GPT-NeoX config with one key changed: the refusal names the key's value. */
    @org.junit.jupiter.params.ParameterizedTest(name = "{0}: {1}")
    @org.junit.jupiter.params.provider.CsvSource(delimiter = '|', quoteCharacter = '`', value = {
            "gemma2|\"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 2.0}|rope_scaling type 'dynamic' is not supported",
            "gemma2|\"hidden_activation\": \"relu\"|hidden activation 'relu' is not supported for Gemma2ForCausalLM",
            "gemma2|\"layer_types\": [\"full_attention\", \"chunked_attention\", \"full_attention\"]|layer_types entry 'chunked_attention' is not supported",
            "gemma2|\"layer_types\": [\"full_attention\"]|layer_types must list one attention type per layer (3), found 1 entries",
            "gemma2|\"use_bidirectional_attention\": true|use_bidirectional_attention=true is not supported",
            "gpt-neox-parallel|\"hidden_act\": \"gelu_fast\"|hidden activation 'gelu_fast' is not supported for GPTNeoXForCausalLM",
            "gpt-neox-parallel|\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2.0}|rope_scaling type 'dynamic' is not supported",
            "gpt-neox-parallel|\"rotary_pct\": 0.375|rotary_pct 0.375 gives 3 rotary dimensions of 8"})
    void unsupportedFeaturesAreRefusedByName(String fixture, String override, String message, @TempDir Path dir) throws IOException {
        Path source = HuggingFaceReferenceTest.fixture(fixture);
        Files.copy(source.resolve("model.safetensors"), dir.resolve("model.safetensors"));
        String config = Files.readString(source.resolve("config.json"));
        String key = override.substring(0, override.indexOf(':'));
        config = config.replaceAll("\\n  " + java.util.regex.Pattern.quote(key) + ": [^\\n]*,", "");
        Files.writeString(dir.resolve("config.json"), config.replaceFirst("\\{", "{" + override + ","));
        var e = assertThrows(IllegalArgumentException.class, () -> TransformerModel.load(dir));
        assertTrue(e.getMessage().contains(message), e.getMessage());
        assertTrue(!e.getMessage().contains("\n"), "one line: " + e.getMessage());
    }

    @Test
    void hooksAModelDoesNotHaveAreRefused() {
        ModelConfig neox = ModelConfig.load(HuggingFaceReferenceTest.fixture("gpt-neox-parallel"));
        var e = assertThrows(IllegalArgumentException.class,
                () -> activations.hooks.HookPoint.parse("blocks.0.hook_resid_mid", neox));
        assertTrue(e.getMessage().contains("parallel residual"), e.getMessage());
        ModelConfig gemma = ModelConfig.load(HuggingFaceReferenceTest.fixture("gemma2"));
        assertEquals("blocks.1.ln2_post.hook_normalized",
                activations.hooks.HookPoint.parse("blocks.1.ln2_post.hook_normalized", gemma).name());
        ModelConfig neoxSequential = ModelConfig.load(HuggingFaceReferenceTest.fixture("gpt-neox-sequential"));
        e = assertThrows(IllegalArgumentException.class,
                () -> activations.hooks.HookPoint.parse("blocks.0.ln1_post.hook_normalized", neoxSequential));
        assertTrue(e.getMessage().contains("no norm after attention and MLP"), e.getMessage());
    }

    @Test
    void truncatedWeights(@TempDir Path dir) throws IOException {
        TinyCheckpoint.gpt2(8, 1, 2, 11, 8, 1).write(dir);
        Path weights = dir.resolve("model.safetensors");
        byte[] bytes = Files.readAllBytes(weights);
        Files.write(weights, java.util.Arrays.copyOf(bytes, bytes.length - 100));
        var e = assertThrows(SafeTensorsException.class, () -> TransformerModel.load(dir));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
    }
}
