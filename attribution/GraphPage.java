package attribution;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.util.Map;

/**
 * A static HTML page for one graph (no server, no network): the graph JSON embedded and drawn as
 * SVG, nodes by layer (embeddings at the bottom, logits at the top) and prompt position, links
 * coloured by sign and as thick as their weight, hover for details, and a table of the features
 * by influence whose names link to the feature dashboard ({@code dashboard#f=ID}) when one is given.
 */
public final class GraphPage {

    private static final ObjectMapper JSON = new ObjectMapper();

    private GraphPage() {
    }

    /**
     * @param dashboard link target of a feature, with {@code {layer}} standing for its layer
     *                  (e.g. {@code ../features/layer{layer}/dashboard/index.html}), or null for none
     */
    public static String html(Map<String, Object> graphJson, String dashboard) {
        String data;
        try {
            data = JSON.writeValueAsString(graphJson).replace("</", "<\\/");
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialize the graph: " + e.getMessage(), e);
        }
        String link;
        try {
            link = JSON.writeValueAsString(dashboard);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        return TEMPLATE.replace("__DATA__", data).replace("__DASHBOARD__", link.replace("</", "<\\/"));
    }

    private static final String TEMPLATE = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Attribution graph</title>
            <style>
            body{font:13px system-ui,sans-serif;margin:16px;color:#222}
            h1{font-size:18px;margin:0 0 4px} .meta{color:#555;margin-bottom:8px}
            #graph{border:1px solid #ddd;background:#fcfcfc} .tok{font:11px monospace}
            table{border-collapse:collapse;margin-top:12px} td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:left}
            #tip{position:fixed;pointer-events:none;background:#fff;border:1px solid #999;padding:4px 6px;display:none;font-size:12px}
            </style></head><body>
            <h1 id="title"></h1><div class="meta" id="meta"></div>
            <svg id="graph" xmlns="http://www.w3.org/2000/svg"></svg>
            <div id="tip"></div>
            <table id="features"><thead><tr><th>feature</th><th>layer</th><th>position</th><th>activation</th><th>influence (cumulative)</th></tr></thead><tbody></tbody></table>
            <script type="application/json" id="graph-data">__DATA__</script>
            <script>
            (() => {
            const data = JSON.parse(document.getElementById('graph-data').textContent);
            const dashboard = __DASHBOARD__;
            const ns = 'http://www.w3.org/2000/svg';
            const tokens = data.metadata.prompt_tokens;
            const logitLayer = Math.max(0, ...data.nodes.filter(n => n.feature_type === 'logit').map(n => +n.layer));
            // circuit-tracer puts logits at layer n_layers + 1: rows are Emb, L0..L(n-1), Logit.
            const rowOf = n => n.layer === 'E' ? 0 : n.feature_type === 'logit' ? logitLayer : +n.layer + 1;
            const rows = logitLayer;
            const colW = Math.max(70, Math.min(140, 1100 / tokens.length)), rowH = 110, left = 60, topMargin = 100;
            const cells = {};
            data.nodes.forEach(n => { const key = rowOf(n) + ':' + n.ctx_idx; (cells[key] = cells[key] || []).push(n); });
            const pos = {};
            Object.values(cells).forEach(list => {
              list.sort((a, b) => (a.influence ?? 0) - (b.influence ?? 0));
              const step = Math.max(2, Math.min(9, 0.85 * Math.sqrt((colW - 12) * (rowH - 24) / list.length)));
              list.forEach(n => { n._r = Math.min(3.5, step / 2.2); });
              const per = Math.max(1, Math.floor((colW - 12) / step));
              list.forEach((n, i) => {
                const x = left + n.ctx_idx * colW + 8 + (i % per) * step;
                const y = topMargin + (rows - rowOf(n)) * rowH - 12 - Math.floor(i / per) * step;
                pos[n.node_id] = [x, y];
              });
            });
            const svg = document.getElementById('graph');
            const width = left + tokens.length * colW + 220, height = topMargin + rows * rowH + 40;
            svg.setAttribute('width', width); svg.setAttribute('height', height);
            function el(name, attrs, parent) { const e = document.createElementNS(ns, name); for (const k in attrs) e.setAttribute(k, attrs[k]); (parent || svg).appendChild(e); return e; }
            for (let r = 0; r <= rows; r++) {
              const y = topMargin + (rows - r) * rowH;
              el('line', {x1: left, x2: width - 200, y1: y, y2: y, stroke: '#eee'});
              const label = r === 0 ? 'Emb' : r === rows ? 'Logit' : 'L' + (r - 1);
              el('text', {x: 4, y: y - 40, class: 'tok'}).textContent = label;
            }
            tokens.forEach((t, i) => { el('text', {x: left + i * colW + 4, y: height - 8, class: 'tok'}).textContent = t; });
            const maxW = Math.max(1e-12, ...data.links.map(l => Math.abs(l.weight)));
            const edges = el('g', {id: 'links'});
            data.links.forEach(l => {
              const a = pos[l.source], b = pos[l.target]; if (!a || !b) return;
              el('line', {x1: a[0], y1: a[1], x2: b[0], y2: b[1], class: 'link', stroke: l.weight > 0 ? '#2563eb' : '#dc2626',
                'stroke-opacity': 0.25 + 0.6 * Math.abs(l.weight) / maxW, 'stroke-width': 0.3 + 3 * Math.abs(l.weight) / maxW}, edges);
            });
            const tip = document.getElementById('tip');
            const describe = n => n.feature_type === 'logit' ? n.clerp
              : n.feature_type === 'embedding' ? 'Emb: "' + tokens[n.ctx_idx] + '"'
              : n.feature_type === 'mlp reconstruction error' ? 'Err: mlp L' + n.layer + ' "' + tokens[n.ctx_idx] + '"'
              : 'L' + n.layer + ' #' + n.feature + ' at "' + tokens[n.ctx_idx] + '" act ' + n.activation.toFixed(3);
            const shapes = el('g', {id: 'nodes'});
            data.nodes.forEach(n => {
              const [x, y] = pos[n.node_id];
              let shape;
              if (n.feature_type === 'cross layer transcoder') shape = el('circle', {cx: x, cy: y, r: n._r, fill: '#f59e0b', class: 'node feature'}, shapes);
              else if (n.feature_type === 'mlp reconstruction error') shape = el('rect', {x: x - 3, y: y - 3, width: 6, height: 6, fill: '#9ca3af', class: 'node error'}, shapes);
              else if (n.feature_type === 'embedding') shape = el('rect', {x: x - 4, y: y - 4, width: 8, height: 8, fill: '#10b981', class: 'node embedding'}, shapes);
              else { shape = el('rect', {x: x - 4, y: y - 4, width: 8, height: 8, fill: '#6366f1', class: 'node logit'}, shapes);
                     const k = data.nodes.filter(m => m.feature_type === 'logit').indexOf(n);
                     el('text', {x: left + tokens.length * colW + 10, y: topMargin + 14 + 14 * k, class: 'tok logit-label'}, shapes).textContent = n.clerp.replace('Output ', ''); }
              shape.setAttribute('data-node', n.node_id);
              shape.addEventListener('mousemove', e => { tip.style.display = 'block'; tip.style.left = (e.clientX + 12) + 'px'; tip.style.top = (e.clientY + 12) + 'px'; tip.textContent = describe(n); });
              shape.addEventListener('mouseleave', () => { tip.style.display = 'none'; });
            });
            document.getElementById('title').textContent = 'Attribution graph: ' + data.metadata.slug;
            document.getElementById('meta').textContent = data.metadata.prompt + '  |  ' + data.nodes.length + ' nodes, ' + data.links.length
              + ' links, node threshold ' + data.metadata.node_threshold + '  |  transcoders: ' + data.metadata.scan;
            const body = document.querySelector('#features tbody');
            data.nodes.filter(n => n.feature_type === 'cross layer transcoder').sort((a, b) => a.influence - b.influence).forEach(n => {
              const tr = document.createElement('tr');
              const name = document.createElement(dashboard ? 'a' : 'span');
              name.textContent = 'L' + n.layer + ' #' + n.feature;
              name.className = 'feature-name';
              if (dashboard) name.href = dashboard.split('{layer}').join(n.layer) + '#f=' + n.feature;
              const cell = document.createElement('td'); cell.appendChild(name); tr.appendChild(cell);
              [n.layer, n.ctx_idx + ' "' + tokens[n.ctx_idx] + '"', n.activation.toFixed(3), n.influence.toFixed(3)].forEach(v => {
                const td = document.createElement('td'); td.textContent = v; tr.appendChild(td); });
              body.appendChild(tr);
            });
            document.body.setAttribute('data-rendered', 'true');
            })();
            </script></body></html>
            """;
}
