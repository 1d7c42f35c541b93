package jobs.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ConvertLlama2cCommandTest {

    static final Path MODELS = Path.of(System.getProperty("spindle.repo", ".")).resolve("models/stories260K");

    @Test
    void convertsFromTheCommandLine(@TempDir Path tmp) {
        Path out = tmp.resolve("hf");
        int code = Spindle.run("convert-llama2c", "--model", MODELS.resolve("stories260K.bin").toString(),
                "--tokenizer", MODELS.resolve("tok512.bin").toString(), "--out", out.toString());
        assertEquals(0, code);
        for (String file : new String[] {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}) {
            assertTrue(Files.isRegularFile(out.resolve(file)), file);
        }
    }

    @Test
    void badInputExitsWithCodeTwo(@TempDir Path tmp) throws Exception {
        byte[] bytes = Files.readAllBytes(MODELS.resolve("stories260K.bin"));
        Path truncated = tmp.resolve("truncated.bin");
        Files.write(truncated, Arrays.copyOf(bytes, 1000));
        Path out = tmp.resolve("hf");
        int code = Spindle.run("convert-llama2c", "--model", truncated.toString(),
                "--tokenizer", MODELS.resolve("tok512.bin").toString(), "--out", out.toString());
        assertEquals(2, code);
        assertFalse(Files.exists(out));
    }
}
