package training.dashboard;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import testing.HeadlessChromium;
import training.features.Example;
import training.features.FeatureReport;
import training.features.LogitTables;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The sharded dashboard: files under their limits, every feature in exactly one shard, evaluation shown generically. */
class DashboardWriterTest {

    static final String EVIL = "</script><script>alert(1)</script> & \u2028 \u00e9\u4e2d";
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    /** A feature with {@code examples} top examples of a window of {@code width} tokens, every piece unique-ish. */
    static FeatureReport feature(int id, int examples, int width) {
        List<FeatureReport.WindowedExample> windows = new ArrayList<>();
        for (int e = 0; e < examples; e++) {
            String[] pieces = new String[width];
            float[] acts = new float[width];
            int[] tokens = new int[width];
            for (int i = 0; i < width; i++) {
                pieces[i] = (i == width / 2 ? EVIL : " tok" + (id * 7 + i)) ;
                acts[i] = 0.125f * i;
            }
            windows.add(new FeatureReport.WindowedExample(new Example(id, Example.Kind.TOP, -1, e, e, 5 + width / 2, 1, 3f),
                    5, tokens, pieces, acts));
        }
        LogitTables.Table logits = new LogitTables.Table(new int[] {1, 2, 3, 4}, new float[] {4, 3, 2, 1}, new int[] {5}, new float[] {-1});
        return new FeatureReport(id, examples == 0 ? 0 : 10 + id, 1000, examples == 0 ? 0 : 3f, 1.5, 4, new long[40], windows,
                logits, new String[] {"up" + id, "b", "c", "d"}, new String[] {"down"});
    }

    /** A shard file's data as the page sees it after JSON.parse. */
    static JsonNode shardData(Path file) throws Exception {
        String js = Files.readString(file);
        String literal = js.substring(js.indexOf(',') + 1, js.lastIndexOf(')'));
        return JSON.readTree(JSON.readValue(literal, String.class));
    }

    @Test
    void shardsStayUnderTheirLimitsAndHoldEveryFeatureOnce() throws Exception {
        List<FeatureReport> features = new ArrayList<>();
        for (int f = 0; f < 300; f++) {
            features.add(feature(f, f % 3 == 0 ? 0 : 20, 21));
        }
        features.set(7, feature(7, 4000, 41)); // alone far above the file limit: loses examples, says how many
        DashboardWriter.write(dir, "wide <b>", features);

        List<Path> files;
        try (Stream<Path> walk = Files.walk(dir)) {
            files = walk.filter(Files::isRegularFile).toList();
        }
        for (Path file : files) {
            assertTrue(Files.size(file) <= DashboardWriter.FILE_LIMIT_BYTES, file + " is " + Files.size(file) + " bytes");
            for (byte b : Files.readAllBytes(file)) {
                assertTrue(b >= 0 || file.endsWith("index.html"), "shard files are ASCII: " + file);
            }
        }
        List<Path> shards = files.stream().filter(p -> p.getFileName().toString().startsWith("shard-")).sorted().toList();
        assertTrue(shards.size() > 3, "the data is spread over several shards: " + shards.size());
        JsonNode index = indexData(Files.readString(dir.resolve("index.html")));
        assertEquals(shards.size(), index.get("shards").size());
        int expected = 0;
        for (int s = 0; s < shards.size(); s++) {
            assertEquals(dir.resolve(DashboardWriter.shardName(s)), shards.get(s));
            JsonNode data = shardData(shards.get(s));
            assertEquals(index.get("shards").get(s).asInt(), data.get("from").asInt());
            for (JsonNode f : data.get("features")) {
                assertEquals(expected++, f.get("id").asInt(), "features in id order, each once");
                if (f.get("id").asInt() == 7) {
                    assertTrue(f.get("omitted").asInt() > 0 && f.get("examples").size() > 0, "trimmed to fit, and says so");
                } else {
                    assertEquals(features.get(f.get("id").asInt()).examples().size(), f.get("examples").size());
                    assertFalse(f.has("omitted"));
                }
            }
        }
        assertEquals(300, expected);
        JsonNode first = shardData(shards.get(0)).get("features").get(1);
        assertEquals(EVIL, first.at("/examples/0/pieces/10").asText(), "corpus text survives the escaping unchanged");

        String list = Files.readString(dir.resolve("index/list-000.js"));
        JsonNode l = JSON.readTree(JSON.readValue(list.substring(list.indexOf(',') + 1, list.lastIndexOf(')')), String.class));
        assertEquals(300, l.get("ids").size());
        assertEquals(11, l.get("firings").get(1).asInt());
        List<String> searchable = new ArrayList<>();
        l.get("tok").get(1).forEach(t -> searchable.add(l.get("pieces").get(t.asInt()).asText()));
        l.get("logit").get(1).forEach(t -> searchable.add(l.get("pieces").get(t.asInt()).asText()));
        assertEquals(List.of(EVIL, "up1", "b", "c"), searchable, "top tokens, then the top promoted logits");
    }

    static JsonNode indexData(String html) throws Exception {
        String open = "<script type=\"application/json\" id=\"spindle-data\">";
        int start = html.indexOf(open) + open.length();
        return JSON.readTree(html.substring(start, html.indexOf("</script>", start)));
    }

    @Test
    void everyNumericEvaluationFieldIsShownWithoutAKeyList() throws Exception {
        JsonNode evaluation = JSON.readTree("""
                {"dictionary": "d", "tokens": 16384, "reconstruction": {"fvu": 0.25, "a_metric_added_later": 7.5,
                 "hist": {"counts": [1, 2, 3], "note": "text"}}, "by_layer": [0.5, 0.25], "nested": [{"x": 1}], "ok": true}""");
        List<Object[]> rows = DashboardWriter.evaluationRows(evaluation);
        assertEquals(List.of("tokens", "reconstruction.fvu", "reconstruction.a_metric_added_later", "reconstruction.hist.counts",
                "by_layer", "nested[0].x"), rows.stream().map(r -> (String) r[0]).toList());
        assertEquals("[0.5, 0.25]", rows.get(4)[1].toString());

        List<FeatureReport> features = List.of(feature(0, 2, 5), feature(1, 2, 5));
        DashboardWriter.write(dir, "t", features, evaluation, "runs/" + EVIL + "/evaluation.json");
        String html = Files.readString(dir.resolve("index.html"));
        DashboardPages.assertOnlyOwnScripts(html);
        assertFalse(html.contains("alert(1)</script>"));

        String dom = HeadlessChromium.dumpDom(dir, dir.resolve("index.html").toUri().toString());
        DashboardPages.assertOnlyOwnScripts(dom);
        assertTrue(dom.contains("<td>reconstruction.a_metric_added_later</td><td>7.50</td>"), "a key the page never heard of");
        assertTrue(dom.contains("<td>reconstruction.hist.counts</td><td>1, 2, 3</td>") && dom.contains("<td>tokens</td><td>16384</td>"));
        assertTrue(dom.contains("&lt;/script&gt;&lt;script&gt;alert(1)"), "the source path shows as text");
        assertTrue(dom.contains("#1 "), "the feature list rendered from the list file");

        String feature = HeadlessChromium.dumpDom(dir, dir.resolve("index.html").toUri() + "#f=1");
        assertTrue(feature.contains("<h2>Feature 1</h2>") && feature.contains("Top activations"), "feature 1 loaded from its shard");
        assertFalse(feature.contains("<td>reconstruction.fvu</td>"), "the evaluation is on the index view only");
    }
}
