package jobs.pipeline;

import activations.safetensors.SafeTensors;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import testing.MiniHdfs;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The acceptance check for failed nights: `spindle pipeline` in its own JVM is killed with SIGKILL
 * while it trains, the same command is run again, and it finishes with what an uninterrupted run of
 * the same configuration produces: the same dictionary up to float rounding, the same evaluation;
 * once with a local output, once with corpus and output on a real HDFS (an in-process MiniDFSCluster).
 */
class PipelineKillResumeTest {

    private static final String SAE_WEIGHTS = "dictionaries/sae/sae_weights.safetensors";

    @TempDir
    static Path dir;
    static Path corpus;
    /** The uninterrupted run every killed one is compared with, into a local directory. */
    static Path straight;
    static MiniHdfs hdfs;

    @BeforeAll
    static void uninterruptedRun() throws Exception {
        corpus = dir.resolve("corpus.txt");
        Files.write(corpus, Files.readAllLines(Path.of("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt")).subList(0, 60));
        straight = dir.resolve("straight");
        Process reference = spindle(dir, conf(dir, corpus, straight));
        assertEquals(0, waitFor(reference), () -> log(dir, straight));
        hdfs = MiniHdfs.start(dir.resolve("hdfs"));
    }

    @AfterAll
    static void stopHdfs() throws IOException {
        hdfs.close();
    }

