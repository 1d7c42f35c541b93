package jobs.features;

import activations.safetensors.DType;
import activations.table.ActivationManifest;
import activations.table.ActivationShardWriter;
import jobs.spark.SparkTestSession;
import jobs.tokenize.TokenizeJob;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import testing.HeadlessChromium;
import training.dashboard.DashboardPages;
import training.evaluation.DictionaryFixtures;
import training.features.FeatureReport;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The features stage and its dashboard at the width people train: a synthetic 65,536-feature
 * dictionary over a d 768 cache. Feature f reads dimension f mod 768 (scaled by 1 + f/768/100) and
 * row r of the cache is the one-hot e_(r mod 768), so feature f fires exactly on the rows r with
 * r = f (mod 768): every feature fires, at a known count. Few rows keep it quick; the limits on
 * the dashboard's files depend on d_sae, not on rows.
 */
class WideDictionaryDashboardTest {

    static final int D = 768;
    static final int D_SAE = 65_536;
    static final String HOOK = "blocks.0.hook_resid_post";
    static final long MB = 1_000_000;
    static SparkSession spark;
    static Path work;

    @BeforeAll
    static void start(@TempDir Path dir) {
        spark = SparkTestSession.start();
        work = dir;
    }

    @AfterAll
    static void stop() {
        spark.stop();
    }

    @Test
    void dashboardOfA65kFeatureDictionaryStaysSmallAndRendersAFeature() throws Exception {
        List<String> lines = Files.readAllLines(Path.of("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt"))
                .subList(0, Integer.getInteger("spindle.wide.lines", 32));
        Path corpus = work.resolve("corpus.txt");
        Files.write(corpus, lines);
        Path tokens = work.resolve("tokens");
        TokenizeJob.run(spark, new TokenizeJob.Options(FeaturesJobTest.MODEL, corpus.toString(), TokenizeJob.InputFormat.TEXT,
                TokenizeJob.TextSplit.LINE, "text", 16, false, null, false, tokens.toString(), false));
        Map<Long, int[]> sequences = readSequences(tokens);
        int rows = writeOneHotCache(tokens, sequences, work.resolve("cache"));
        assertTrue(rows >= D, "every feature fires at least once: " + rows + " rows");

        float[] wEnc = new float[D * D_SAE];
        float[] wDec = new float[D_SAE * D];
        for (int f = 0; f < D_SAE; f++) {
            wEnc[(f % D) * D_SAE + f] = 1 + (f / D) / 100f;
            wDec[f * D + f % D] = 1;
        }
        Path dictionary = DictionaryFixtures.write(work.resolve("dict"), HOOK, D, D_SAE, wEnc, wDec);
        wEnc = null;
        wDec = null;
        Path evaluation = work.resolve("evaluation.json");
        Files.writeString(evaluation, "{\"reconstruction\": {\"fvu\": 0.125, \"l0\": 85}, \"hook\": \"h\"}");

        resetPeaks();
        long started = System.nanoTime();
        FeaturesJob.Result result = FeaturesJob.run(spark, new FeaturesJob.Options(dictionary.toString(), work.resolve("cache").toString(),
                tokens.toString(), FeaturesJobTest.MODEL, 5, 3, 2, work.resolve("features").toString(), false, evaluation.toString()));
        double seconds = (System.nanoTime() - started) / 1e9;
        System.out.printf("features at d_sae %d: %d rows in %.1f s (%.0f rows/s, whole stage, machine shared); peak heap %.0f MiB%n",
                D_SAE, rows, seconds, rows / seconds, peakHeap() / 1048576.0);

        assertEquals(D_SAE, result.features().size());
        for (int f : new int[] {0, 767, 768, 40_000, 65_535}) {
            FeatureReport r = result.features().get(f);
            long expected = (rows - f % D + D - 1) / D;
            assertEquals(expected, r.firings(), "feature " + f + " fires on the rows = f mod 768");
            assertEquals(1 + (f / D) / 100f, r.max(), 1e-2, "feature " + f);
        }

        Path dashboard = work.resolve("features/dashboard");
        long indexPage = Files.size(dashboard.resolve("index.html"));
        List<Path> files;
        try (Stream<Path> walk = Files.walk(dashboard)) {
            files = walk.filter(Files::isRegularFile).toList();
        }
        long largest = 0;
        long total = 0;
        for (Path file : files) {
            largest = Math.max(largest, Files.size(file));
            total += Files.size(file);
            if (file.getParent().endsWith("index")) {
                indexPage += Files.size(file); // what the index page loads up front
            }
        }
        System.out.printf("dashboard: %d files, %.1f MB; index page with its list files %.2f MB; largest file %.2f MB%n",
                files.size(), total / 1e6, indexPage / 1e6, largest / 1e6);
        assertTrue(indexPage <= 5 * MB, "index page and its list files: " + indexPage + " bytes");
        assertTrue(largest <= 2 * MB, "largest file: " + largest + " bytes");

        String index = dashboard.resolve("index.html").toUri().toString();
        long t0 = System.nanoTime();
        String dom = HeadlessChromium.dumpDom(work, index + "#f=40000");
        System.out.printf("headless Chromium rendered feature 40000 in %.1f s (process start included)%n", (System.nanoTime() - t0) / 1e9);
        DashboardPages.assertOnlyOwnScripts(dom);
        assertTrue(dom.contains("<h2>Feature 40000</h2>") && dom.contains("Top activations"), "feature 40000 rendered from its shard");
        assertTrue(dom.contains("class=\"tok at\""), "its examples rendered");
        assertTrue(dom.contains((D_SAE - 1000) + " more features match"), "the list knows every feature (all list files loaded)");
        String home = HeadlessChromium.dumpDom(work, index);
        assertTrue(home.contains("<td>reconstruction.fvu</td><td>0.125</td>"), "the evaluation table on the index");
    }

