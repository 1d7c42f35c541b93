package attribution;

import java.util.Arrays;

/**
 * Influence, pruning and graph scores as in circuit-tracer and the methods paper. Influence of a
 * node is the logit-probability-weighted sum over all paths to the logits of products of
 * row-normalized absolute edge weights ({@code w A + w A^2 + ...}); nodes are kept while they
 * carry {@code nodeThreshold} of the total influence, then edges while they carry
 * {@code edgeThreshold}, then features without kept inputs and features/errors without kept
 * outputs are dropped until nothing changes. Tokens and logits are always kept.
 *
 * <p>Replacement score: the share of the tokens' and errors' influence that is the tokens'.
 * Completeness: the influence-weighted share of each node's input that does not come from error
 * nodes. For a pruned graph, a pruned node or edge counts as error (its input share is not
 * redistributed), so the pruned scores are at most the unpruned ones; with nothing pruned they are
 * circuit-tracer's {@code compute_graph_scores}.
 */
public final class GraphPruning {

    /** Which nodes and edges ({@code target * n + source}) survive, and each node's cumulative influence share. */
    public record Pruned(boolean[] nodes, boolean[] edges, double[] influence, double[] cumulativeInfluence, int keptNodes, int keptEdges) {
    }

    public record Scores(double replacement, double completeness) {
    }

    private GraphPruning() {
    }

