package training.dashboard;

import com.fasterxml.jackson.databind.ObjectMapper;
import training.features.Example;
import training.features.FeatureReport;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A static, self-contained dashboard: one {@code index.html} holding the data as JSON in a
 * {@code <script type="application/json">} element and the code that renders it. Opens from the
 * file system with no server and makes no network request. Corpus text is only ever inserted with
 * {@code textContent} and the embedded JSON escapes {@code < > &}, so text like
 * {@code </script><script>alert(1)</script>} shows as text and never runs.
 */
public final class DashboardWriter {

    private DashboardWriter() {
    }

    public static void write(Path dir, String title, List<FeatureReport> features) {
        try {
            Files.createDirectories(dir);
            Map<String, Object> data = new LinkedHashMap<>();
            data.put("title", title);
            List<Map<String, Object>> list = new ArrayList<>();
            for (FeatureReport f : features) {
                list.add(feature(f));
            }
            data.put("features", list);
            // Data last: a title or corpus text containing "@SCRIPT@" must stay text.
            String html = PAGE.replace("@SCRIPT@", SCRIPT).replace("@PAGE_LINKS@", PAGE_LINKS)
                    .replace("@TITLE@", escapeHtml(title))
                    .replace("@DATA@", embeddableJson(new ObjectMapper().writeValueAsString(data)));
            Files.writeString(dir.resolve("index.html"), html, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the dashboard in " + dir + ": " + e.getMessage(), e);
        }
    }

    /** Where pages added later (e.g. {@link DriftPage}) link themselves into an existing index.html. */
    static final String PAGE_LINKS = "<!--spindle:page-links-->";

    /** JSON safe inside a script element: no '<' (so no closing tag), no '>' or '&', no JS line separators. */
    static String embeddableJson(String json) {
        return json.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
                .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029");
    }

    static String escapeHtml(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;").replace("'", "&#39;");
    }

    private static Map<String, Object> feature(FeatureReport f) {
        Map<String, Object> j = new LinkedHashMap<>();
        j.put("id", f.feature());
        j.put("freq", f.frequency());
        j.put("firings", f.firings());
        j.put("max", f.max());
        j.put("mean", f.mean());
        j.put("range", f.histogramRange());
        j.put("hist", f.histogram());
        if (f.logits() != null) {
            j.put("pos", pairs(f.topLogitPieces(), f.logits().topValues()));
            j.put("neg", pairs(f.bottomLogitPieces(), f.logits().bottomValues()));
        }
        Set<String> tokens = new LinkedHashSet<>();
        List<Map<String, Object>> examples = new ArrayList<>();
        for (FeatureReport.WindowedExample w : f.examples()) {
            Example e = w.example();
            Map<String, Object> x = new LinkedHashMap<>();
            x.put("kind", e.kind() == Example.Kind.TOP ? "top" : "quantile");
            x.put("bin", e.bin());
            x.put("seq", e.seqId());
            x.put("pos", e.pos());
            x.put("act", e.activation());
            x.put("at", e.pos() - w.windowStart());
            x.put("pieces", w.pieces());
            x.put("acts", w.activations());
            examples.add(x);
            if (e.kind() == Example.Kind.TOP && e.pos() - w.windowStart() < w.pieces().length) {
                tokens.add(w.pieces()[e.pos() - w.windowStart()]);
            }
        }
        j.put("examples", examples);
        j.put("tokens", new ArrayList<>(tokens).subList(0, Math.min(8, tokens.size())));
        return j;
    }

    private static List<Object[]> pairs(String[] pieces, float[] values) {
        List<Object[]> out = new ArrayList<>();
        for (int i = 0; i < pieces.length; i++) {
            out.add(new Object[] {pieces[i], values[i]});
        }
        return out;
    }

    private static final String PAGE = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">
            <title>@TITLE@</title>
            <style>
            body{font-family:sans-serif;margin:0;display:flex;height:100vh}
            #side{width:300px;border-right:1px solid #ccc;display:flex;flex-direction:column}
            #search{margin:8px;padding:6px;font-size:14px}
            #list{overflow:auto;flex:1}
            .item{padding:4px 8px;cursor:pointer;border-bottom:1px solid #eee;font-size:13px}
            .item:hover,.item.sel{background:#eef}
            #main{flex:1;overflow:auto;padding:12px 20px}
            .ex{font-family:monospace;font-size:13px;margin:3px 0;white-space:pre-wrap;line-height:1.7}
            .tok{border-radius:2px}
            .tok.at{outline:1px solid #a00}
            .bars{display:flex;align-items:flex-end;height:100px;gap:1px;border-bottom:1px solid #999;width:600px}
            .bar{background:#3b6ea8;flex:1}
            table{border-collapse:collapse;margin-right:24px}td{padding:1px 8px;font-family:monospace;font-size:13px}
            .muted{color:#777;font-size:12px}
            </style></head>
            <body><div id="side"><input id="search" placeholder="search feature id or token text">
            <div class="muted" style="margin:0 8px 6px"><label>sort <select id="sort"><option value="id">id</option>
            <option value="freq">frequency</option><option value="max">max activation</option></select></label>
            <label><input type="checkbox" id="live" checked> only features that fired</label></div>
            <div class="muted" style="margin:0 8px 6px">@PAGE_LINKS@</div><div id="list"></div></div>
            <div id="main"></div>
            <script type="application/json" id="spindle-data">@DATA@</script>
            <script>@SCRIPT@</script>
            </body></html>
            """;

    // Every piece of data goes in through textContent or a numeric style value: never innerHTML.
    private static final String SCRIPT = """
            (function(){
            const data = JSON.parse(document.getElementById('spindle-data').textContent);
            const byId = new Map(data.features.map(f => [f.id, f]));
            const list = document.getElementById('list'), main = document.getElementById('main'), search = document.getElementById('search');
            const sort = document.getElementById('sort'), live = document.getElementById('live');
            function el(tag, text, cls){ const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
            function fmt(v){ return Number(v).toPrecision(3); }
            function shown(p){ return p.replace(/\\n/g, '\\u21b5'); }
            function renderList(){
              const q = search.value.trim().toLowerCase();
              list.replaceChildren();
              const features = data.features.slice();
              if (sort.value !== 'id') features.sort((a, b) => b[sort.value] - a[sort.value]);
              for (const f of features) {
                if (live.checked && !(f.freq > 0)) continue;
                const text = f.tokens.join(' ') + ' ' + (f.pos ? f.pos.map(p => p[0]).join(' ') : '');
                if (q && String(f.id) !== q && !text.toLowerCase().includes(q)) continue;
                const item = el('div', undefined, 'item');
                item.appendChild(el('b', '#' + f.id + ' '));
                item.appendChild(el('span', 'freq ' + fmt(f.freq) + ' max ' + fmt(f.max) + ' ', 'muted'));
                item.appendChild(el('span', f.tokens.map(shown).join(' | ')));
                item.onclick = () => { location.hash = 'f=' + f.id; };
                list.appendChild(item);
              }
            }
            function example(x, max){
              const line = el('div', undefined, 'ex');
              line.appendChild(el('span', fmt(x.act) + '  ', 'muted'));
              x.pieces.forEach((p, i) => {
                const t = el('span', shown(p), 'tok' + (i === x.at ? ' at' : ''));
                const a = x.acts[i];
                if (a > 0) t.style.background = 'rgba(255,120,0,' + Math.min(1, a / (max || 1)).toFixed(3) + ')';
                t.title = 'activation ' + fmt(a) + ' (seq ' + x.seq + ', pos ' + (x.pos - x.at + i) + ')';
                line.appendChild(t);
              });
              return line;
            }
            function logitTable(title, rows){
              const t = el('table'); const cap = el('caption', title); t.appendChild(cap);
              for (const r of rows) { const tr = el('tr'); tr.appendChild(el('td', shown(r[0]))); tr.appendChild(el('td', fmt(r[1]))); t.appendChild(tr); }
              return t;
            }
            function renderFeature(f){
              main.replaceChildren();
              main.appendChild(el('h2', 'Feature ' + f.id));
              main.appendChild(el('div', 'fires on ' + f.firings + ' tokens (frequency ' + fmt(f.freq) + '), max ' + fmt(f.max) + ', mean ' + fmt(f.mean)));
              main.appendChild(el('h3', 'Activation histogram'));
              const bars = el('div', undefined, 'bars'); const top = Math.max(1, ...f.hist);
              f.hist.forEach((c, b) => { const bar = el('div', undefined, 'bar'); bar.style.height = (100 * c / top) + 'px';
                bar.title = '[' + fmt(b * f.range / f.hist.length) + ', ' + fmt((b + 1) * f.range / f.hist.length) + '): ' + c; bars.appendChild(bar); });
              main.appendChild(bars);
              main.appendChild(el('div', '0 .. ' + fmt(f.range), 'muted'));
              main.appendChild(el('h3', 'Logits'));
              if (f.pos) { const box = el('div'); box.style.display = 'flex'; box.appendChild(logitTable('promoted', f.pos)); box.appendChild(logitTable('suppressed', f.neg)); main.appendChild(box); }
              else main.appendChild(el('div', 'not computed: the hook is not residual-stream width', 'muted'));
              main.appendChild(el('h3', 'Top activations'));
              for (const x of f.examples) if (x.kind === 'top') main.appendChild(example(x, f.max));
              main.appendChild(el('h3', 'Quantile samples'));
              let bin = null;
              for (const x of f.examples) if (x.kind === 'quantile') {
                if (x.bin !== bin) { bin = x.bin; main.appendChild(el('h4', 'bin ' + bin + ': [' + fmt(bin * f.range / 10) + ', ' + fmt((bin + 1) * f.range / 10) + ')')); }
                main.appendChild(example(x, f.max));
              }
            }
            function route(){
              const m = /f=(\\d+)/.exec(location.hash);
              const f = m ? byId.get(Number(m[1])) : undefined;
              if (f) renderFeature(f); else { main.replaceChildren(el('h2', data.title), el('div', data.features.length + ' features; pick one on the left or search by id or token text.')); }
            }
            search.addEventListener('input', renderList);
            sort.addEventListener('change', renderList);
            live.addEventListener('change', renderList);
            window.addEventListener('hashchange', route);
            renderList(); route();
            })();
            """;
}
