package training.dashboard;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import training.drift.DriftFixtures;
import testing.HeadlessChromium;
import training.drift.DriftReport;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The drift page added to an already written dashboard: its data, its link from index.html, and escaping. */
class DriftPageTest {

    static final String EVIL = "</script><script>alert(1)</script> & \u2028";

    @TempDir
    Path dir;

    static DriftReport report(String hook) {
        List<DriftReport.Unmatched> fresh = List.of(new DriftReport.Unmatched(3, 9, 0.31), new DriftReport.Unmatched(17, 2, 0.12));
        List<DriftReport.Unmatched> vanished = List.of(new DriftReport.Unmatched(5, 3, 0.4));
        long[] histogram = new long[20];
        histogram[19] = 18;
        histogram[6] = 2;
        return new DriftReport("runs/" + EVIL + "/old", "runs/new", hook, 8, 20, 20, 0.9, false, false, 20, 20, 0.9, 0.9, 18,
                histogram, fresh, vanished, new int[20], new float[20], new int[20], new float[20]);
    }

    /** The page's embedded data, parsed as the browser does. */
    static JsonNode embedded(String html) throws Exception {
        String open = "<script type=\"application/json\" id=\"spindle-drift\">";
        int start = html.indexOf(open) + open.length();
        return new ObjectMapper().readTree(html.substring(start, html.indexOf("</script>", start)));
    }

    @Test
    void pageListsNewAndVanishedFeaturesAndIsLinkedOnce() throws Exception {
        Path newDashboard = DriftFixtures.features(dir.resolve("runs/new/features"), DriftFixtures.allLive(20), true).resolve("dashboard");
        Path oldDashboard = DriftFixtures.features(dir.resolve("runs/old night/features"), DriftFixtures.allLive(20), true)
                .resolve("dashboard");
        Path page = DriftPage.write(newDashboard, report(EVIL), oldDashboard);
        DriftPage.write(newDashboard, report(EVIL), oldDashboard);

        assertEquals(newDashboard.resolve("drift.html"), page);
        String html = Files.readString(page);
        JsonNode data = embedded(html);
        assertEquals(3, data.at("/new_features/0/0").asInt());
        assertEquals(17, data.at("/new_features/1/0").asInt());
        assertEquals(5, data.at("/vanished_features/0/0").asInt());
        assertEquals(EVIL, data.get("hook").asText(), "the hook survives the escaping unchanged");
        assertEquals("../../../old%20night/features/dashboard", data.get("old_dashboard").asText());
        assertEquals(2, html.split("<script", -1).length - 1, "only the page's own two script elements");
        assertFalse(html.contains("alert(1)</script>"), "no raw markup from the data");
        assertFalse(html.contains("innerHTML"));
        assertFalse(html.substring(html.indexOf("<script")).contains("\u2028"), "no raw JS line separator in the scripts");

        String index = Files.readString(newDashboard.resolve("index.html"));
        assertEquals(2, index.split("href=\"drift.html\"", -1).length, "index.html links the page exactly once");
        assertEquals(List.of("drift.html", "features", "index", "index.html"),
                Files.list(newDashboard).map(p -> p.getFileName().toString()).sorted().toList(), "no temp files left");

        String dom = HeadlessChromium.dumpDom(dir, page.toUri().toString());
        assertTrue(dom.contains("New features (2)") && dom.contains("Vanished features (1)"), "the script rendered the lists");
        assertTrue(dom.contains("href=\"index.html#f=17\""), "new features link into this dashboard");
        assertTrue(dom.contains("href=\"../../../old%20night/features/dashboard/index.html#f=5\""), "vanished ones into the old one");
        assertEquals(2, dom.split("<script", -1).length - 1, "no script element came from the data");
        assertTrue(dom.contains("&lt;/script&gt;&lt;script&gt;alert(1)"), "markup in the data shows as text");
        String renderedIndex = HeadlessChromium.dumpDom(dir, newDashboard.resolve("index.html").toUri().toString());
        assertTrue(renderedIndex.contains("drift since the previous run") && renderedIndex.contains("class=\"item\""),
                "index.html still renders and shows the link");
    }

    @Test
    void withoutTheOldDashboardVanishedFeaturesAreNotLinked() throws Exception {
        Path newDashboard = DriftFixtures.features(dir.resolve("new"), DriftFixtures.allLive(20), true).resolve("dashboard");
        String html = Files.readString(DriftPage.write(newDashboard, report("blocks.0.hook_resid_pre"), null));
        assertTrue(embedded(html).get("old_dashboard").isNull());
    }

    @Test
    void olderDashboardsWithoutTheLinkSlotGetTheLinkAtTheTop() throws Exception {
        Path dashboard = Files.createDirectories(dir.resolve("old-style"));
        Files.writeString(dashboard.resolve("index.html"), "<!DOCTYPE html><html><body><div id=\"side\"></div></body></html>");
        DriftPage.write(dashboard, report("h"), null);
        String index = Files.readString(dashboard.resolve("index.html"));
        assertTrue(index.startsWith("<!DOCTYPE html><html><body><div>" + DriftPage.LINK + "</div><div id=\"side\">"), index);
    }

    @Test
    void aMissingDashboardIsRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DriftPage.write(dir, report("h"), null));
        assertTrue(e.getMessage().contains("has no index.html"), e.getMessage());
    }

    @Test
    void hrefsArePercentEncodedRelativePaths() {
        assertEquals("../b", DriftPage.relativeHref(dir.resolve("a"), dir.resolve("b")));
        assertEquals("../javascript%3Aalert%281%29", DriftPage.relativeHref(dir.resolve("a"), dir.resolve("javascript:alert(1)")));
        assertEquals("../%C3%A9t%C3%A9%20%23%3F", DriftPage.relativeHref(dir.resolve("a"), dir.resolve("\u00e9t\u00e9 #?")));
    }
}
