package attribution;

import attribution.LocalReplacementModel.Feature;

import java.util.List;

/**
 * The unpruned attribution graph of one prompt, in circuit-tracer's node order: active features
 * (by layer, position, feature), error nodes ({@code layer * positions + position}), token
 * embeddings (one per position), logits (most probable first). {@code adjacency[target * n + source]}
 * is the direct effect of source on target: on a feature's pre-activation, or on a logit minus the
 * mean logit. Features and logits have incoming edges; errors and tokens only outgoing ones.
 */
public record AttributionGraph(int[] tokens, List<Feature> features, int layers, int[] logitTokens,
                               double[] logitProbabilities, float[] adjacency, boolean firstPositionLeftOut) {

    public int positions() {
        return tokens.length;
    }

    public int nodes() {
        return features.size() + (layers + 1) * tokens.length + logitTokens.length;
    }

    public int errorStart() {
        return features.size();
    }

    public int tokenStart() {
        return features.size() + layers * tokens.length;
    }

    public int logitStart() {
        return tokenStart() + tokens.length;
    }

    public float edge(int target, int source) {
        return adjacency[target * nodes() + source];
    }

    /** What node {@code i} is. */
    public enum Kind { FEATURE, ERROR, TOKEN, LOGIT }

    public Kind kind(int node) {
        if (node < errorStart()) {
            return Kind.FEATURE;
        }
        if (node < tokenStart()) {
            return Kind.ERROR;
        }
        return node < logitStart() ? Kind.TOKEN : Kind.LOGIT;
    }

    /** Layer of an error node, position of an error or token node. */
    public int errorLayer(int node) {
        return (node - errorStart()) / tokens.length;
    }

    public int position(int node) {
        return switch (kind(node)) {
            case FEATURE -> features.get(node).position();
            case ERROR -> (node - errorStart()) % tokens.length;
            case TOKEN -> node - tokenStart();
            case LOGIT -> tokens.length - 1;
        };
    }
}