    @Test
    void aKilledRunResumesToTheOutputsOfAnUninterruptedRun() throws Exception {
        Path killed = dir.resolve("killed");
        Path conf = conf(dir, corpus, killed);
        Process first = spindle(dir, conf);
        Path checkpoints = killed.resolve("dictionaries/sae/checkpoints");
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(3);
        while (!hasCheckpoint(checkpoints) && first.isAlive() && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertTrue(first.isAlive(), "the run was still training at its first checkpoint");
        first.destroyForcibly();
        first.waitFor();
        assertFalse(Files.exists(killed.resolve("dictionaries/sae/cfg.json")), "killed before the dictionary was finished");
        assertFalse(Files.exists(killed.resolve(SAE_WEIGHTS)));

        Process again = spindle(dir, conf);
        assertEquals(0, waitFor(again), () -> log(dir, killed));
        String resumedLog = log(dir, killed);
        assertTrue(resumedLog.contains("== tokenize: complete output exists, skipped"), resumedLog);
        assertTrue(resumedLog.contains("== cache: complete output exists, skipped"), resumedLog);

        // Same batches, same optimizer state: only float rounding differs (native kernels after a
        // restart need not sum in the same order), far below what training changes between steps.
        assertSameWeights(straight.resolve(SAE_WEIGHTS), killed.resolve(SAE_WEIGHTS));
        assertSameReconstruction(straight.resolve("evaluations/sae/evaluation.json"), killed.resolve("evaluations/sae/evaluation.json"));
    }

    /**
     * The same on HDFS, corpus and output there: the run is killed once a checkpoint is committed
     * on HDFS (its marker written), and the rerun, whose scratch directory starts empty, fetches that
     * checkpoint and ends where the uninterrupted local run ended.
     */
    @Test
    void aRunKilledWhileItTrainsOnHdfsResumesFromTheCheckpointItUploaded() throws Exception {
        String remoteCorpus = hdfs.copyIn(corpus, "killed/corpus.txt");
        String remote = hdfs.uri("killed/out");
        Path conf = conf(dir, remoteCorpus, remote, "killed-hdfs");
        FileSystem fs = hdfs.fileSystem();
        org.apache.hadoop.fs.Path checkpoints = new org.apache.hadoop.fs.Path(remote + "/dictionaries/sae/checkpoints");
        Process first = spindle(dir, conf);
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(3);
        while (!hasCommittedCheckpoint(fs, checkpoints) && first.isAlive() && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        String log = dir.resolve("killed-hdfs.log").toString();
        assertTrue(first.isAlive(), () -> "the run was still training at its first uploaded checkpoint: " + read(log));
        first.destroyForcibly();
        first.waitFor();
        assertFalse(fs.exists(new org.apache.hadoop.fs.Path(remote + "/dictionaries/sae/cfg.json")), "killed before the end");

        Process again = spindle(dir, conf);
        assertEquals(0, waitFor(again), () -> read(log));
        assertTrue(read(log).contains("== cache: complete output exists, skipped"), read(log));
        assertTrue(read(log).matches("(?s).*checkpoint step-\\d+ fetched from .*"), "the run resumed from HDFS: " + read(log));
        assertSameWeights(straight.resolve(SAE_WEIGHTS), download(remote + "/" + SAE_WEIGHTS));
        assertSameReconstruction(straight.resolve("evaluations/sae/evaluation.json"),
                download(remote + "/evaluations/sae/evaluation.json"));
    }

    private static boolean hasCommittedCheckpoint(FileSystem fs, org.apache.hadoop.fs.Path checkpoints) throws IOException {
        if (!fs.exists(checkpoints)) {
            return false;
        }
        for (FileStatus s : fs.listStatus(checkpoints)) {
            if (fs.exists(new org.apache.hadoop.fs.Path(s.getPath(), "_COMMITTED"))) {
                return true;
            }
        }
        return false;
    }

    static Path download(String uri) throws IOException {
        org.apache.hadoop.fs.Path path = new org.apache.hadoop.fs.Path(uri);
        Path local = Files.createTempFile(dir, "download-", "-" + path.getName());
        try (java.io.InputStream in = path.getFileSystem(new org.apache.hadoop.conf.Configuration()).open(path)) {
            Files.copy(in, local, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
        return local;
    }

    private static String read(String file) {
        try {
            return Files.readString(Path.of(file));
        } catch (IOException e) {
            return "(no log)";
        }
    }

    /** Same batches, same optimizer state: only float rounding differs, far below what a training step changes. */
    static void assertSameWeights(Path expected, Path actual) throws IOException {
        try (SafeTensors a = SafeTensors.open(expected); SafeTensors b = SafeTensors.open(actual)) {
            assertEquals(a.tensors().keySet(), b.tensors().keySet());
            for (String name : a.tensors().keySet()) {
                float[] x = a.floats(name);
                float[] y = b.floats(name);
                assertEquals(x.length, y.length, name);
                double maxAbs = 0;
                double maxDiff = 0;
                for (int i = 0; i < x.length; i++) {
                    maxAbs = Math.max(maxAbs, Math.abs(x[i]));
                    maxDiff = Math.max(maxDiff, Math.abs(x[i] - y[i]));
                }
                assertTrue(maxDiff <= 1e-5 * maxAbs, name + " differs by " + maxDiff + " (max " + maxAbs + ")");
            }
        }
    }

    /** The evaluations' reconstruction figures agree to float rounding. */
    @SuppressWarnings("unchecked")
    static void assertSameReconstruction(Path expected, Path actual) throws IOException {
        com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
        Map<String, Object> x = (Map<String, Object>) json.readValue(expected.toFile(), Map.class).get("reconstruction");
        Map<String, Object> y = (Map<String, Object>) json.readValue(actual.toFile(), Map.class).get("reconstruction");
        assertEquals(x.keySet(), y.keySet());
        for (String key : x.keySet()) {
            if (x.get(key) instanceof Number n) {
                assertEquals(n.doubleValue(), ((Number) y.get(key)).doubleValue(), 1e-4 * Math.max(1, Math.abs(n.doubleValue())), key);
            } else {
                assertEquals(x.get(key), y.get(key), key);
            }
        }
    }

    static Path conf(Path dir, Path corpus, Path out) throws IOException {
        return conf(dir, corpus.toString(), out.toString(), out.getFileName().toString());
    }

    /** The configuration file {@code dir/NAME.conf} for a run into {@code out} (a path or a filesystem URI). */
    static Path conf(Path dir, String corpus, String out, String name) throws IOException {
        Path file = dir.resolve(name + ".conf");
        // Long enough (about 1,000 steps) that the first checkpoint comes well before the end.
        Files.writeString(file, """
                corpus = "%s"
                out = "%s"
                master = "local[2]"
                context-size = 32
                shard-sequences = 16
                evaluate-sequences = 4
                feature-top-k = 3
                feature-context = 2
                saes = [{ name = sae, hook = "blocks.1.hook_resid_post", architecture = topk, k = 8, d-sae = 512,
                          batch-tokens = 512, tokens = 600000, epochs = 100, checkpoint-every = 20,
                          metrics-every = 50, normalization-batches = 1 }]
                """.formatted(corpus, out));
        return file;
    }

    /** `spindle pipeline --conf FILE` in a JVM of its own, with the launcher's JVM options; output to a log. */
    static Process spindle(Path dir, Path conf) throws IOException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        for (String line : Files.readAllLines(Path.of("conf/jvm-options"))) {
            if (!line.isBlank() && !line.startsWith("#")) {
                command.add(line.strip());
            }
        }
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), "jobs.cli.Spindle", "pipeline", "--conf",
                conf.toString()));
        String name = conf.getFileName().toString().replace(".conf", "");
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve(name + ".log").toFile()));
        builder.environment().put("OPT_OUT_TRACKING", "true");
        return builder.start();
    }

    static int waitFor(Process process) throws InterruptedException {
        if (!process.waitFor(5, TimeUnit.MINUTES)) {
            process.destroyForcibly();
            return -1;
        }
        return process.exitValue();
    }

    private static boolean hasCheckpoint(Path checkpoints) throws IOException {
        if (!Files.isDirectory(checkpoints)) {
            return false;
        }
        try (Stream<Path> entries = Files.list(checkpoints)) {
            return entries.anyMatch(p -> p.getFileName().toString().startsWith("step-"));
        }
    }

    static String log(Path dir, Path out) {
        try {
            return Files.readString(dir.resolve(out.getFileName() + ".log"), StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

}
