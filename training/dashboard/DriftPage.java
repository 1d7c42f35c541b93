package training.dashboard;

import com.fasterxml.jackson.databind.ObjectMapper;
import training.drift.DriftReport;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code drift.html} beside a dashboard's {@code index.html}: matched share, the best-cosine
 * histogram, the new features (each linking to {@code index.html#f=N}) and the vanished ones
 * (linking to the previous run's dashboard when its directory is known). Added to an already
 * written dashboard: index.html gets a link to it. Same safety rules as {@link DashboardWriter}:
 * data as escaped JSON in a {@code <script type="application/json">}, inserted with textContent only.
 */
public final class DriftPage {

    public static final String FILE_NAME = "drift.html";
    static final String LINK = "<a href=\"" + FILE_NAME + "\">drift since the previous run</a>";

    private DriftPage() {
    }

    /**
     * Writes {@code dashboardDir/drift.html} and links it from {@code dashboardDir/index.html}.
     *
     * @param oldDashboardDirOrNull the previous run's dashboard directory (vanished features link
     *                              into it by relative path), or null for no links
     * @return the page written
     */
    public static Path write(Path dashboardDir, DriftReport report, Path oldDashboardDirOrNull) {
        Path index = dashboardDir.resolve("index.html");
        if (!Files.isRegularFile(index)) {
            throw new IllegalArgumentException(dashboardDir + " has no index.html; write the features dashboard first"
                    + " (`spindle features`), then add the drift page");
        }
        Map<String, Object> data = new LinkedHashMap<>();
        String title = "Spindle drift: " + report.hook();
        data.put("title", title);
        data.put("old_dictionary", report.oldDictionary());
        data.put("new_dictionary", report.newDictionary());
        data.put("hook", report.hook());
        data.put("threshold", report.threshold());
        data.put("old_d_sae", report.oldDSae());
        data.put("new_d_sae", report.newDSae());
        data.put("liveness_known", report.oldLivenessKnown() || report.newLivenessKnown());
        data.put("old_live", report.oldLive());
        data.put("new_live", report.newLive());
        data.put("matched_share", report.matchedShare());
        data.put("matched_share_live", report.matchedShareLive());
        data.put("mutual_matches", report.mutualMatches());
        data.put("histogram", report.cosineHistogram());
        data.put("new_features", rows(report.newFeatures()));
        data.put("vanished_features", rows(report.vanishedFeatures()));
        data.put("old_dashboard", oldDashboardDirOrNull == null ? null : relativeHref(dashboardDir, oldDashboardDirOrNull));
        try {
            String html = PAGE.replace("@SCRIPT@", SCRIPT)
                    .replace("@TITLE@", DashboardWriter.escapeHtml(title))
                    .replace("@DATA@", DashboardWriter.embeddableJson(new ObjectMapper().writeValueAsString(data)));
            Path page = dashboardDir.resolve(FILE_NAME);
            writeAtomically(page, html);
            linkFromIndex(index);
            return page;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the drift page in " + dashboardDir + ": " + e.getMessage(), e);
        }
    }

    private static List<Object[]> rows(List<DriftReport.Unmatched> features) {
        List<Object[]> out = new ArrayList<>();
        for (DriftReport.Unmatched u : features) {
            out.add(new Object[] {u.feature(), u.bestMatch(), u.cosine()});
        }
        return out;
    }

    /**
     * The old dashboard as a relative URL from the new one, every segment percent-encoded (so no
     * path can turn into a scheme such as {@code javascript:}); a file URL if no relative path exists.
     */
    static String relativeHref(Path from, Path to) {
        Path a = from.toAbsolutePath().normalize();
        Path b = to.toAbsolutePath().normalize();
        Path relative;
        try {
            relative = a.relativize(b);
        } catch (IllegalArgumentException e) {
            return b.toUri().toASCIIString();
        }
        if (relative.toString().isEmpty()) {
            return ".";
        }
        List<String> segments = new ArrayList<>();
        for (Path segment : relative) {
            segments.add(encodeSegment(segment.toString()));
        }
        return String.join("/", segments);
    }

    private static String encodeSegment(String segment) {
        StringBuilder out = new StringBuilder();
        for (byte b : segment.getBytes(StandardCharsets.UTF_8)) {
            char c = (char) (b & 0xFF);
            if (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
                out.append(c);
            } else {
                out.append('%').append(String.format("%02X", b & 0xFF));
            }
        }
        return out.toString();
    }

    /** Adds the link once: at the slot DashboardWriter leaves, or at the top of older pages without one. */
    static void linkFromIndex(Path index) throws IOException {
        String html = Files.readString(index, StandardCharsets.UTF_8);
        if (html.contains("href=\"" + FILE_NAME + "\"")) {
            return;
        }
        // The slot and the body tag are page markup: the embedded JSON cannot contain them ('<' is escaped).
        int at = html.indexOf(DashboardWriter.PAGE_LINKS);
        String insert = LINK + " ";
        if (at < 0) {
            int body = html.indexOf("<body>");
            if (body < 0) {
                throw new IllegalArgumentException(index + " is not a Spindle dashboard page (no <body>); rewrite it with"
                        + " `spindle features`");
            }
            at = body + "<body>".length();
            insert = "<div>" + LINK + "</div>";
        }
        writeAtomically(index, html.substring(0, at) + insert + html.substring(at));
    }

    private static void writeAtomically(Path file, String text) throws IOException {
        Path temp = file.resolveSibling("." + file.getFileName() + ".tmp-" + ProcessHandle.current().pid());
        try {
            Files.writeString(temp, text, StandardCharsets.UTF_8);
            Files.move(temp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(temp);
        }
    }

    private static final String PAGE = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">
            <title>@TITLE@</title>
            <style>
            body{font-family:sans-serif;margin:12px 20px}
            .bars{display:flex;align-items:flex-end;height:120px;gap:2px;border-bottom:1px solid #999;width:600px}
            .bar{background:#bbb;flex:1}.bar.hit{background:#3b6ea8}
            .axis{display:flex;justify-content:space-between;width:600px}
            .cols{display:flex;gap:40px;align-items:flex-start}
            table{border-collapse:collapse}td,th{padding:1px 10px;font-family:monospace;font-size:13px;text-align:right}
            .muted{color:#777;font-size:12px}
            </style></head>
            <body><div><a href="index.html">features</a></div><div id="main"></div>
            <script type="application/json" id="spindle-drift">@DATA@</script>
            <script>@SCRIPT@</script>
            </body></html>
            """;

    // Every piece of data goes in through textContent, a numeric style value or an href built from numbers
    // and the percent-encoded old dashboard path: never innerHTML.
    private static final String SCRIPT = """
            (function(){
            const d = JSON.parse(document.getElementById('spindle-drift').textContent);
            const main = document.getElementById('main');
            function el(tag, text, cls){ const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
            function fmt(v){ return Number(v).toFixed(3); }
            function pct(v){ return (100 * v).toFixed(1) + '%'; }
            function newHref(id){ return 'index.html#f=' + Number(id); }
            function oldHref(id){ return d.old_dashboard === null ? null : d.old_dashboard + '/index.html#f=' + Number(id); }
            function cell(id, href){ const td = el('td'); if (id < 0) { td.textContent = 'none'; return td; }
              if (href) { const a = el('a', '#' + id); a.href = href; td.appendChild(a); } else td.textContent = '#' + id; return td; }
            function table(title, note, rows, head, ownHref, otherHref){
              const box = el('div'); box.appendChild(el('h3', title + ' (' + rows.length + ')')); box.appendChild(el('div', note, 'muted'));
              const t = el('table'); const tr = el('tr'); for (const h of head) tr.appendChild(el('th', h)); t.appendChild(tr);
              for (const r of rows.slice().sort((a, b) => a[2] - b[2] || a[0] - b[0])) {
                const row = el('tr'); row.appendChild(cell(r[0], ownHref(r[0]))); row.appendChild(cell(r[1], otherHref(r[1])));
                row.appendChild(el('td', fmt(r[2]))); t.appendChild(row);
              }
              box.appendChild(t); return box;
            }
            main.appendChild(el('h2', d.title));
            main.appendChild(el('div', 'old: ' + d.old_dictionary + ' (' + d.old_d_sae + ' features)'));
            main.appendChild(el('div', 'new: ' + d.new_dictionary + ' (' + d.new_d_sae + ' features)'));
            main.appendChild(el('p', pct(d.matched_share) + ' of the new features have an old feature with decoder cosine \\u2265 ' + d.threshold
              + '; ' + d.mutual_matches + ' one-to-one (mutual best) matches' + (d.liveness_known ? ' among live features' : '') + '.'));
            if (d.liveness_known) main.appendChild(el('p', 'Over live features only (' + d.new_live + ' of ' + d.new_d_sae + ' new, ' + d.old_live + ' of '
              + d.old_d_sae + ' old fired): ' + pct(d.matched_share_live) + ' matched. Dead features are left out of everything below.'));
            main.appendChild(el('h3', 'Best old cosine of each new feature'));
            const bars = el('div', undefined, 'bars'); const top = Math.max(1, ...d.histogram); const n = d.histogram.length;
            d.histogram.forEach((c, b) => { const bar = el('div', undefined, 'bar' + ((b + 1) / n > d.threshold ? ' hit' : ''));
              bar.style.height = (120 * c / top) + 'px'; bar.title = '[' + (b / n).toFixed(2) + ', ' + ((b + 1) / n).toFixed(2) + '): ' + c; bars.appendChild(bar); });
            main.appendChild(bars);
            const axis = el('div', undefined, 'axis muted'); axis.appendChild(el('span', '0')); axis.appendChild(el('span', '0.5')); axis.appendChild(el('span', '1'));
            main.appendChild(axis);
            const cols = el('div', undefined, 'cols');
            cols.appendChild(table('New features', 'in this run, no old feature at cosine \\u2265 ' + d.threshold + '; most novel first',
              d.new_features, ['feature', 'best old', 'cosine'], newHref, oldHref));
            cols.appendChild(table('Vanished features', 'in the previous run, no new feature at cosine \\u2265 ' + d.threshold
              + (d.old_dashboard === null ? '' : '; links open the previous dashboard'), d.vanished_features, ['old feature', 'best new', 'cosine'], oldHref, newHref));
            main.appendChild(cols);
            })();
            """;
}
