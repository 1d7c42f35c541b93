package activations.model;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;

/** The bundled default model (Hugging Face Llama layout) reproduces its float64 reference. */
class TinyStoriesGoldenTest {

    static final Path MODEL = Path.of("models/tinystories-656k");

    @Test
    void reproducesGoldenReference() {
        TransformerModel model = TransformerModel.load(MODEL);
        GoldenReference golden = GoldenReference.read(MODEL.resolve("golden_reference.json"));
        GoldenModelCheck.assertMatches(model, golden, 2);
    }
}
