package jobs.features;

import activations.safetensors.DType;
import activations.table.ActivationManifest;
import activations.table.ActivationShardWriter;
import activations.tokenizer.TextTokenizer;
import jobs.spark.SparkTestSession;
import jobs.tokenize.TokenizeJob;
import testing.HeadlessChromium;
import training.dashboard.DashboardPages;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import training.evaluation.DictionaryFixtures;
import training.features.Example;
import training.features.FeatureReport;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FeaturesJobTest {

    static final String MODEL = "models/tinystories-656k";
    static final String HOOK = "blocks.0.hook_resid_post";
    static final String XSS = "She said \"<script>alert(1)</script>\" & 'Tom & Jerry' ran.";
    static final int D = 4;
    static SparkSession spark;
    static Path work;
    static Path tokens;
    static Path cache;
    static Path dictionary;
    static Map<Long, int[]> sequences;
    static int planted;

    @BeforeAll
    static void start(@TempDir Path dir) throws Exception {
        spark = SparkTestSession.start();
        work = dir;
        List<String> lines = new ArrayList<>(Files.readAllLines(Path.of("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt")).subList(0, 8));
        lines.add(2, XSS);
        lines.add(XSS);
        tokens = tokenize(lines, "tokens");
        sequences = read(tokens);
        try (TextTokenizer tokenizer = TextTokenizer.load(Path.of(MODEL))) {
            // The token that ends "alert" in the XSS line: its windows show the markup around it.
            int[] ids = tokenizer.encode(XSS, false);
            int i = 0;
            while (!tokenizer.decode(java.util.Arrays.copyOf(ids, i + 1)).contains("alert")) {
                i++;
            }
            planted = ids[i];
        }
        cache = writeCache(tokens, sequences, "cache", 3);
        dictionary = identity4(dir.resolve("dict"));
    }

    @AfterAll
    static void stop() {
        spark.stop();
    }

    static Path tokenize(List<String> lines, String name) throws Exception {
        Path corpus = work.resolve(name + ".txt");
        Files.write(corpus, lines);
        Path out = work.resolve(name);
        TokenizeJob.run(spark, new TokenizeJob.Options(MODEL, corpus.toString(), TokenizeJob.InputFormat.TEXT,
                TokenizeJob.TextSplit.LINE, "text", 16, false, null, false, out.toString(), false));
        return out;
    }

    static Map<Long, int[]> read(Path table) {
        Map<Long, int[]> out = new TreeMap<>();
        for (Row row : spark.read().parquet(table.toString()).collectAsList()) {
            out.put(row.getLong(row.fieldIndex("seq_id")),
                    row.<Integer>getList(row.fieldIndex("tokens")).stream().mapToInt(Integer::intValue).toArray());
        }
        return out;
    }

    /** Ground truth: feature 0 fires exactly on the planted token, with a value depending on where. */
    static float[] activation(long seq, int pos, int token) {
        float[] x = new float[D];
        x[0] = token == planted ? 1 + ((seq * 31 + pos * 7) % 97) / 10f : 0;
        x[1] = pos % 5 == 0 ? 0.5f + pos / 100f : 0;
        x[2] = 0.25f * (seq % 3);
        return x;
    }

    /** A float32 cache of width 4 whose rows follow {@link #activation}, in {@code shards} shards. */
    static Path writeCache(Path table, Map<Long, int[]> seqs, String name, int shards) {
        Configuration conf = new Configuration();
        Path dir = work.resolve(name);
        List<long[]> rows = new ArrayList<>();
        seqs.forEach((seq, ids) -> {
            for (int p = 0; p < ids.length; p++) {
                rows.add(new long[] {seq, p, ids[p]});
            }
        });
        for (int s = 0; s < shards; s++) {
            int from = rows.size() * s / shards;
            int to = rows.size() * (s + 1) / shards;
            int n = to - from;
            long[] seq = new long[n];
            int[] pos = new int[n];
            int[] tok = new int[n];
            float[] values = new float[n * D];
            for (int i = 0; i < n; i++) {
                long[] r = rows.get(from + i);
                seq[i] = r[0];
                pos[i] = (int) r[1];
                tok[i] = (int) r[2];
                System.arraycopy(activation(r[0], (int) r[1], (int) r[2]), 0, values, i * D, D);
            }
            try (ActivationShardWriter w = ActivationShardWriter.open(conf, new org.apache.hadoop.fs.Path(dir.resolve(
                    ActivationShardWriter.shardFileName(s)).toUri()), List.of(HOOK), new int[] {D}, DType.F32)) {
                w.writeRows(seq, pos, tok, new float[][] {values}, n);
                w.commit();
            }
        }
        try {
            org.apache.hadoop.fs.Path hadoopDir = new org.apache.hadoop.fs.Path(dir.toUri());
            ActivationManifest.CommittedShards committed = ActivationManifest.listCommittedShards(conf, hadoopDir);
            ActivationManifest.of("test", null, 16, table.toUri().toString(), null, null, committed)
                    .write(FileSystem.getLocal(conf), hadoopDir);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        return dir;
    }

    static Path identity4(Path dir) {
        float[] eye = new float[D * D];
        for (int i = 0; i < D; i++) {
            eye[i * D + i] = 1;
        }
        return DictionaryFixtures.write(dir, HOOK, D, D, eye, eye);
    }

    static FeaturesJob.Result features(Path dict, Path acts, Path table, int partitions, String out) {
        return FeaturesJob.run(spark, new FeaturesJob.Options(dict.toString(), acts.toString(), table.toString(), MODEL, 20, 6,
                partitions, work.resolve(out).toString(), false));
    }

    @Test
    void thePlantedFeatureGetsExactlyItsTokenWithContextWindowsForAnyPartitioning() throws Exception {
        List<long[]> occurrences = new ArrayList<>();
        sequences.forEach((seq, ids) -> {
            for (int p = 0; p < ids.length; p++) {
                if (ids[p] == planted) {
                    occurrences.add(new long[] {seq, p});
                }
            }
        });
        assertTrue(occurrences.size() >= 2 && occurrences.size() <= 20, "planted token occurs " + occurrences.size() + " times");
        occurrences.sort(Comparator.<long[]>comparingDouble(o -> -activation(o[0], (int) o[1], planted)[0])
                .thenComparingLong(o -> o[0]).thenComparingLong(o -> o[1]));

        FeaturesJob.Result one = features(dictionary, cache, tokens, 1, "features-1");
        List<FeatureReport.WindowedExample> top = one.features().get(0).examples().stream()
                .filter(w -> w.example().kind() == Example.Kind.TOP).toList();
        assertEquals(occurrences.size(), top.size());
        assertEquals(occurrences.size(), one.features().get(0).firings());
        for (int i = 0; i < top.size(); i++) {
            Example e = top.get(i).example();
            long seq = occurrences.get(i)[0];
            int pos = (int) occurrences.get(i)[1];
            assertEquals(seq, e.seqId(), "rank " + i);
            assertEquals(pos, e.pos(), "rank " + i);
            assertEquals(activation(seq, pos, planted)[0], e.activation());
            int[] ids = sequences.get(seq);
            int start = Math.max(0, pos - 6);
            int end = Math.min(ids.length, pos + 7);
            assertEquals(start, top.get(i).windowStart());
            assertArrayEquals(java.util.Arrays.copyOfRange(ids, start, end), top.get(i).tokens());
            for (int t = start; t < end; t++) {
                assertEquals(activation(seq, t, ids[t])[0], top.get(i).activations()[t - start], "window activation at " + t);
            }
        }
        assertEquals(0, one.features().get(3).firings(), "feature 3 never fires");
        assertNull(one.features().get(0).logits(), "width 4 is not d_model: no logit tables");
        assertFalse(one.logitsComputed());

        for (int parts : new int[] {2, 8}) {
            FeaturesJob.Result many = features(dictionary, cache, tokens, parts, "features-" + parts);
            for (int f = 0; f < D; f++) {
                assertEquals(tops(one, f), tops(many, f), parts + " partitions, feature " + f);
                assertEquals(one.features().get(f).firings(), many.features().get(f).firings());
            }
        }

        // The tables read back with Spark SQL.
        Path out = work.resolve("features-1");
        assertEquals(D, spark.read().parquet(out.resolve("features.parquet").toString()).count());
        List<Row> rows = spark.read().parquet(out.resolve("examples.parquet").toString())
                .where("feature = 0 AND kind = 'top' AND rank = 0").collectAsList();
        assertEquals(1, rows.size());
        assertEquals(occurrences.get(0)[0], rows.get(0).getLong(rows.get(0).fieldIndex("seq_id")));
        assertTrue(Files.readString(out.resolve("SCHEMA.md")).contains("window_activations"));
        String neuronpedia = Files.readString(out.resolve("neuronpedia.json"));
        assertTrue(neuronpedia.contains("\"maxValueTokenIndex\"") && neuronpedia.contains("\"frac_nonzero\""));
    }

    static List<String> tops(FeaturesJob.Result r, int f) {
        return r.features().get(f).examples().stream().filter(w -> w.example().kind() == Example.Kind.TOP)
                .map(w -> w.example() + java.util.Arrays.toString(w.activations())).toList();
    }

    @Test
    void corpusTextIsEscapedInTheDashboardAndNeverRuns() throws Exception {
        features(dictionary, cache, tokens, 2, "features-xss");
        Path index = work.resolve("features-xss/dashboard/index.html");
        String html = Files.readString(index);
        DashboardPages.assertOnlyOwnScripts(html);
        assertFalse(html.contains("alert(1)</script>"), "no raw corpus markup");
        assertFalse(html.contains("innerHTML"), "data goes in with textContent only");
        Path dashboard = index.getParent();
        for (Path data : List.of(dashboard.resolve("index/list-000.js"), dashboard.resolve("features/shard-00000.js"))) {
            String js = Files.readString(data);
            assertFalse(js.contains("<") || js.contains(">") || js.contains("&"), "no raw markup characters in " + data);
            assertTrue(js.startsWith(data.getFileName().toString().startsWith("list") ? "spindleList(0,\"" : "spindleShard(0,\""),
                    "one call with a string literal: " + js.substring(0, 40));
        }
        assertTrue(Files.readString(dashboard.resolve("features/shard-00000.js")).contains("\\u003c"),
                "the corpus markup is in the shard, escaped");

        String dom = HeadlessChromium.dumpDom(work, index.toUri() + "#f=0");
        assertTrue(dom.contains("Feature 0"), "the script ran and rendered feature 0");
        DashboardPages.assertOnlyOwnScripts(dom);
        assertTrue(dom.contains("features/shard-00000.js"), "the feature's shard was loaded on demand");
        String text = dom.replaceAll("<[^>]*>", "");
        assertTrue(dom.contains("&lt;") && text.contains("script&gt;") && text.contains("alert"), "corpus markup shows as text: " + text);
        assertFalse(dom.contains("<script>alert"));

        for (String page : List.of("", "#f=0")) {
            Path png = work.resolve("shot" + page.length() + ".png");
            HeadlessChromium.screenshot(work, index.toUri() + page, png, 1200, 800);
            BufferedImage image = ImageIO.read(png.toFile());
            int dark = 0;
            for (int y = 0; y < image.getHeight(); y += 2) {
                for (int x = 0; x < image.getWidth(); x += 2) {
                    int rgb = image.getRGB(x, y) & 0xFFFFFF;
                    dark += ((rgb >> 16 & 255) + (rgb >> 8 & 255) + (rgb & 255)) < 300 ? 1 : 0;
                }
            }
            assertTrue(dark > 500, "screenshot of '" + page + "' shows text (" + dark + " dark samples)");
        }
    }

    @Test
    void badInputFailsInOneLineAndWritesNothing() throws Exception {
        float[] eight = new float[8 * 8];
        Path wide = DictionaryFixtures.write(work.resolve("dict8"), HOOK, 8, 8, eight, eight);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> features(wide, cache, tokens, 2, "bad-width"));
        assertTrue(e.getMessage().contains("d_in is 8") && e.getMessage().contains("width 4"), e.getMessage());

        Path other = tokenize(Files.readAllLines(Path.of("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt"))
                .subList(100, 110), "other-tokens");
        e = assertThrows(IllegalArgumentException.class, () -> features(dictionary, cache, other, 2, "bad-tokens"));
        assertTrue(e.getMessage().contains("does not match the activation cache"), e.getMessage());

        Path empty = writeCache(tokens, Map.of(), "empty-cache", 1);
        e = assertThrows(IllegalArgumentException.class, () -> features(dictionary, empty, tokens, 2, "bad-empty"));
        assertTrue(e.getMessage().contains("holds no rows"), e.getMessage());

        for (String out : List.of("bad-width", "bad-tokens", "bad-empty")) {
            assertFalse(Files.exists(work.resolve(out)), out);
        }
    }
}
