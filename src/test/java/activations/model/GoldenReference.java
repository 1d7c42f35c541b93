package activations.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;

/** A model's golden_reference.json (float64 numpy values shipped with the bundled models). */
record GoldenReference(int[] promptIds, double[][] residNorms, double[][] lastFirst8, int[] top5Ids,
                       double[] top5Logits, int[] greedyIds) {

    static GoldenReference read(Path file) {
        try {
            JsonNode json = new ObjectMapper().readTree(file.toFile());
            JsonNode resid = json.get("residual_stream");
            double[][] norms = new double[resid.size()][];
            double[][] first8 = new double[resid.size()][];
            for (int i = 0; i < resid.size(); i++) {
                norms[i] = doubles(resid.get(i).get("l2_norm_per_position"));
                first8[i] = doubles(resid.get(i).get("last_position_first8"));
            }
            JsonNode top = json.get("last_position_top5_logits");
            int[] topIds = new int[top.size()];
            double[] topLogits = new double[top.size()];
            for (int i = 0; i < top.size(); i++) {
                topIds[i] = top.get(i).get("id").asInt();
                topLogits[i] = top.get(i).get("logit").asDouble();
            }
            return new GoldenReference(ints(json.get("prompt_ids")), norms, first8, topIds, topLogits,
                    ints(json.get("greedy_continuation_ids")));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static int[] ints(JsonNode node) {
        int[] out = new int[node.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = node.get(i).asInt();
        }
        return out;
    }

    private static double[] doubles(JsonNode node) {
        double[] out = new double[node.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = node.get(i).asDouble();
        }
        return out;
    }
}
