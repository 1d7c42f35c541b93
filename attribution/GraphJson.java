package attribution;

import attribution.LocalReplacementModel.Feature;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.IntFunction;

/**
 * A pruned graph in circuit-tracer's frontend format (what {@code create_graph_files} writes and
 * its attribution-graph viewer reads), field for field: {@code metadata} (slug, scan,
 * transcoder_list, prompt_tokens, prompt, node_threshold), {@code qParams}, {@code nodes} and
 * {@code links}. Node ids follow circuit-tracer: features {@code layer_feature_pos}, errors
 * {@code 0_layer_pos}, embeddings {@code E_token_pos}, logits {@code (layers+1)_token_pos}; a
 * node's {@code influence} is its cumulative influence share (the viewer's pruning slider), and
 * only nodes on a kept link survive (embeddings and logits always do).
 */
public final class GraphJson {

    /** Feature type strings the viewer knows. */
    public static final String FEATURE = "cross layer transcoder";
    public static final String ERROR = "mlp reconstruction error";
    public static final String EMBEDDING = "embedding";
    public static final String LOGIT = "logit";

    private GraphJson() {
    }

    /** The JSON document as maps and lists (Jackson writes it), from a graph, its pruning and a token decoder. */
    public static Map<String, Object> document(AttributionGraph g, GraphPruning.Pruned pruned, String slug, String scan,
                                               String prompt, double nodeThreshold, IntFunction<String> decode) {
        int n = g.nodes();
        Map<Integer, Map<String, Object>> nodes = new LinkedHashMap<>();
        for (int i = 0; i < n; i++) {
            if (pruned.nodes()[i]) {
                nodes.put(i, node(g, i, pruned.cumulativeInfluence()[i], decode));
            }
        }
        List<Map<String, Object>> links = new ArrayList<>();
        Set<Object> connected = new LinkedHashSet<>();
        for (int target = 0; target < n; target++) {
            for (int source = 0; source < n; source++) {
                if (!pruned.edges()[target * n + source] || !nodes.containsKey(source) || !nodes.containsKey(target)) {
                    continue;
                }
                Map<String, Object> link = new LinkedHashMap<>();
                link.put("source", nodes.get(source).get("node_id"));
                link.put("target", nodes.get(target).get("node_id"));
                link.put("weight", (double) g.edge(target, source));
                links.add(link);
                connected.add(link.get("source"));
                connected.add(link.get("target"));
            }
        }
        List<Map<String, Object>> used = new ArrayList<>();
        for (Map<String, Object> node : nodes.values()) {
            Object type = node.get("feature_type");
            if (connected.contains(node.get("node_id")) || EMBEDDING.equals(type) || LOGIT.equals(type)) {
                used.add(node);
            }
        }
        List<String> promptTokens = new ArrayList<>();
        for (int token : g.tokens()) {
            promptTokens.add(displayToken(decode.apply(token)));
        }
        Map<String, Object> metadata = new LinkedHashMap<>();
        metadata.put("slug", slug);
        metadata.put("scan", scan);
        metadata.put("transcoder_list", List.of());
        metadata.put("prompt_tokens", promptTokens);
        metadata.put("prompt", prompt);
        metadata.put("node_threshold", nodeThreshold);
        Map<String, Object> qParams = new LinkedHashMap<>();
        qParams.put("pinnedIds", List.of());
        qParams.put("supernodes", List.of());
        qParams.put("linkType", "both");
        qParams.put("clickedId", "");
        qParams.put("sg_pos", "");
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("metadata", metadata);
        doc.put("qParams", qParams);
        doc.put("nodes", used);
        doc.put("links", links);
        return doc;
    }

    private static Map<String, Object> node(AttributionGraph g, int i, double influence, IntFunction<String> decode) {
        int position = g.position(i);
        return switch (g.kind(i)) {
            case FEATURE -> {
                Feature f = g.features().get(i);
                yield node(f.layer() + "_" + f.feature() + "_" + position, f.feature(), String.valueOf(f.layer()), position, FEATURE,
                        0.0, false, f.layer() + "_" + f.feature() + "-0", "", influence, (double) f.activation());
            }
            case ERROR -> {
                int layer = g.errorLayer(i);
                yield node("0_" + layer + "_" + position, -1, String.valueOf(layer), position, ERROR, 0.0, false,
                        layer + "_" + position + "-0", "", influence, null);
            }
            case TOKEN -> {
                int token = g.tokens()[position];
                yield node("E_" + token + "_" + position, position, "E", position, EMBEDDING, 0.0, false,
                        "E_" + token + "-" + position, "", influence, null);
            }
            case LOGIT -> {
                int k = i - g.logitStart();
                int token = g.logitTokens()[k];
                double p = g.logitProbabilities()[k];
                String layer = String.valueOf(g.layers() + 1);
                String clerp = String.format(Locale.ROOT, "Output \"%s\" (p=%.3f)", displayToken(decode.apply(token)), p);
                yield node(layer + "_" + token + "_" + position, token, layer, position, LOGIT, p, k == 0,
                        "L_" + token + "-" + position, clerp, null, null);
            }
        };
    }

    private static Map<String, Object> node(String id, int feature, String layer, int ctx, String type, double tokenProb,
                                            boolean targetLogit, String jsId, String clerp, Double influence, Double activation) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("node_id", id);
        m.put("feature", feature);
        m.put("layer", layer);
        m.put("ctx_idx", ctx);
        m.put("feature_type", type);
        m.put("token_prob", tokenProb);
        m.put("is_target_logit", targetLogit);
        m.put("run_idx", 0);
        m.put("reverse_ctx_idx", 0);
        m.put("jsNodeId", jsId);
        m.put("clerp", clerp);
        m.put("influence", influence);
        m.put("activation", activation);
        return m;
    }

    /** circuit-tracer's process_token: newlines, tabs and carriage returns made visible. */
    public static String displayToken(String token) {
        return token.replace("\n", "⏎").replace("\t", "→").replace("\r", "↵");
    }
}
