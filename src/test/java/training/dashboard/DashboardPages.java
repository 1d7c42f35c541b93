package training.dashboard;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Checks shared by the dashboard tests: which script elements a page (or its rendered DOM) may hold. */
public final class DashboardPages {

    /** The page's own elements: its JSON data, its inline code, its list files and (in the DOM) the feature shards it loaded. */
    private static final Pattern OWN = Pattern.compile("<script>|<script type=\"application/json\" id=\"spindle-data\">"
            + "|<script src=\"index/list-\\d{3}\\.js\" charset=\"utf-8\">|<script src=\"features/shard-\\d{5}\\.js\" charset=\"utf-8\">");

    private DashboardPages() {
    }

    public static List<String> scriptTags(String html) {
        List<String> tags = new ArrayList<>();
        Matcher m = Pattern.compile("<script[^>]*>").matcher(html);
        while (m.find()) {
            tags.add(m.group());
        }
        return tags;
    }

    /** Every script element is one the dashboard itself made: none came from the data. */
    public static void assertOnlyOwnScripts(String html) {
        List<String> tags = scriptTags(html);
        assertTrue(tags.size() >= 3, "the page's own scripts are there: " + tags);
        for (String tag : tags) {
            assertTrue(OWN.matcher(tag).matches(), "a script element the dashboard did not make: " + tag);
        }
        assertTrue(html.split("<script>", -1).length - 1 == 2, "exactly the page's two inline scripts");
    }
}
