package jobs.cli;

import activations.model.TransformerModel;
import activations.tokenizer.TextTokenizer;

import java.nio.file.Files;
import java.nio.file.Path;

/** What the single-prompt analysis commands (lens, steer, patch) read: the model, its tokenizer, prompts. */
final class AnalysisInputs {

    private AnalysisInputs() {
    }

    static TransformerModel model(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new IllegalArgumentException("--model " + dir + ": no such directory; give a Hugging Face model directory");
        }
        return TransformerModel.load(dir);
    }

    static TextTokenizer tokenizer(Path dir) {
        if (!Files.isRegularFile(dir.resolve("tokenizer.json"))) {
            throw new IllegalArgumentException("--model " + dir + " has no tokenizer.json; give token ids instead of text");
        }
        return TextTokenizer.load(dir);
    }

    /** {@code text} with the model's tokenizer, BOS first unless {@code noBos}. */
    static int[] encode(TextTokenizer tokenizer, String text, boolean noBos, String option) {
        if (text == null || text.isEmpty()) {
            throw new IllegalArgumentException(option + " is empty; give a prompt");
        }
        int[] ids = tokenizer.encode(text, !noBos);
        if (ids.length == 0) {
            throw new IllegalArgumentException(option + " '" + text + "' has no tokens; give a longer prompt");
        }
        return ids;
    }

    static String piece(TextTokenizer tokenizer, int id) {
        return tokenizer == null ? String.valueOf(id) : tokenizer.piece(id);
    }
}