    public static Pruned prune(AttributionGraph g, double nodeThreshold, double edgeThreshold) {
        checkThreshold("--node-threshold", nodeThreshold);
        checkThreshold("--edge-threshold", edgeThreshold);
        int n = g.nodes();
        double[] logitWeights = logitWeights(g);
        float[] normalized = normalize(g.adjacency(), n);
        double[] influence = influence(normalized, n, logitWeights);
        double cut = threshold(influence, nodeThreshold);
        boolean[] keep = new boolean[n];
        for (int i = 0; i < n; i++) {
            keep[i] = influence[i] >= cut || i >= g.tokenStart();
        }
        float[] pruned = g.adjacency().clone();
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                if (!keep[i] || !keep[j]) {
                    pruned[i * n + j] = 0;
                }
            }
        }
        float[] prunedNormalized = normalize(pruned, n);
        double[] prunedInfluence = influence(prunedNormalized, n, logitWeights);
        float[] edgeScores = new float[n * n];
        for (int i = 0; i < n; i++) {
            double weight = prunedInfluence[i] + logitWeights[i];
            for (int j = 0; j < n; j++) {
                edgeScores[i * n + j] = (float) (prunedNormalized[i * n + j] * weight);
            }
        }
        double edgeCut = threshold(edgeScores, edgeThreshold);
        boolean[] edges = new boolean[n * n];
        for (int e = 0; e < edges.length; e++) {
            edges[e] = edgeScores[e] > 0 && edgeScores[e] >= edgeCut;
        }
        // Drop features without kept inputs and features/errors without kept outputs until stable.
        boolean changed = true;
        while (changed) {
            changed = false;
            boolean[] hasOutput = new boolean[n];
            boolean[] hasInput = new boolean[n];
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < n; j++) {
                    if (edges[i * n + j]) {
                        hasOutput[j] = true;
                        hasInput[i] = true;
                    }
                }
            }
            for (int i = 0; i < g.tokenStart(); i++) {
                boolean stays = keep[i] && hasOutput[i] && (i >= g.errorStart() || hasInput[i]);
                if (keep[i] && !stays) {
                    keep[i] = false;
                    changed = true;
                }
            }
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < n; j++) {
                    if (!keep[i] || !keep[j]) {
                        edges[i * n + j] = false;
                    }
                }
            }
        }
        int keptNodes = 0;
        for (boolean k : keep) {
            keptNodes += k ? 1 : 0;
        }
        int keptEdges = 0;
        for (boolean e : edges) {
            keptEdges += e ? 1 : 0;
        }
        return new Pruned(keep, edges, influence, cumulativeShares(influence), keptNodes, keptEdges);
    }

    /** Scores of the unpruned graph. */
    public static Scores scores(AttributionGraph g) {
        int n = g.nodes();
        boolean[] all = new boolean[n];
        Arrays.fill(all, true);
        boolean[] allEdges = new boolean[n * n];
        Arrays.fill(allEdges, true);
        return scores(g, all, allEdges);
    }

    public static Scores scores(AttributionGraph g, Pruned pruned) {
        return scores(g, pruned.nodes(), pruned.edges());
    }

    private static Scores scores(AttributionGraph g, boolean[] keep, boolean[] edges) {
        int n = g.nodes();
        double[] logitWeights = logitWeights(g);
        float[] normalized = normalize(g.adjacency(), n);
        float[] kept = new float[n * n];
        double[] errorShare = new double[n];
        for (int i = 0; i < n; i++) {
            if (!keep[i]) {
                continue;
            }
            for (int j = 0; j < n; j++) {
                float v = normalized[i * n + j];
                boolean stays = keep[j] && edges[i * n + j];
                if (stays) {
                    kept[i * n + j] = v;
                }
                if (!stays || g.kind(j) == AttributionGraph.Kind.ERROR) {
                    errorShare[i] += v;
                }
            }
        }
        double[] influence = influence(kept, n, logitWeights);
        double tokens = 0;
        double errors = 0;
        double complete = 0;
        double total = 0;
        for (int i = 0; i < n; i++) {
            if (g.kind(i) == AttributionGraph.Kind.TOKEN) {
                tokens += influence[i];
            }
            double out = influence[i] + logitWeights[i];
            errors += out * errorShare[i];
            complete += out * (1 - errorShare[i]);
            total += out;
        }
        return new Scores(tokens / (tokens + errors), complete / total);
    }

    static double[] logitWeights(AttributionGraph g) {
        double[] w = new double[g.nodes()];
        for (int k = 0; k < g.logitTokens().length; k++) {
            w[g.logitStart() + k] = g.logitProbabilities()[k];
        }
        return w;
    }

    /** |A| with each row scaled to sum 1 (rows without inputs stay zero). */
    static float[] normalize(float[] adjacency, int n) {
        float[] out = new float[n * n];
        for (int i = 0; i < n; i++) {
            double sum = 0;
            for (int j = 0; j < n; j++) {
                sum += Math.abs(adjacency[i * n + j]);
            }
            double scale = 1 / Math.max(sum, 1e-10);
            for (int j = 0; j < n; j++) {
                out[i * n + j] = (float) (Math.abs(adjacency[i * n + j]) * scale);
            }
        }
        return out;
    }

    /** {@code w A + w A^2 + ...}; terminates because the graph is acyclic (A is nilpotent). */
    static double[] influence(float[] normalized, int n, double[] weights) {
        double[] influence = new double[n];
        double[] current = multiply(weights, normalized, n);
        for (int iteration = 0; iteration < n + 2; iteration++) {
            boolean any = false;
            for (int j = 0; j < n; j++) {
                influence[j] += current[j];
                any |= current[j] != 0;
            }
            if (!any) {
                return influence;
            }
            current = multiply(current, normalized, n);
        }
        throw new IllegalStateException("influence did not converge: the graph has a cycle");
    }

    private static double[] multiply(double[] v, float[] matrix, int n) {
        double[] out = new double[n];
        for (int i = 0; i < n; i++) {
            double vi = v[i];
            if (vi == 0) {
                continue;
            }
            int base = i * n;
            for (int j = 0; j < n; j++) {
                out[j] += vi * matrix[base + j];
            }
        }
        return out;
    }

    /** The smallest score among the largest ones that together reach {@code fraction} of the total. */
    static double threshold(double[] scores, double fraction) {
        double[] sorted = Arrays.stream(scores).filter(v -> v > 0).sorted().toArray();
        return cut(sorted, fraction);
    }

    static double threshold(float[] scores, double fraction) {
        int positive = 0;
        for (float v : scores) {
            positive += v > 0 ? 1 : 0;
        }
        float[] sorted = new float[positive];
        int k = 0;
        for (float v : scores) {
            if (v > 0) {
                sorted[k++] = v;
            }
        }
        Arrays.sort(sorted);
        double[] asDouble = new double[positive];
        for (int i = 0; i < positive; i++) {
            asDouble[i] = sorted[i];
        }
        return cut(asDouble, fraction);
    }

    /** {@code ascending} holds positive scores in ascending order. */
    private static double cut(double[] ascending, double fraction) {
        if (ascending.length == 0) {
            return Double.POSITIVE_INFINITY;
        }
        double total = 0;
        for (double v : ascending) {
            total += v;
        }
        double cumulative = 0;
        for (int i = ascending.length - 1; i >= 0; i--) {
            cumulative += ascending[i];
            if (cumulative / total >= fraction) {
                return ascending[i];
            }
        }
        return ascending[0];
    }

    /** Each node's share of the total influence carried by it and every node more influential. */
    static double[] cumulativeShares(double[] influence) {
        int n = influence.length;
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Double.compare(influence[b], influence[a]));
        double total = Arrays.stream(influence).sum();
        double[] shares = new double[n];
        double cumulative = 0;
        for (int i : order) {
            cumulative += influence[i];
            shares[i] = total > 0 ? cumulative / total : 0;
        }
        return shares;
    }

    private static void checkThreshold(String option, double value) {
        if (!(value >= 0 && value <= 1)) {
            throw new IllegalArgumentException(option + " must be between 0 and 1, got " + value);
        }
    }
}
