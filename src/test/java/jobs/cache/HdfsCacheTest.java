package jobs.cache;

import activations.safetensors.DType;
import activations.table.ActivationTableReader;
import jobs.cache.CacheJob.Fault;
import jobs.cache.CacheJob.Options;
import jobs.spark.SparkSessions;
import jobs.tokenize.TokenizeJob;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import testing.MiniHdfs;

import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The corpus, token table and activation cache on a real HDFS (an in-process MiniDFSCluster):
 * tokenize and cache read and write hdfs:// paths, and the cache read back from HDFS holds
 * exactly the rows of the same run on the local filesystem.
 */
class HdfsCacheTest {

    static final String MODEL = "models/tinystories-656k";
    static final String HOOK = "blocks.1.hook_resid_post";
    static SparkSession spark;
    static MiniHdfs hdfs;
    static java.nio.file.Path work;

    @BeforeAll
    static void start(@TempDir java.nio.file.Path dir) throws Exception {
        work = dir;
        hdfs = MiniHdfs.start(dir.resolve("hdfs"));
        spark = SparkSessions.create("spindle-test", "local[2]");
    }

    @AfterAll
    static void stop() throws Exception {
        spark.stop();
        hdfs.close();
    }

    @Test
    void tokenizeAndCacheOnHdfsMatchTheLocalRun() throws Exception {
        java.nio.file.Path corpus = work.resolve("corpus.txt");
        Files.write(corpus, Files.readAllLines(java.nio.file.Path.of("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt"))
                .subList(0, 30));
        String remoteCorpus = hdfs.copyIn(corpus, "data/corpus.txt");

        String localTokens = work.resolve("tokens").toString();
        String remoteTokens = hdfs.uri("spindle/tokens");
        long local = tokenize(corpus.toString(), localTokens);
        long remote = tokenize(remoteCorpus, remoteTokens);
        assertEquals(local, remote, "the same sequences from HDFS");

        String localCache = work.resolve("activations").toString();
        String remoteCache = hdfs.uri("spindle/activations");
        CacheJob.run(spark, options(localTokens, localCache));
        CacheJob.run(spark, options(remoteTokens, remoteCache));
        assertTrue(hdfs.fileSystem().exists(new Path(remoteCache, "_manifest.json")), "the manifest is committed on HDFS");
        assertFalse(hdfs.fileSystem().exists(new Path(hdfs.uri("spindle/.activations.partial"))), "no partial directory left");

        Map<Long, float[]> expected = readAll(localCache);
        Map<Long, float[]> actual = readAll(remoteCache);
        assertTrue(expected.size() > 100, "a real cache: " + expected.size() + " rows");
        assertEquals(expected.keySet(), actual.keySet(), "every (seq, pos) once, on both filesystems");
        for (Map.Entry<Long, float[]> e : expected.entrySet()) {
            assertArrayEquals(e.getValue(), actual.get(e.getKey()), "row " + e.getKey());
        }

        // Re-running against the complete HDFS cache is refused without --overwrite, and nothing is lost.
        IllegalArgumentException refused = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> CacheJob.run(spark, options(remoteTokens, remoteCache)));
        assertTrue(refused.getMessage().contains("--overwrite"), refused.getMessage());
        assertEquals(expected.size(), readAll(remoteCache).size());
    }

    /**
     * The object-store protocol, forced on HDFS: the cache is written in place (no hidden directory
     * renamed), a failed run leaves no manifest, so readers refuse it, and the rerun resumes from the
     * shards already there, every row exactly once.
     */
    @Test
    void withoutRenameAFailedCacheIsNotACacheAndResumesInPlace() throws Exception {
        java.nio.file.Path corpus = work.resolve("corpus-marker.txt");
        Files.write(corpus, Files.readAllLines(java.nio.file.Path.of("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt"))
                .subList(30, 60));
        String localTokens = work.resolve("tokens-marker").toString();
        tokenize(corpus.toString(), localTokens);
        String localCache = work.resolve("activations-marker").toString();
        CacheJob.run(spark, options(localTokens, localCache));

        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        hadoop.set(activations.table.CommitProtocol.SETTING, "marker");
        hadoop.setBoolean("fs.hdfs.impl.disable.cache", true); // a filesystem instance of this configuration
        try {
            String remoteCache = hdfs.uri("marker/activations");
            Options broken = options(localTokens, remoteCache).withFault(Fault.ALWAYS, 2);
            org.junit.jupiter.api.Assertions.assertThrows(Exception.class, () -> CacheJob.run(spark, broken));
            org.apache.hadoop.fs.FileSystem fs = hdfs.fileSystem();
            assertTrue(fs.exists(new Path(remoteCache)), "written in place");
            assertFalse(fs.exists(new Path(hdfs.uri("marker/.activations.partial"))), "no hidden directory to rename");
            assertFalse(fs.exists(new Path(remoteCache, "_manifest.json")), "a failed run is not a cache");
            Exception unread = org.junit.jupiter.api.Assertions.assertThrows(Exception.class, () -> readAll(remoteCache));
            assertTrue(unread.getMessage().contains("_manifest.json"), unread.getMessage());

            CacheJob.Result resumed = CacheJob.run(spark, options(localTokens, remoteCache));
            assertTrue(resumed.resumedShards() >= 1, resumed.resumedShards() + " shards kept from the failed run");
            Map<Long, float[]> expected = readAll(localCache);
            Map<Long, float[]> actual = readAll(remoteCache);
            assertEquals(expected.keySet(), actual.keySet(), "every (seq, pos) once");
            for (Map.Entry<Long, float[]> e : expected.entrySet()) {
                assertArrayEquals(e.getValue(), actual.get(e.getKey()), "row " + e.getKey());
            }
        } finally {
            hadoop.unset(activations.table.CommitProtocol.SETTING);
            hadoop.unset("fs.hdfs.impl.disable.cache");
        }
    }

    private static long tokenize(String input, String output) {
        return TokenizeJob.run(spark, new TokenizeJob.Options(MODEL, input, TokenizeJob.InputFormat.TEXT,
                TokenizeJob.TextSplit.LINE, "text", 32, false, null, false, output, false)).sequences();
    }

    private static Options options(String tokens, String out) {
        return new Options(MODEL, tokens, List.of(HOOK), DType.BF16, 4, 5, null, false, false, out, false, Fault.NONE, -1);
    }

    /** (seq, pos) -> vector, for every row of the cache at {@code uri}. */
    static Map<Long, float[]> readAll(String uri) {
        Map<Long, float[]> rows = new TreeMap<>();
        try (ActivationTableReader reader = ActivationTableReader.open(new Configuration(), new Path(uri), List.of(HOOK),
                ActivationTableReader.Options.DEFAULT.withRowMetadata())) {
            int d = reader.dims()[0];
            FloatBuffer buffer = FloatBuffer.allocate(64 * d);
            while (true) {
                ActivationTableReader.RowMetadata meta = new ActivationTableReader.RowMetadata(64);
                int n = reader.read(new FloatBuffer[] {buffer.clear()}, 64, meta);
                if (n == 0) {
                    break;
                }
                for (int i = 0; i < n; i++) {
                    float[] v = new float[d];
                    buffer.get(i * d, v);
                    assertEquals(null, rows.put(meta.seqIds[i] * 1000 + meta.positions[i], v), "duplicate row");
                }
            }
        }
        return rows;
    }
}
