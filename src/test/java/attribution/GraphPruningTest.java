package attribution;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import attribution.LocalReplacementModel.Feature;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import testing.HeadlessChromium;

/**
 * Influence, pruning, scores and the circuit-tracer JSON on a graph small enough to work out by
 * hand: one layer, two positions, two features at position 1, one logit target.
 *
 * <pre>
 * nodes: 0 f0 (L0 #0 @1)  1 f1 (L0 #1 @1)  2 err L0@0  3 err L0@1  4 tok@0  5 tok@1  6 logit
 * edges: f0 <- tok1 2, tok0 -1;  f1 <- tok1 .5, err1 .5;  logit <- f0 3, f1 -1, err1 1
 * normalized |A|: logit: f0 .6 f1 .2 err1 .2;  f0: tok1 2/3 tok0 1/3;  f1: tok1 .5 err1 .5
 * influence (p = 1): f0 .6, f1 .2, err1 .2 + .1 = .3, tok1 .4 + .1 = .5, tok0 .2
 * replacement = (.5 + .2) / (.7 + .3) = .7
 * completeness = sum (infl + p)(1 - error share) / sum (infl + p)
 *              = (1(.8) + .6 + .2(.5) + .3 + .5 + .2) / (1 + .6 + .2 + .3 + .5 + .2) = 2.5 / 2.8
 * </pre>
 */
class GraphPruningTest {

    static AttributionGraph handGraph() {
        int n = 7;
        float[] a = new float[n * n];
        a[0 * n + 5] = 2f;
        a[0 * n + 4] = -1f;
        a[1 * n + 5] = 0.5f;
        a[1 * n + 3] = 0.5f;
        a[6 * n + 0] = 3f;
        a[6 * n + 1] = -1f;
        a[6 * n + 3] = 1f;
        return new AttributionGraph(new int[] {1, 9}, List.of(new Feature(0, 1, 0, 1.5f), new Feature(0, 1, 1, 0.25f)), 1,
                new int[] {4}, new double[] {1.0}, a, true);
    }

    @Test
    void unprunedInfluenceAndScoresMatchTheHandComputation() {
        AttributionGraph g = handGraph();
        double[] influence = GraphPruning.influence(GraphPruning.normalize(g.adjacency(), g.nodes()), g.nodes(), GraphPruning.logitWeights(g));
        assertArrayEquals(new double[] {0.6, 0.2, 0, 0.3, 0.2, 0.5, 0}, influence, 1e-6);
        GraphPruning.Scores s = GraphPruning.scores(g);
        assertEquals(0.7, s.replacement(), 1e-6);
        assertEquals(2.5 / 2.8, s.completeness(), 1e-6);
    }

    /**
     * Node threshold .5: influences sorted .6 (f0), .5 (tok1), ... reach .5 of 1.8 at tok1, so
     * f0 stays and f1 and the errors go (tokens and logits always stay). Pruned scores count the
     * dropped inputs as error: logit keeps f0 (.6 of its input), error share .4;
     * replacement = tokens (.4 + .2) / (.6 + .4); completeness = (.6 + .6 + .4 + .2) / (1 + .6 + .4 + .2).
     */
    @Test
    void pruningKeepsTheInfluentialNodesAndCountsWhatItDropsAsError() {
        AttributionGraph g = handGraph();
        GraphPruning.Pruned p = GraphPruning.prune(g, 0.5, 0.98);
        assertArrayEquals(new boolean[] {true, false, false, false, true, true, true}, p.nodes());
        assertEquals(4, p.keptNodes());
        assertEquals(3, p.keptEdges());
        assertTrue(p.edges()[6 * 7] && p.edges()[5] && p.edges()[4]);
        assertEquals(0.6 / 1.8, p.cumulativeInfluence()[0], 1e-6);
        assertEquals(1.1 / 1.8, p.cumulativeInfluence()[5], 1e-6);
        GraphPruning.Scores s = GraphPruning.scores(g, p);
        assertEquals(0.6, s.replacement(), 1e-6);
        assertEquals(1.8 / 2.2, s.completeness(), 1e-6);

        // Threshold 1 keeps every node and edge with any influence: the unpruned scores.
        GraphPruning.Pruned all = GraphPruning.prune(g, 1.0, 1.0);
        assertEquals(6, all.keptNodes(), "all but the error at position 0, which has no edges");
        GraphPruning.Scores same = GraphPruning.scores(g, all);
        assertEquals(0.7, same.replacement(), 1e-6);
        assertEquals(2.5 / 2.8, same.completeness(), 1e-6);
        assertThrows(IllegalArgumentException.class, () -> GraphPruning.prune(g, 1.5, 0.9));
    }

