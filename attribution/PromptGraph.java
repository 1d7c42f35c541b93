package attribution;

import activations.model.TransformerModel;
import activations.tokenizer.TextTokenizer;
import training.export.CircuitTracerDictionary;

import java.util.Map;

/**
 * One prompt end to end: tokenize (special tokens as the tokenizer adds them), attribute, prune,
 * score, and render circuit-tracer's graph JSON and the static page.
 */
public final class PromptGraph {

    /** Everything but the prompt; {@code dashboard} as in {@link GraphPage#html}, or null. */
    public record Settings(Attribution.Options attribution, double nodeThreshold, double edgeThreshold, String scan, String dashboard)
            implements java.io.Serializable {
    }

    public record Result(String slug, String prompt, int tokens, int activeFeatures, int keptNodes, int keptEdges,
                         GraphPruning.Scores unpruned, GraphPruning.Scores pruned, int[] logitTokens, double[] logitProbabilities,
                         Map<String, Object> json, String html, GraphPruning.Pruned pruning, AttributionGraph graph) {
    }

    private PromptGraph() {
    }

    /** A token as decoded alone (circuit-tracer's choice), or its vocabulary piece when that decodes to nothing. */
    static String display(TextTokenizer tokenizer, int id) {
        String text = tokenizer.decode(new int[] {id});
        return text.isEmpty() ? tokenizer.piece(id) : text;
    }

    public static Result run(TransformerModel model, CircuitTracerDictionary transcoder, TextTokenizer tokenizer, String slug,
                             String prompt, Settings s) {
        if (prompt == null || prompt.isBlank()) {
            throw new IllegalArgumentException("prompt '" + slug + "' is empty; give every prompt some text");
        }
        int[] tokens = tokenizer.encode(prompt, true);
        if (tokens.length > model.config().maxPositions()) {
            throw new IllegalArgumentException("prompt '" + slug + "' has " + tokens.length + " tokens but the model's context is "
                    + model.config().maxPositions() + "; shorten it");
        }
        AttributionGraph graph = Attribution.attribute(model, transcoder, tokens, tokenizer.isSpecial(tokens[0]), s.attribution());
        GraphPruning.Pruned pruned = GraphPruning.prune(graph, s.nodeThreshold(), s.edgeThreshold());
        GraphPruning.Scores unprunedScores = GraphPruning.scores(graph);
        GraphPruning.Scores prunedScores = GraphPruning.scores(graph, pruned);
        Map<String, Object> json = GraphJson.document(graph, pruned, slug, s.scan(), prompt, s.nodeThreshold(),
                id -> display(tokenizer, id));
        String html = GraphPage.html(json, s.dashboard());
        return new Result(slug, prompt, tokens.length, graph.features().size(), pruned.keptNodes(), pruned.keptEdges(), unprunedScores,
                prunedScores, graph.logitTokens(), graph.logitProbabilities(), json, html, pruned, graph);
    }
}
