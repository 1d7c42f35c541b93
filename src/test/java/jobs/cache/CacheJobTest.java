package jobs.cache;

import activations.hooks.HookPoint;
import activations.model.ModelConfig;
import activations.safetensors.DType;
import activations.safetensors.SafeTensors;
import activations.table.ActivationManifest;
import activations.table.ActivationTableReader;
import activations.table.ShardSummary;
import jobs.cache.CacheJob.Fault;
import jobs.cache.CacheJob.Options;
import jobs.cli.Spindle;
import jobs.spark.SparkSessions;
import jobs.tokenize.TokenizeJob;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CacheJobTest {

    static final String MODEL = "models/tinystories-656k";
    static SparkSession spark;
    static Path work;
    static Path tokens;
    static long sequences;

    @BeforeAll
    static void start(@TempDir Path dir) throws Exception {
        // local[2, 4]: two threads, and a failed task is retried (up to 4 attempts) as on a cluster.
        spark = SparkSessions.create("spindle-test", "local[2,4]");
        work = dir;
        Path corpus = dir.resolve("corpus.txt");
        Files.write(corpus, Files.readAllLines(Path.of("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt")).subList(0, 40));
        tokens = dir.resolve("tokens");
        sequences = TokenizeJob.run(spark, new TokenizeJob.Options(MODEL, corpus.toString(), TokenizeJob.InputFormat.TEXT,
                TokenizeJob.TextSplit.LINE, "text", 32, false, null, false, tokens.toString(), false)).sequences();
    }

    @AfterAll
    static void stop() {
        spark.stop();
    }

    static Options options(List<String> hooks, String out) {
        return new Options(MODEL, tokens.toString(), hooks, DType.BF16, 4, 5, null, false, false,
                work.resolve(out).toString(), false, Fault.NONE, -1);
    }

    /** Every row of a cache: (seq, pos) -> token and the first hook's vector. */
    static Map<Long, float[]> readAll(Path cache, String hook, List<Long> order) {
        Configuration conf = new Configuration();
        Map<Long, float[]> rows = new HashMap<>();
        try (ActivationTableReader reader = ActivationTableReader.open(conf, new org.apache.hadoop.fs.Path(cache.toString()),
                List.of(hook), ActivationTableReader.Options.DEFAULT.withRowMetadata())) {
            int d = reader.dims()[0];
            while (true) {
                FloatBuffer buffer = FloatBuffer.allocate(64 * d);
                ActivationTableReader.RowMetadata meta = new ActivationTableReader.RowMetadata(64);
                int n = reader.read(new FloatBuffer[] {buffer}, 64, meta);
                if (n == 0) {
                    break;
                }
                for (int i = 0; i < n; i++) {
                    long key = meta.seqIds[i] * 1000 + meta.positions[i];
                    float[] v = new float[d];
                    buffer.get(i * d, v);
                    assertEquals(null, rows.put(key, v), "duplicate row " + key);
                    order.add(key);
                }
            }
        }
        return rows;
    }

    @Test
    void heldOutSequencesStayOutOfTheCacheAndTheRestIsUnchanged() {
        String hook = "blocks.1.hook_resid_post";
        CacheJob.run(spark, options(List.of(hook), "whole"));
        ActivationManifest held = CacheJob.run(spark, options(List.of(hook), "held-out").withHeldOut(3)).manifest();
        assertEquals((sequences - 3) * 32, held.tokenCount());
        assertTrue(held.skippedPositions().contains("last 3 sequences"), held.skippedPositions());
        Map<Long, float[]> whole = readAll(work.resolve("whole"), hook, new java.util.ArrayList<>());
        Map<Long, float[]> kept = readAll(work.resolve("held-out"), hook, new java.util.ArrayList<>());
        for (Map.Entry<Long, float[]> row : kept.entrySet()) {
            assertTrue(row.getKey() / 1000 < sequences - 3, "seq " + row.getKey() / 1000 + " was held out");
            assertArrayEquals(whole.get(row.getKey()), row.getValue());
        }
        var tooMany = assertThrows(IllegalArgumentException.class,
                () -> CacheJob.run(spark, options(List.of(hook), "all-held").withHeldOut(sequences)));
        assertTrue(tooMany.getMessage().contains("cannot hold out"), tooMany.getMessage());
    }

    @Test
    void cachesEveryHookAndReadsBackWhatSpindleForwardComputes() throws Exception {
        ActivationManifest m = CacheJob.run(spark, options(List.of("all"), "all-hooks")).manifest();
        ModelConfig config = ModelConfig.load(Path.of(MODEL));
        assertEquals(CacheJob.allHooks(config), m.hookNames());
        assertEquals(sequences * 32, m.tokenCount());
        assertEquals(sequences * 32, m.statistics().get("blocks.1.hook_resid_post").count());

        Row first = spark.read().parquet(tokens.toString()).where("seq_id = 3").first();
        List<Integer> ids = first.getList(1);
        Path forward = work.resolve("forward.safetensors");
        String tokenList = String.join(",", ids.stream().map(String::valueOf).toList());
        List<String> probe = List.of("hook_embed", "blocks.0.ln2.hook_normalized", "blocks.1.mlp.hook_post", "blocks.1.hook_resid_post");
        assertEquals(0, Spindle.run("forward", "--model", MODEL, "--tokens", tokenList, "--hooks", String.join(",", probe),
                "--out", forward.toString()));
        try (SafeTensors expected = SafeTensors.open(forward)) {
            for (String hook : probe) {
                Map<Long, float[]> rows = readAll(work.resolve("all-hooks"), hook, new ArrayList<>());
                float[] want = expected.floats(hook);
                int d = HookPoint.parse(hook, config).dim(config);
                for (int t = 0; t < 32; t++) {
                    float[] got = rows.get(3L * 1000 + t);
                    for (int i = 0; i < d; i++) {
                        float w = want[t * d + i];
                        assertEquals(w, got[i], Math.abs(w) * 0x1p-8f + 1e-30f, hook + " pos " + t + " dim " + i);
                    }
                }
            }
        }
    }

    @Test
    void retriedTasksNeitherDuplicateNorDropRows() {
        for (Fault fault : List.of(Fault.BEFORE_COMMIT, Fault.AFTER_COMMIT)) {
            String out = "fault-" + fault;
            ActivationManifest m = CacheJob.run(spark, options(List.of("blocks.0.hook_resid_post"), out).withFault(fault, 1)).manifest();
            List<Long> order = new ArrayList<>();
            Map<Long, float[]> rows = readAll(work.resolve(out), "blocks.0.hook_resid_post", order);
            assertEquals(sequences * 32, rows.size(), fault + ": every (seq, pos) exactly once");
            assertEquals(sequences * 32, m.tokenCount());
        }
    }

    @Test
    void anInterruptedRunResumesWithoutRecomputingCommittedShards() throws Exception {
        Options broken = options(List.of("blocks.1.hook_mlp_out"), "resumed").withFault(Fault.ALWAYS, 2);
        assertThrows(Exception.class, () -> CacheJob.run(spark, broken));
        assertFalse(Files.exists(work.resolve("resumed")), "no output appears for a failed run");
        Path partial = work.resolve(".resumed.partial");
        Map<String, String> attempts = new HashMap<>();
        for (ShardSummary s : ActivationManifest.listCommittedShards(new Configuration(),
                new org.apache.hadoop.fs.Path(partial.toString())).shards()) {
            attempts.put(s.file(), s.attempt());
        }
        assertFalse(attempts.containsKey("part-00002.parquet"));
        assertTrue(attempts.size() >= 1, "other shards committed before the failure");

        CacheJob.Result resumed = CacheJob.run(spark, options(List.of("blocks.1.hook_mlp_out"), "resumed"));
        // Tasks still running when the failed job aborted may have committed more shards since: at least these.
        assertTrue(resumed.resumedShards() >= attempts.size(), resumed.resumedShards() + " resumed shards");
        assertTrue(resumed.computedRows() < sequences * 32, "only the missing shards were computed");
        Map<String, String> after = new HashMap<>();
        for (ShardSummary s : ActivationManifest.listCommittedShards(new Configuration(),
                new org.apache.hadoop.fs.Path(work.resolve("resumed").toString())).shards()) {
            after.put(s.file(), s.attempt());
        }
        attempts.forEach((file, attempt) -> assertEquals(attempt, after.get(file), file + " was kept, not recomputed"));
        assertEquals(sequences * 32, readAll(work.resolve("resumed"), "blocks.1.hook_mlp_out", new ArrayList<>()).size());
    }

    @Test
    void shuffledCacheHoldsTheSameRowsInAnotherOrder() {
        List<String> hook = List.of("blocks.0.hook_attn_out");
        CacheJob.run(spark, options(hook, "plain"));
        Options shuffled = options(hook, "shuffled");
        shuffled = new Options(shuffled.modelDir(), shuffled.tokens(), hook, DType.F32, 4, 5, 7L, false, false,
                shuffled.output(), false, Fault.NONE, -1);
        ActivationManifest m = CacheJob.run(spark, shuffled).manifest();
        assertEquals(7L, m.shuffleSeed());
        List<Long> plainOrder = new ArrayList<>();
        List<Long> shuffledOrder = new ArrayList<>();
        Map<Long, float[]> a = readAll(work.resolve("plain"), hook.get(0), plainOrder);
        Map<Long, float[]> b = readAll(work.resolve("shuffled"), hook.get(0), shuffledOrder);
        assertEquals(a.keySet(), b.keySet());
        assertNotEquals(plainOrder, shuffledOrder);
        for (Long key : a.keySet()) {
            float[] x = a.get(key);
            float[] y = b.get(key);
            float scale = 0;
            for (float v : y) {
                scale = Math.max(scale, Math.abs(v));
            }
            for (int i = 0; i < x.length; i++) {
                // bf16 rounding, plus float noise from another batch composition (other gemm blocking)
                assertEquals(y[i], x[i], Math.abs(y[i]) * 0x1p-8f + 1e-5f * scale);
            }
        }
    }

    /** Adjacent rows (in reading order) from the same sequence. */
    static int sameSequenceNeighbours(List<Long> order) {
        int same = 0;
        for (int i = 1; i < order.size(); i++) {
            same += order.get(i) / 1000 == order.get(i - 1) / 1000 ? 1 : 0;
        }
        return same;
    }

    @Test
    void globalShuffleIsAUniformPermutationOfEveryRowExactlyOnce() {
        String hook = "blocks.0.hook_resid_post";
        CacheJob.run(spark, options(List.of(hook), "global-plain"));
        Options global = options(List.of(hook), "global").withShuffle(CacheJob.Shuffle.GLOBAL, 11L);
        CacheJob.Result result = CacheJob.run(spark, global);
        assertEquals(11L, result.manifest().shuffleSeed());
        assertTrue(result.shuffleSeconds() > 0);
        List<Long> plainOrder = new ArrayList<>();
        List<Long> order = new ArrayList<>();
        Map<Long, float[]> plain = readAll(work.resolve("global-plain"), hook, plainOrder);
        Map<Long, float[]> shuffled = readAll(work.resolve("global"), hook, order);
        assertEquals(plain.keySet(), shuffled.keySet(), "every (seq_id, pos) once (readAll fails on a duplicate)");
        assertEquals(plainOrder.size(), order.size());
        plain.forEach((key, v) -> assertArrayEquals(v, shuffled.get(key), "row " + key + " moved unchanged"));

        // Under a uniform permutation of N rows in S sequences of L rows, the expected number of adjacent
        // pairs from one sequence is sum n_s (n_s - 1) / N = L - 1, about Poisson: allow 4 sigma.
        int rowsPerSequence = 32;
        double expected = rowsPerSequence - 1;
        int same = sameSequenceNeighbours(order);
        assertTrue(same <= expected + 4 * Math.sqrt(expected), same + " same-sequence neighbours, chance is " + expected);
        assertTrue(same >= expected - 4 * Math.sqrt(expected), same + " same-sequence neighbours: too few for chance, " + expected);
        // The check tells the shuffles apart: within-shard shuffling keeps far more neighbours together.
        List<Long> shardOrder = new ArrayList<>();
        CacheJob.run(spark, options(List.of(hook), "shard-shuffled").withShuffle(CacheJob.Shuffle.SHARDS, 11L));
        readAll(work.resolve("shard-shuffled"), hook, shardOrder);
        assertTrue(sameSequenceNeighbours(shardOrder) > 2 * (expected + 4 * Math.sqrt(expected)),
                sameSequenceNeighbours(shardOrder) + " neighbours with --shuffle shards");
        assertTrue(sameSequenceNeighbours(plainOrder) > plainOrder.size() / 2);

        // Same seed, same order; another seed, another order.
        List<Long> again = new ArrayList<>();
        CacheJob.run(spark, options(List.of(hook), "global-again").withShuffle(CacheJob.Shuffle.GLOBAL, 11L));
        readAll(work.resolve("global-again"), hook, again);
        assertEquals(order, again);
        List<Long> other = new ArrayList<>();
        CacheJob.run(spark, options(List.of(hook), "global-other").withShuffle(CacheJob.Shuffle.GLOBAL, 12L));
        readAll(work.resolve("global-other"), hook, other);
        assertNotEquals(order, other);
    }

    @Test
    void globalShuffleRetriesAndResumesExactlyOnce() throws Exception {
        String hook = "blocks.1.hook_resid_post";
        for (Fault fault : List.of(Fault.BEFORE_COMMIT, Fault.AFTER_COMMIT)) {
            String out = "global-fault-" + fault;
            CacheJob.run(spark, options(List.of(hook), out).withShuffle(CacheJob.Shuffle.GLOBAL, 3L).withFault(fault, 1));
            assertEquals(sequences * 32, readAll(work.resolve(out), hook, new ArrayList<>()).size(), fault + ": every row once");
        }
        Options broken = options(List.of(hook), "global-resumed").withShuffle(CacheJob.Shuffle.GLOBAL, 3L).withFault(Fault.ALWAYS, 2);
        assertThrows(Exception.class, () -> CacheJob.run(spark, broken));
        assertFalse(Files.exists(work.resolve("global-resumed")));
        CacheJob.Result resumed = CacheJob.run(spark, options(List.of(hook), "global-resumed").withShuffle(CacheJob.Shuffle.GLOBAL, 3L));
        assertEquals(0, resumed.computedRows(), "the model did not run again: the unshuffled shards were complete");
        List<Long> order = new ArrayList<>();
        assertEquals(sequences * 32, readAll(work.resolve("global-resumed"), hook, order).size());
        List<Long> fresh = new ArrayList<>();
        readAll(work.resolve("global-fault-BEFORE_COMMIT"), hook, fresh);
        assertEquals(fresh, order, "a resumed shuffle gives the uninterrupted run's order");
        assertFalse(Files.exists(work.resolve("global-resumed").resolve(CacheJob.UNSHUFFLED_DIR)), "no unshuffled copy left");

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> options(List.of(hook), "x").withShuffle(CacheJob.Shuffle.NONE, 5L));
        assertTrue(e.getMessage().contains("--shuffle-seed 5 with --shuffle none"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> CacheJob.Shuffle.parse("globl"));
        assertTrue(e.getMessage().contains("use none, shards or global"), e.getMessage());
    }

    @Test
    void skipsBosPositions() {
        ActivationManifest m = CacheJob.run(spark, new Options(MODEL, tokens.toString(), List.of("blocks.0.hook_resid_pre"),
                DType.BF16, 4, 5, null, true, false, work.resolve("no-bos").toString(), false, Fault.NONE, -1)).manifest();
        assertEquals(sequences * 31, m.tokenCount());
        Set<Integer> positions = new HashSet<>();
        readAll(work.resolve("no-bos"), "blocks.0.hook_resid_pre", new ArrayList<>()).keySet()
                .forEach(k -> positions.add((int) (k % 1000)));
        assertFalse(positions.contains(0));
        assertTrue(m.skippedPositions().contains("BOS"));
    }

    @Test
    void badInputFailsClearlyAndKeepsCompleteOutput() throws Exception {
        var hook = assertThrows(IllegalArgumentException.class,
                () -> CacheJob.run(spark, options(List.of("blocks.0.hook_resid"), "x")));
        assertTrue(hook.getMessage().contains("valid hooks"), hook.getMessage());

        var missing = assertThrows(IllegalArgumentException.class, () -> CacheJob.run(spark, new Options(MODEL,
                work.resolve("no-tokens").toString(), List.of("blocks.0.hook_resid_post"), DType.BF16, 4, 5, null,
                false, false, work.resolve("y").toString(), false, Fault.NONE, -1)));
        assertTrue(missing.getMessage().contains("spindle tokenize"), missing.getMessage());

        Path broken = work.resolve("broken-tokens");
        try (var files = Files.list(tokens)) {
            Files.createDirectories(broken);
            for (Path f : files.toList()) {
                Files.copy(f, broken.resolve(f.getFileName()));
            }
        }
        try (var files = Files.list(broken)) {
            Path part = files.filter(f -> f.getFileName().toString().endsWith(".parquet")).findFirst().orElseThrow();
            byte[] bytes = Files.readAllBytes(part);
            Files.write(part, java.util.Arrays.copyOf(bytes, bytes.length / 2));
        }
        var corrupt = assertThrows(IllegalArgumentException.class, () -> CacheJob.run(spark, new Options(MODEL,
                broken.toString(), List.of("blocks.0.hook_resid_post"), DType.BF16, 4, 5, null, false, false,
                work.resolve("z").toString(), false, Fault.NONE, -1)));
        assertTrue(corrupt.getMessage().contains("corrupt or truncated"), corrupt.getMessage());
        assertFalse(Files.exists(work.resolve(".z.partial")), "nothing written for a corrupt input");

        CacheJob.run(spark, options(List.of("blocks.0.hook_resid_post"), "complete"));
        byte[] manifest = Files.readAllBytes(work.resolve("complete/_manifest.json"));
        var exists = assertThrows(IllegalArgumentException.class,
                () -> CacheJob.run(spark, options(List.of("blocks.0.hook_resid_post"), "complete")));
        assertTrue(exists.getMessage().contains("--overwrite"), exists.getMessage());
        assertEquals(new String(manifest), Files.readString(work.resolve("complete/_manifest.json")));
    }
}
