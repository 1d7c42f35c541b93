package activations.model;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

/** The llama2.c stories260K checkpoint, converted to Hugging Face layout, reproduces its float64 reference. */
class Stories260kGoldenTest {

    static final Path SOURCE = Path.of("models/stories260K");

    @Test
    void convertedCheckpointReproducesGoldenReference(@TempDir Path dir) {
        Path converted = dir.resolve("hf");
        Llama2cConverter.convert(SOURCE.resolve("stories260K.bin"), SOURCE.resolve("tok512.bin"), converted);
        TransformerModel model = TransformerModel.load(converted);
        GoldenReference golden = GoldenReference.read(SOURCE.resolve("golden_reference.json"));
        // llama2.c stops when BOS (id 1) is sampled
        GoldenModelCheck.assertMatches(model, golden, 1);
    }
}
