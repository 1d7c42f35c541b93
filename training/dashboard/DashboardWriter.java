package training.dashboard;

import com.fasterxml.jackson.core.json.JsonWriteFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import training.features.Example;
import training.features.FeatureReport;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A static dashboard that scales to wide dictionaries: {@code index.html} (the page, its code, the
 * shard table and the dictionary's evaluation), {@code index/list-NNN.js} (every feature's id,
 * frequency, max and top tokens, for the list and the search; loaded by the page's own script tags)
 * and {@code features/shard-NNNNN.js} (full feature data, packed in id order into files of at most
 * {@link #SHARD_TARGET_BYTES}, loaded by a script tag when a feature is opened).
 *
 * <p>Script-tag shards, not {@code fetch}: browsers refuse {@code fetch} of {@code file://} URLs,
 * while a script element loads from the file system, any static web server or an object store.
 * Each shard is a single call {@code spindleShard(n, "...")} whose only argument is a string
 * literal holding JSON (all non-ASCII and {@code < > &} escaped) that the page parses with
 * {@code JSON.parse}: data is never evaluated as code, and is inserted with {@code textContent} only,
 * so corpus text like {@code </script><script>alert(1)</script>} shows as text and never runs.
 * {@code index.html#f=ID} opens a feature directly.
 */
public final class DashboardWriter {

    /** Full-data shards are cut before they pass this size (UTF-8 bytes of the file). */
    static final int SHARD_TARGET_BYTES = 1_000_000;
    /** No file the writer makes is larger than this: a feature that alone exceeds it loses examples (counted as omitted). */
    static final int FILE_LIMIT_BYTES = 2_000_000;
    /** Features per list file: about 40 bytes each, far below the file limit. */
    static final int LIST_FEATURES_PER_FILE = 8192;
    /** Distinct top-activation tokens and promoted logit tokens per feature kept for the list and the search. */
    static final int LIST_TOKENS = 5;
    static final int LIST_LOGITS = 3;

    private static final ObjectMapper JSON = new ObjectMapper();
    /** Writes string literals as pure ASCII, so a shard reads the same whatever encoding the browser assumes for it. */
    private static final ObjectMapper ASCII = JsonMapper.builder().enable(JsonWriteFeature.ESCAPE_NON_ASCII).build();

    private DashboardWriter() {
    }

    public static void write(Path dir, String title, List<FeatureReport> features) {
        write(DashboardFiles.directory(dir), dir.toString(), title, features, null, null);
    }

    /** With the dictionary's evaluation ({@code evaluation.json}, parsed) shown on the index page; null for none. */
    public static void write(Path dir, String title, List<FeatureReport> features, JsonNode evaluation, String evaluationSource) {
        write(DashboardFiles.directory(dir), dir.toString(), title, features, evaluation, evaluationSource);
    }

    public static void write(DashboardFiles files, String where, String title, List<FeatureReport> features,
                             JsonNode evaluation, String evaluationSource) {
        try {
            List<String> lists = new ArrayList<>();
            for (int from = 0; from < features.size(); from += LIST_FEATURES_PER_FILE) {
                String name = String.format("index/list-%03d.js", lists.size());
                files.write(name, call("spindleList", lists.size(),
                        listJson(features.subList(from, Math.min(features.size(), from + LIST_FEATURES_PER_FILE)))));
                lists.add(name);
            }
            List<Integer> shardStarts = writeShards(files, features);

            Map<String, Object> data = new LinkedHashMap<>();
            data.put("title", title);
            data.put("features", features.size());
            data.put("tokens", features.isEmpty() ? 0 : features.get(0).tokens());
            data.put("lists", lists.size());
            data.put("shards", shardStarts);
            data.put("evaluation", evaluation == null ? null : evaluationRows(evaluation));
            data.put("evaluation_source", evaluationSource);
            StringBuilder listTags = new StringBuilder();
            for (String name : lists) {
                listTags.append("<script src=\"").append(name).append("\" charset=\"utf-8\"></script>\n");
            }
            // Data last: a title or corpus text containing "@SCRIPT@" must stay text.
            String html = PAGE.replace("@SCRIPT@", SCRIPT).replace("@START@", START).replace("@PAGE_LINKS@", PAGE_LINKS)
                    .replace("@LISTS@", listTags.toString())
                    .replace("@TITLE@", escapeHtml(title))
                    .replace("@DATA@", embeddableJson(JSON.writeValueAsString(data)));
            files.write("index.html", html);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the dashboard in " + where + ": " + e.getMessage(), e);
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

    /** {@code name(n, "json");} with the JSON as an escaped ASCII string literal. */
    private static String call(String function, int n, String json) throws IOException {
        return function + "(" + n + "," + literal(json) + ");\n";
    }

    /** A JSON text as a JS string literal: ASCII only, and no '<', '>' or '&' even inside it. */
    static String literal(String json) throws IOException {
        return embeddableJson(ASCII.writeValueAsString(json));
    }

    /** Packs the features' full data in id order into shard files; returns each shard's first feature id. */
    private static List<Integer> writeShards(DashboardFiles files, List<FeatureReport> features) throws IOException {
        List<Integer> starts = new ArrayList<>();
        StringBuilder body = new StringBuilder();
        int from = 0;
        int overhead = call("spindleShard", 99999, "{\"from\":" + Integer.MAX_VALUE + ",\"features\":[]}").length();
        for (int i = 0; i < features.size(); i++) {
            // literal(a + "," + b) == the literals' insides joined: escaping is per character.
            String escaped = fitted(features.get(i), FILE_LIMIT_BYTES - overhead);
            if (body.length() > 0 && body.length() + 1 + escaped.length() + overhead > SHARD_TARGET_BYTES) {
                files.write(shardName(starts.size()), shardFile(starts.size(), from, body));
                starts.add(from);
                body.setLength(0);
                from = i;
            }
            if (body.length() > 0) {
                body.append(',');
            }
            body.append(escaped);
        }
        if (!features.isEmpty()) {
            files.write(shardName(starts.size()), shardFile(starts.size(), from, body));
            starts.add(from);
        }
        return starts;
    }

    static String shardName(int shard) {
        return String.format("features/shard-%05d.js", shard);
    }

    private static String shardFile(int shard, int from, CharSequence escapedFeatures) {
        // The literal's own characters ('{', '"' as \", ...) written escaped by hand around the pre-escaped body.
        return "spindleShard(" + shard + ",\"{\\\"from\\\":" + from + ",\\\"features\\\":[" + escapedFeatures + "]}\");\n";
    }

    private static String inside(String literal) {
        return literal.substring(1, literal.length() - 1);
    }

    /**
     * One feature's JSON as the inside of a string literal (ASCII, so characters are bytes), dropping
     * its last examples (quantile samples first) until it fits in {@code limit} bytes.
     */
    private static String fitted(FeatureReport f, int limit) throws IOException {
        Map<String, Object> j = feature(f);
        String escaped = inside(literal(JSON.writeValueAsString(j)));
        @SuppressWarnings("unchecked")
        List<Object> examples = (List<Object>) j.get("examples");
        int omitted = 0;
        while (escaped.length() > limit && !examples.isEmpty()) {
            int drop = Math.max(1, examples.size() / 8);
            examples.subList(examples.size() - drop, examples.size()).clear();
            omitted += drop;
            j.put("omitted", omitted);
            escaped = inside(literal(JSON.writeValueAsString(j)));
        }
        return escaped;
    }

    /** The list file's data, columnar: a local piece table (most used first, so indices are short) and per-feature columns. */
    private static String listJson(List<FeatureReport> features) throws IOException {
        List<int[]> tokenIds = new ArrayList<>();
        List<int[]> logitIds = new ArrayList<>();
        Map<String, int[]> uses = new HashMap<>();
        List<List<String>> tokenPieces = new ArrayList<>();
        List<List<String>> logitPieces = new ArrayList<>();
        for (FeatureReport f : features) {
            List<String> t = topTokens(f, LIST_TOKENS);
            List<String> l = new ArrayList<>();
            if (f.topLogitPieces() != null) {
                for (int i = 0; i < Math.min(LIST_LOGITS, f.topLogitPieces().length); i++) {
                    l.add(f.topLogitPieces()[i]);
                }
            }
            tokenPieces.add(t);
            logitPieces.add(l);
            for (String p : t) {
                uses.computeIfAbsent(p, x -> new int[1])[0]++;
            }
            for (String p : l) {
                uses.computeIfAbsent(p, x -> new int[1])[0]++;
            }
        }
        List<String> pieces = new ArrayList<>(uses.keySet());
        pieces.sort((a, b) -> uses.get(b)[0] != uses.get(a)[0] ? Integer.compare(uses.get(b)[0], uses.get(a)[0]) : a.compareTo(b));
        Map<String, Integer> index = new HashMap<>();
        for (int i = 0; i < pieces.size(); i++) {
            index.put(pieces.get(i), i);
        }
        long[] firings = new long[features.size()];
        float[] max = new float[features.size()];
        for (int i = 0; i < features.size(); i++) {
            firings[i] = features.get(i).firings();
            max[i] = Float.parseFloat(String.format(java.util.Locale.ROOT, "%.3g", features.get(i).max()));
            tokenIds.add(tokenPieces.get(i).stream().mapToInt(index::get).toArray());
            logitIds.add(logitPieces.get(i).stream().mapToInt(index::get).toArray());
        }
        Map<String, Object> j = new LinkedHashMap<>();
        j.put("from", features.isEmpty() ? 0 : features.get(0).feature());
        j.put("ids", features.stream().mapToInt(FeatureReport::feature).toArray());
        j.put("pieces", pieces);
        j.put("firings", firings);
        j.put("max", max);
        j.put("tok", tokenIds);
        j.put("logit", logitIds);
        return JSON.writeValueAsString(j);
    }

    /** Distinct pieces at the top examples' firing positions, highest first. */
    private static List<String> topTokens(FeatureReport f, int limit) {
        Set<String> tokens = new LinkedHashSet<>();
        for (FeatureReport.WindowedExample w : f.examples()) {
            Example e = w.example();
            int at = e.pos() - w.windowStart();
            if (e.kind() == Example.Kind.TOP && at < w.pieces().length) {
                tokens.add(w.pieces()[at]);
            }
        }
        return new ArrayList<>(tokens).subList(0, Math.min(limit, tokens.size()));
    }

    /**
     * Every numeric field of an evaluation, generically (new metric keys show up without a code change):
     * {@code [path, number]} for a number, {@code [path, [numbers]]} for an array of numbers, nested
     * objects and other arrays walked with dotted / indexed paths; strings and booleans left out.
     */
    static List<Object[]> evaluationRows(JsonNode evaluation) {
        List<Object[]> rows = new ArrayList<>();
        flatten("", evaluation, rows);
        return rows;
    }

    private static void flatten(String path, JsonNode node, List<Object[]> rows) {
        if (node.isNumber()) {
            rows.add(new Object[] {path, node.numberValue()});
        } else if (node.isObject()) {
            for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                flatten(path.isEmpty() ? e.getKey() : path + "." + e.getKey(), e.getValue(), rows);
            }
        } else if (node.isArray() && node.size() > 0) {
            boolean numbers = true;
            for (JsonNode x : node) {
                numbers &= x.isNumber();
            }
            if (numbers) {
                List<Number> values = new ArrayList<>();
                node.forEach(x -> values.add(x.numberValue()));
                rows.add(new Object[] {path, values});
            } else {
                for (int i = 0; i < node.size(); i++) {
                    flatten(path + "[" + i + "]", node.get(i), rows);
                }
            }
        }
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
        List<Object> examples = new ArrayList<>();
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
        }
        j.put("examples", examples);
        return j;
    }

    private static List<Object[]> pairs(String[] pieces, float[] values) {
        List<Object[]> out = new ArrayList<>();
        for (int i = 0; i < pieces.length; i++) {
            out.add(new Object[] {pieces[i], values[i]});
        }
        return out;
    }

    // 'self' lets the page load its own shard files (file://, http(s)://, an object store); nothing else loads.
    private static final String PAGE = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'">
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
            @LISTS@<script>@START@</script>
            </body></html>
            """;

    // Every piece of data goes in through textContent or a numeric style value: never innerHTML.
    private static final String SCRIPT = """
            (function(){
            const data = JSON.parse(document.getElementById('spindle-data').textContent);
            const features = [], shards = new Map(), pending = new Set(), SHOWN = 1000;
            window.spindleList = function(n, text){
              const l = JSON.parse(text);
              l.ids.forEach((id, i) => {
                const tokens = l.tok[i].map(t => l.pieces[t]), logits = l.logit[i].map(t => l.pieces[t]);
                features.push({id: id, firings: l.firings[i], freq: data.tokens ? l.firings[i] / data.tokens : 0, max: l.max[i],
                  tokens: tokens, text: (tokens.join(' ') + ' ' + logits.join(' ')).toLowerCase()});
              });
            };
            window.spindleShard = function(n, text){
              const s = JSON.parse(text); const byId = new Map(s.features.map(f => [f.id, f]));
              shards.set(n, byId); pending.delete(n); route();
            };
            const list = document.getElementById('list'), main = document.getElementById('main'), search = document.getElementById('search');
            const sort = document.getElementById('sort'), live = document.getElementById('live');
            function el(tag, text, cls){ const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
            function fmt(v){ return Number(v).toPrecision(3); }
            function shown(p){ return p.replace(/\\n/g, '\\u21b5'); }
            function renderList(){
              const q = search.value.trim().toLowerCase();
              list.replaceChildren();
              const sorted = features.slice();
              if (sort.value !== 'id') sorted.sort((a, b) => b[sort.value] - a[sort.value]);
              let matched = 0;
              for (const f of sorted) {
                if (live.checked && !(f.firings > 0)) continue;
                if (q && String(f.id) !== q && !f.text.includes(q)) continue;
                if (++matched > SHOWN) continue;
                const item = el('div', undefined, 'item');
                item.appendChild(el('b', '#' + f.id + ' '));
                item.appendChild(el('span', 'freq ' + fmt(f.freq) + ' max ' + fmt(f.max) + ' ', 'muted'));
                item.appendChild(el('span', f.tokens.map(shown).join(' | ')));
                item.onclick = () => { location.hash = 'f=' + f.id; };
                list.appendChild(item);
              }
              if (matched > SHOWN) list.appendChild(el('div', (matched - SHOWN) + ' more features match: refine the search', 'muted item'));
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
              if (f.omitted) main.appendChild(el('div', f.omitted + ' examples left out to keep the data file under its size limit', 'muted'));
              main.appendChild(el('h3', 'Top activations'));
              for (const x of f.examples) if (x.kind === 'top') main.appendChild(example(x, f.max));
              main.appendChild(el('h3', 'Quantile samples'));
              let bin = null;
              for (const x of f.examples) if (x.kind === 'quantile') {
                if (x.bin !== bin) { bin = x.bin; main.appendChild(el('h4', 'bin ' + bin + ': [' + fmt(bin * f.range / 10) + ', ' + fmt((bin + 1) * f.range / 10) + ')')); }
                main.appendChild(example(x, f.max));
              }
            }
            function evaluation(){
              const box = el('div');
              if (!data.evaluation) return box;
              box.appendChild(el('h3', 'Evaluation'));
              if (data.evaluation_source) box.appendChild(el('div', data.evaluation_source, 'muted'));
              const t = el('table'); t.id = 'evaluation';
              for (const r of data.evaluation) { const tr = el('tr'); tr.appendChild(el('td', r[0]));
                tr.appendChild(el('td', Array.isArray(r[1]) ? r[1].map(v => Number.isInteger(v) ? String(v) : fmt(v)).join(', ')
                  : (Number.isInteger(r[1]) ? String(r[1]) : fmt(r[1])))); t.appendChild(tr); }
              box.appendChild(t); return box;
            }
            function shardOf(id){
              let lo = 0, hi = data.shards.length - 1;
              while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (data.shards[mid] <= id) lo = mid; else hi = mid - 1; }
              return lo;
            }
            function load(n){
              if (pending.has(n)) return;
              pending.add(n);
              const s = document.createElement('script');
              s.src = 'features/shard-' + String(n).padStart(5, '0') + '.js'; s.charset = 'utf-8';
              s.onerror = () => { pending.delete(n); main.replaceChildren(el('h2', 'Cannot load ' + s.src),
                el('div', 'the dashboard directory is incomplete; copy it whole (index.html, index/ and features/)')); };
              document.body.appendChild(s);
            }
            function route(){
              const m = /f=(\\d+)/.exec(location.hash);
              const id = m ? Number(m[1]) : -1;
              if (id >= 0 && id < data.features && data.shards.length) {
                const n = shardOf(id), shard = shards.get(n);
                if (shard && shard.has(id)) { renderFeature(shard.get(id)); return; }
                if (!shard) { main.replaceChildren(el('h2', 'Feature ' + id), el('div', 'loading\\u2026', 'muted')); load(n); return; }
              }
              main.replaceChildren(el('h2', data.title), el('div', data.features + ' features; pick one on the left or search by id or token text.'), evaluation());
            }
            window.spindleStart = function(){
              search.addEventListener('input', renderList);
              sort.addEventListener('change', renderList);
              live.addEventListener('change', renderList);
              window.addEventListener('hashchange', route);
              renderList(); route();
            };
            })();
            """;

    private static final String START = "spindleStart();";
}
