package jobs.pipeline;

import activations.table.ActivationManifest;
import activations.table.CommitProtocol;
import jobs.spark.SparkTestSession;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocatedFileStatus;
import org.apache.hadoop.fs.RemoteIterator;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import testing.MiniHdfs;
import training.clt.SmallShapes;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The acceptance check for clusters without a shared disk: {@code spindle pipeline} with
 * {@code out = "hdfs://..."} on a real HDFS (an in-process MiniDFSCluster), corpus there too, with
 * every stage compared against a local run of the same configuration; then the same run again
 * (nothing recomputed), and dated incremental nights with drift and retention. (A run killed while
 * it trains on HDFS and resumed: {@link PipelineKillResumeTest}.)
 */
class PipelineOnHdfsTest {

    @TempDir
    static Path base;
    static MiniHdfs hdfs;
    static SparkSession spark;
    static final PrintStream QUIET = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
    static final List<String> LINES = lines();

    @BeforeAll
    static void start() throws IOException {
        SmallShapes.singleThreaded();
        hdfs = MiniHdfs.start(base.resolve("hdfs"));
        spark = SparkTestSession.start();
    }

    @AfterAll
    static void stop() throws IOException {
        spark.stop();
        hdfs.close();
        SmallShapes.restore();
    }

    private static List<String> lines() {
        try {
            return Files.readAllLines(Path.of("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt"));
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }


    /**
     * Under both commit protocols: rename (what HDFS gets) and marker (what object stores get:
     * every output written in place with its manifest last, no directory renamed; forced here).
     */
    @Test
    void everyStageWritesToHdfsWhatItWritesLocallyAndASecondRunRecomputesNothing(@TempDir Path dir) throws Exception {
        Path corpus = dir.resolve("corpus.txt");
        Files.write(corpus, LINES.subList(0, 60));
        String remoteCorpus = hdfs.copyIn(corpus, "every/corpus.txt");
        Path local = dir.resolve("local");
        PipelineJob.run(spark, PipelineJob.plan(PipelineJobTest.everyStage(corpus.toString(), local.toString()), "local"), QUIET);
        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        for (CommitProtocol protocol : CommitProtocol.values()) {
            hadoop.set(CommitProtocol.SETTING, protocol.name().toLowerCase(java.util.Locale.ROOT));
            // A filesystem instance of this configuration, not the cached one of the first test.
            hadoop.setBoolean("fs.hdfs.impl.disable.cache", true);
            try {
                assertSameOutputs(dir, corpus, local, remoteCorpus, hdfs.uri("every/" + protocol));
            } finally {
                hadoop.unset(CommitProtocol.SETTING);
                hadoop.unset("fs.hdfs.impl.disable.cache");
            }
        }
    }

    private static void assertSameOutputs(Path dir, Path corpus, Path local, String remoteCorpus, String remote) throws Exception {
        Map<String, Object> summary = PipelineJob.run(spark, PipelineJob.plan(PipelineJobTest.everyStage(remoteCorpus, remote), "hdfs"), QUIET);
        assertEquals(7, ((Map<?, ?>) summary.get("stage_seconds")).size(), "tokenize, cache, 2 trainings, 2 evaluations, features");

        // The same files, by name, on both (Spark's part names carry a random id; checkpoint markers are remote only).
        Map<String, Long> localFiles = listing(new org.apache.hadoop.fs.Path(local.toUri()), false);
        Map<String, Long> remoteFiles = listing(new org.apache.hadoop.fs.Path(remote), false);
        assertEquals(normalized(localFiles), normalized(remoteFiles));
        for (String file : List.of("tokens/_manifest.json", "activations/_manifest.json", "dictionaries/sae/cfg.json",
                "dictionaries/sae/sae_weights.safetensors", "dictionaries/sae/metrics.jsonl", "dictionaries/clt/config.yaml",
                "evaluations/sae/evaluation.json", "evaluations/clt/evaluation.json", "features/sae/features.parquet",
                "features/sae/neuronpedia.json", "features/sae/dashboard/index.html", "features/sae/summary.json", "summary.json")) {
            assertTrue(remoteFiles.containsKey(file), file + " on HDFS");
        }
        assertTrue(remoteFiles.keySet().stream().anyMatch(f -> f.matches("dictionaries/sae/checkpoints/step-\\d+/_COMMITTED")),
                "checkpoints are committed by marker: " + remoteFiles.keySet());

        // The same results: rows, dictionaries (float rounding), evaluations, feature tables.
        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        assertEquals(ActivationManifest.read(hadoop, new org.apache.hadoop.fs.Path(local.resolve("activations").toString())).tokenCount(),
                ActivationManifest.read(hadoop, new org.apache.hadoop.fs.Path(remote + "/activations")).tokenCount());
        PipelineKillResumeTest.assertSameWeights(local.resolve("dictionaries/sae/sae_weights.safetensors"),
                download(remote + "/dictionaries/sae/sae_weights.safetensors", dir));
        for (String file : localFiles.keySet()) {
            if (file.startsWith("dictionaries/clt/") && file.endsWith(".safetensors") && !file.contains("checkpoints/")) {
                PipelineKillResumeTest.assertSameWeights(local.resolve(file), download(remote + "/" + file, dir));
            }
        }
        for (String name : List.of("sae", "clt")) {
            assertSameNumbers(local.resolve("evaluations/" + name + "/evaluation.json"),
                    download(remote + "/evaluations/" + name + "/evaluation.json", dir));
        }
        assertEquals(spark.read().parquet(local.resolve("features/sae/features.parquet").toString()).count(),
                spark.read().parquet(remote + "/features/sae/features.parquet").count());
        String index = Files.readString(download(remote + "/features/sae/dashboard/index.html", dir));
        assertTrue(index.contains("[\"reconstruction.fvu\","), "the dashboard carries the evaluation");

        // Again: every stage skipped, not a byte rewritten but the run's summary.
        Map<String, Long> before = listing(new org.apache.hadoop.fs.Path(remote), true);
        Map<String, Object> again = PipelineJob.run(spark, PipelineJob.plan(PipelineJobTest.everyStage(remoteCorpus, remote), "hdfs"), QUIET);
        assertTrue(((Map<?, ?>) again.get("stage_seconds")).isEmpty(), "a second run recomputes nothing");
        Map<String, Long> after = listing(new org.apache.hadoop.fs.Path(remote), true);
        before.keySet().removeIf(k -> k.startsWith("summary.json"));
        after.keySet().removeIf(k -> k.startsWith("summary.json"));
        assertEquals(before, after, "nothing rewritten, no rows added");
    }


    @Test
    void datedIncrementalNightsOnHdfsDriftAndPruneAsLocally(@TempDir Path dir) throws Exception {
        Path corpus = Files.createDirectories(dir.resolve("corpus"));
        Files.write(corpus.resolve("day1.txt"), LINES.subList(0, 40));
        String remoteCorpus = hdfs.copyIn(corpus.resolve("day1.txt"), "nights/corpus/day1.txt").replace("/day1.txt", "");
        Path local = dir.resolve("local");
        String remote = hdfs.uri("nights/out");
        FileSystem fs = hdfs.fileSystem();

        for (String date : List.of("2026-11-20", "2026-11-21", "2026-11-22")) {
            if (date.equals("2026-11-21")) {
                Files.write(corpus.resolve("day2.txt"), LINES.subList(40, 80));
                hdfs.copyIn(corpus.resolve("day2.txt"), "nights/corpus/day2.txt");
            }
            Map<String, Object> l = PipelineJob.run(spark, PipelineJob.plan(PipelineJobTest.night(corpus.toString(), local.toString(), date), "local"), QUIET);
            Map<String, Object> r = PipelineJob.run(spark, PipelineJob.plan(PipelineJobTest.night(remoteCorpus, remote, date), "hdfs"), QUIET);
            assertEquals(l.get("cache"), r.get("cache"), date + ": the same accumulated cache");
            assertEquals(l.get("pruned_runs"), r.get("pruned_runs"), date);
            if (!date.equals("2026-11-20")) {
                Map<?, ?> ld = (Map<?, ?>) ((Map<?, ?>) l.get("drift")).get("sae");
                Map<?, ?> rd = (Map<?, ?>) ((Map<?, ?>) r.get("drift")).get("sae");
                for (String key : List.of("since", "matched_share", "new_features", "vanished_features")) {
                    Object a = ld.get(key);
                    Object b = rd.get(key);
                    if (a instanceof Number n) {
                        assertEquals(n.doubleValue(), ((Number) b).doubleValue(), 1e-6, date + " drift " + key);
                    } else {
                        assertEquals(a, b, date + " drift " + key);
                    }
                }
                String dashboard = remote + "/runs/" + date + "/features/sae/dashboard/";
                assertTrue(fs.exists(new org.apache.hadoop.fs.Path(dashboard + "drift.html")));
                assertTrue(Files.readString(download(dashboard + "index.html", dir)).contains("drift.html"),
                        "the night's dashboard links its drift page");
                String drift = Files.readString(download(dashboard + "drift.html", dir));
                String expected = Files.readString(local.resolve("runs/" + date + "/features/sae/dashboard/drift.html"));
                assertEquals(expected.replace(local.toString(), "OUT"), drift.replace(remote, "OUT"),
                        "the same drift page, links included");
            }
            // Again the same night: nothing recomputed.
            Map<String, Object> again = PipelineJob.run(spark, PipelineJob.plan(PipelineJobTest.night(remoteCorpus, remote, date), "hdfs"), QUIET);
            assertTrue(((Map<?, ?>) again.get("stage_seconds")).isEmpty(), date + " twice recomputes nothing");
        }
        assertEquals(List.of("2026-11-21", "2026-11-22"), RunRetention.runs(new Configuration(), new org.apache.hadoop.fs.Path(remote, "runs")));
        assertFalse(fs.exists(new org.apache.hadoop.fs.Path(remote + "/runs/2026-11-20")), "the oldest night was deleted");
        assertTrue(fs.exists(new org.apache.hadoop.fs.Path(remote + "/cache/activations/_manifest.json")), "the cache stays");
    }

    /** Relative path of every file under {@code root} -> its length (and modification time when asked). */
    static Map<String, Long> listing(org.apache.hadoop.fs.Path root, boolean withTimes) throws IOException {
        FileSystem fs = root.getFileSystem(new Configuration());
        String prefix = fs.makeQualified(root).toUri().getPath().replaceAll("/$", "") + "/";
        Map<String, Long> files = new TreeMap<>();
        RemoteIterator<LocatedFileStatus> it = fs.listFiles(root, true);
        while (it.hasNext()) {
            LocatedFileStatus s = it.next();
            String relative = s.getPath().toUri().getPath().substring(prefix.length());
            if (relative.endsWith(".crc")) {
                continue;
            }
            files.put(relative + (withTimes ? "@" + s.getModificationTime() : ""), s.getLen());
        }
        return files;
    }

    /** File names without Spark's random part ids and without the remote-only checkpoint markers. */
    private static java.util.Set<String> normalized(Map<String, Long> files) {
        java.util.Set<String> names = new java.util.TreeSet<>();
        for (String f : files.keySet()) {
            if (!f.endsWith("/_COMMITTED")) {
                names.add(f.replaceAll("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID"));
            }
        }
        return names;
    }

    private static Path download(String uri, Path dir) throws IOException {
        Path local = Files.createTempFile(dir, "download-", "-" + new org.apache.hadoop.fs.Path(uri).getName());
        org.apache.hadoop.fs.Path path = new org.apache.hadoop.fs.Path(uri);
        try (InputStream in = path.getFileSystem(new Configuration()).open(path)) {
            Files.copy(in, local, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
        return local;
    }

    /** Two JSON documents equal but for float rounding in their numbers, and for the paths they name. */
    private static void assertSameNumbers(Path expected, Path actual) throws IOException {
        com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
        compare(json.readTree(expected.toFile()), json.readTree(actual.toFile()), "");
    }

    private static void compare(com.fasterxml.jackson.databind.JsonNode a, com.fasterxml.jackson.databind.JsonNode b, String at) {
        if (a.isNumber()) {
            assertTrue(b.isNumber(), at);
            assertEquals(a.asDouble(), b.asDouble(), 1e-4 * Math.max(1, Math.abs(a.asDouble())), at);
        } else if (a.isObject()) {
            assertEquals(com.google.common.collect.ImmutableSet.copyOf(a.fieldNames()), com.google.common.collect.ImmutableSet.copyOf(b.fieldNames()), at);
            a.fieldNames().forEachRemaining(f -> compare(a.get(f), b.get(f), at + "." + f));
        } else if (a.isArray()) {
            assertEquals(a.size(), b.size(), at);
            for (int i = 0; i < a.size(); i++) {
                compare(a.get(i), b.get(i), at + "[" + i + "]");
            }
        } else if (!at.endsWith("dictionary") && !at.endsWith("tokens_table") && !at.endsWith("model")) {
            assertEquals(a, b, at);
        }
    }
}
