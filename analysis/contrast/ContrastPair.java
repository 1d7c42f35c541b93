package analysis.contrast;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.Serializable;

/** One line of a pairs file: {@code {"prompt": ..., "positive": ..., "negative": ...}}. */
public record ContrastPair(String prompt, String positive, String negative) implements Serializable {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** The texts whose last-token activations are compared: prompt + positive and prompt + negative. */
    public String positiveText() {
        return prompt + positive;
    }

    public String negativeText() {
        return prompt + negative;
    }

    /** Parses line {@code lineNumber} (1-based) of {@code file}, naming both in any error. */
    public static ContrastPair parse(String line, long lineNumber, String file) {
        JsonNode node;
        try {
            node = JSON.readTree(line);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(file + " line " + lineNumber + " is not valid JSON (" + e.getOriginalMessage()
                    + "); each line must be {\"prompt\": ..., \"positive\": ..., \"negative\": ...}");
        }
        if (node == null || !node.isObject()) {
            throw new IllegalArgumentException(file + " line " + lineNumber + " is not a JSON object; each line must be "
                    + "{\"prompt\": ..., \"positive\": ..., \"negative\": ...}");
        }
        return new ContrastPair(text(node, "prompt", lineNumber, file), text(node, "positive", lineNumber, file),
                text(node, "negative", lineNumber, file));
    }

    private static String text(JsonNode node, String field, long lineNumber, String file) {
        JsonNode value = node.get(field);
        if (value == null || !value.isTextual()) {
            throw new IllegalArgumentException(file + " line " + lineNumber + " has no text field \"" + field
                    + "\"; each line must be {\"prompt\": ..., \"positive\": ..., \"negative\": ...}");
        }
        return value.asText();
    }
}