    @Test
    void logitTargetsCoverTheMassWithAtMostTheMaximum() {
        float[] logits = {0f, (float) Math.log(6), (float) Math.log(3), 0f};
        // probabilities 1/11, 6/11, 3/11, 1/11
        assertArrayEquals(new int[] {1}, LogitTargets.select(logits, 10, 0.5));
        assertArrayEquals(new int[] {1, 2}, LogitTargets.select(logits, 10, 0.8));
        assertArrayEquals(new int[] {1, 2, 0}, LogitTargets.select(logits, 3, 0.99));
        assertArrayEquals(new int[] {1, 2, 0, 3}, LogitTargets.select(logits, 10, 1.0));
    }

    @Test
    @SuppressWarnings("unchecked")
    void circuitTracerJsonAndThePageRenderIt(@TempDir Path dir) throws Exception {
        AttributionGraph g = handGraph();
        GraphPruning.Pruned p = GraphPruning.prune(g, 0.5, 0.98);
        Map<String, Object> doc = GraphJson.document(g, p, "hand", "tiny-clt", "a b", 0.5, id -> id == 9 ? "b\n" : "t" + id);
        Map<String, Object> meta = (Map<String, Object>) doc.get("metadata");
        assertEquals(List.of("t1", "b⏎"), meta.get("prompt_tokens"));
        assertEquals("tiny-clt", meta.get("scan"));
        assertEquals(List.of(), meta.get("transcoder_list"));
        List<Map<String, Object>> nodes = (List<Map<String, Object>>) doc.get("nodes");
        assertEquals(List.of("0_0_1", "E_1_0", "E_9_1", "2_4_1"), nodes.stream().map(m -> m.get("node_id")).toList());
        Map<String, Object> feature = nodes.get(0);
        assertEquals(List.of("node_id", "feature", "layer", "ctx_idx", "feature_type", "token_prob", "is_target_logit", "run_idx",
                "reverse_ctx_idx", "jsNodeId", "clerp", "influence", "activation"), List.copyOf(feature.keySet()));
        assertEquals("cross layer transcoder", feature.get("feature_type"));
        assertEquals("0", feature.get("layer"));
        assertEquals("0_0-0", feature.get("jsNodeId"));
        assertEquals(1.5, (Double) feature.get("activation"), 1e-6);
        Map<String, Object> token = nodes.get(2);
        assertEquals("embedding", token.get("feature_type"));
        assertEquals("E", token.get("layer"));
        assertEquals(1, token.get("feature"));
        assertEquals("E_9-1", token.get("jsNodeId"));
        assertNull(token.get("activation"));
        Map<String, Object> logit = nodes.get(3);
        assertEquals("logit", logit.get("feature_type"));
        assertEquals("2", logit.get("layer"), "circuit-tracer's logit layer is n_layers + 1");
        assertEquals(true, logit.get("is_target_logit"));
        assertEquals("Output \"t4\" (p=1.000)", logit.get("clerp"));
        assertEquals("L_4-1", logit.get("jsNodeId"));
        List<Map<String, Object>> links = (List<Map<String, Object>>) doc.get("links");
        assertEquals(3, links.size());
        assertTrue(links.contains(Map.of("source", "0_0_1", "target", "2_4_1", "weight", 3.0)));
        assertTrue(links.contains(Map.of("source", "E_1_0", "target", "0_0_1", "weight", -1.0)));

        Path page = dir.resolve("hand.html");
        Files.writeString(page, GraphPage.html(doc, "../features/layer{layer}/dashboard/index.html"));
        String dom = HeadlessChromium.dumpDom(dir, page.toUri().toString());
        assertTrue(dom.contains("data-rendered=\"true\""), "the page's script ran");
        assertEquals(1, count(dom, "class=\"node feature\""));
        assertEquals(2, count(dom, "class=\"node embedding\""));
        assertEquals(1, count(dom, "class=\"node logit\""));
        assertEquals(3, count(dom, "class=\"link\""));
        assertTrue(dom.contains("href=\"../features/layer0/dashboard/index.html#f=0\""), "feature names link to the dashboard");
        Files.writeString(page, GraphPage.html(doc, null));
        String plain = HeadlessChromium.dumpDom(dir, page.toUri().toString());
        assertFalse(plain.contains("#f=0"), "no dashboard, no links");
        assertTrue(plain.contains("L0 #0"));
    }

    static int count(String text, String needle) {
        int n = 0;
        for (int i = text.indexOf(needle); i >= 0; i = text.indexOf(needle, i + 1)) {
            n++;
        }
        return n;
    }
}