    static Map<Long, int[]> readSequences(Path table) {
        Map<Long, int[]> out = new java.util.TreeMap<>();
        for (org.apache.spark.sql.Row row : spark.read().parquet(table.toString()).collectAsList()) {
            out.put(row.getLong(row.fieldIndex("seq_id")),
                    row.<Integer>getList(row.fieldIndex("tokens")).stream().mapToInt(Integer::intValue).toArray());
        }
        return out;
    }

    /** A bfloat16 cache whose r-th row (in seq_id, pos order) is e_(r mod 768); returns the row count. */
    static int writeOneHotCache(Path table, Map<Long, int[]> sequences, Path dir) throws Exception {
        Configuration conf = new Configuration();
        List<long[]> rows = new ArrayList<>();
        sequences.forEach((seq, ids) -> {
            for (int p = 0; p < ids.length; p++) {
                rows.add(new long[] {seq, p, ids[p]});
            }
        });
        int n = rows.size();
        long[] seq = new long[n];
        int[] pos = new int[n];
        int[] tok = new int[n];
        float[] values = new float[n * D];
        for (int r = 0; r < n; r++) {
            seq[r] = rows.get(r)[0];
            pos[r] = (int) rows.get(r)[1];
            tok[r] = (int) rows.get(r)[2];
            values[r * D + r % D] = 1;
        }
        try (ActivationShardWriter w = ActivationShardWriter.open(conf, new org.apache.hadoop.fs.Path(dir.resolve(
                ActivationShardWriter.shardFileName(0)).toUri()), List.of(HOOK), new int[] {D}, DType.BF16)) {
            w.writeRows(seq, pos, tok, new float[][] {values}, n);
            w.commit();
        }
        org.apache.hadoop.fs.Path hadoopDir = new org.apache.hadoop.fs.Path(dir.toUri());
        ActivationManifest.of("test", null, 16, table.toUri().toString(), null, null,
                ActivationManifest.listCommittedShards(conf, hadoopDir)).write(FileSystem.getLocal(conf), hadoopDir);
        return n;
    }

    static void resetPeaks() {
        System.gc();
        for (MemoryPoolMXBean pool : ManagementFactory.getMemoryPoolMXBeans()) {
            pool.resetPeakUsage();
        }
    }

    /** Sum of the heap pools' peaks since the reset: an upper bound of the peak heap in use (driver and executor share this JVM). */
    static long peakHeap() {
        long peak = 0;
        for (MemoryPoolMXBean pool : ManagementFactory.getMemoryPoolMXBeans()) {
            if (pool.getType() == MemoryType.HEAP) {
                peak += pool.getPeakUsage().getUsed();
            }
        }
        return peak;
    }
}
