package analysis;

import activations.tokenizer.TextTokenizer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Answers, targets and wrong answers that an analysis reads off one logit must be exactly one
 * token; this resolves text or an id to that token, or says in one line why it cannot.
 */
public final class SingleTokens {

    private SingleTokens() {
    }

    /**
     * The id of {@code text} tokenized alone (no BOS), which must be one token. {@code option}
     * names the command-line option in the error, {@code idOption} the alternative that takes an id.
     */
    public static int of(TextTokenizer tokenizer, String text, String option, String idOption) {
        if (text == null || text.isEmpty()) {
            throw new IllegalArgumentException(option + " is empty; give the token's text or " + idOption);
        }
        int[] ids = tokenizer.encode(text, false);
        if (ids.length != 1) {
            List<String> pieces = new ArrayList<>();
            for (int id : ids) {
                pieces.add("'" + tokenizer.piece(id) + "'");
            }
            throw new IllegalArgumentException(option + " '" + text + "' is " + ids.length + " tokens, not one ("
                    + String.join(" ", pieces) + ", ids " + Arrays.toString(ids) + "); give text that is a single token or use "
                    + idOption);
        }
        return ids[0];
    }

    /** Checks a token id given directly against the vocabulary. */
    public static int checkId(int id, int vocabSize, String option) {
        if (id < 0 || id >= vocabSize) {
            throw new IllegalArgumentException(option + " " + id + " is outside the vocabulary [0, " + vocabSize + ")");
        }
        return id;
    }
}
