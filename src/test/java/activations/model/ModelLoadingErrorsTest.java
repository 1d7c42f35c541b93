package activations.model;

import activations.safetensors.SafeTensorsException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

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
