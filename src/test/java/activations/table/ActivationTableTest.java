package activations.table;

import activations.safetensors.DType;
import activations.table.TableFixtures.Data;
import org.apache.hadoop.fs.Path;
import org.apache.parquet.hadoop.ParquetFileReader;
import org.apache.parquet.hadoop.util.HadoopInputFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;

import static activations.table.TableFixtures.DIMS;
import static activations.table.TableFixtures.HOOKS;
import static activations.table.TableFixtures.conf;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ActivationTableTest {

    private static final int[] SHARDS = {300, 0, 250, 130};
    private static final int ROWS = 680;

    @TempDir
    java.nio.file.Path tmp;

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"BF16", "F16", "F32"})
    void roundTripAcrossShardsAndRowGroupsKeepsValuesWithinTheDtypeRounding(DType dtype) throws IOException {
        Data data = new Data(ROWS, 1);
        Path dir = TableFixtures.writeCache(tmp, data, SHARDS, dtype);
        int groups;
        try (ParquetFileReader footer = ParquetFileReader.open(HadoopInputFile.fromPath(new Path(dir, "part-00000.parquet"), conf()))) {
            groups = footer.getRowGroups().size();
        }
        assertTrue(groups >= 3, "the test needs several row groups per shard, got " + groups);

        try (ActivationTableReader reader = ActivationTableReader.open(conf(), dir, HOOKS,
                ActivationTableReader.Options.DEFAULT.withRowMetadata())) {
            assertEquals(ROWS, reader.rowCount());
            assertEquals(dtype.userName(), reader.manifest().dtype());
            FloatBuffer[] buffers = new FloatBuffer[HOOKS.size()];
            for (int h = 0; h < buffers.length; h++) {
                buffers[h] = FloatBuffer.allocate(37 * DIMS[h]);
            }
            ActivationTableReader.RowMetadata meta = new ActivationTableReader.RowMetadata(ROWS);
            int row = 0;
            int n;
            while ((n = reader.read(buffers, 37, meta)) > 0) {
                for (int h = 0; h < buffers.length; h++) {
                    buffers[h].flip();
                    for (int r = 0; r < n; r++) {
                        for (int j = 0; j < DIMS[h]; j++) {
                            float expected = data.value(h, row + r, j);
                            float actual = buffers[h].get();
                            assertEquals(expected, actual, TableFixtures.tolerance(dtype, expected),
                                    "hook " + h + " row " + (row + r) + " dim " + j);
                        }
                    }
                    buffers[h].clear();
                }
                row += n;
                assertEquals(row, reader.position());
            }
            assertEquals(ROWS, row);
            for (int r = 0; r < ROWS; r++) {
                assertEquals(Data.seqId(r), meta.seqIds[r]);
                assertEquals(Data.pos(r), meta.positions[r]);
                assertEquals(Data.tokenId(r), meta.tokenIds[r]);
            }
        }
    }

    @Test
    void readsIntoDirectBuffersToo() {
        Data data = new Data(ROWS, 2);
        Path dir = TableFixtures.writeCache(tmp, data, SHARDS, DType.F32);
        try (ActivationTableReader reader = ActivationTableReader.open(conf(), dir, HOOKS)) {
            float[][] out = TableFixtures.readAll(reader, ROWS, 64, true);
            for (int h = 0; h < HOOKS.size(); h++) {
                assertArrayEqualsExactly(data.values[h], out[h]);
            }
        }
    }

    @Test
    void projectionReadsOneHookOfThreeAndOnlyItsBytes() {
        // default (large) row groups: with tiny ones, read-ahead buffers would cover neighbouring columns
        int rows = 4000;
        Data data = new Data(rows, 3);
        Path dir = TableFixtures.writeCache(tmp, data, new int[] {rows}, DType.F32, ActivationShardWriter.Options.DEFAULT);
        org.apache.hadoop.conf.Configuration conf = conf();
        // vectored reads of the local file system bypass its byte counters
        conf.setBoolean("parquet.hadoop.vectored.io.enabled", false);
        long before = localBytesRead();
        try (ActivationTableReader reader = ActivationTableReader.open(conf, dir, List.of(HOOKS.get(1)))) {
            assertEquals(List.of(HOOKS.get(1)), reader.hooks());
            assertEquals(DIMS[1], reader.dims()[0]);
            float[][] out = TableFixtures.readAll(reader, rows, 50, false);
            assertArrayEqualsExactly(data.values[1], out[0]);
        }
        long oneHook = localBytesRead() - before;
        before = localBytesRead();
        try (ActivationTableReader reader = ActivationTableReader.open(conf, dir, HOOKS)) {
            TableFixtures.readAll(reader, rows, 50, false);
        }
        long allHooks = localBytesRead() - before;
        // hook 1 is 8 of 48 floats a row: reading it alone must read far less than everything
        assertTrue(oneHook < allHooks / 3, "one hook read " + oneHook + " bytes, all hooks " + allHooks);
    }

    @SuppressWarnings("deprecation") // the per-scheme counters are the simple way to see bytes read
    private static long localBytesRead() {
        long total = 0;
        for (var stats : org.apache.hadoop.fs.FileSystem.getAllStatistics()) {
            if ("file".equals(stats.getScheme())) {
                total += stats.getBytesRead();
            }
        }
        return total;
    }

    @Test
    void unknownHookErrorListsTheAvailableHooks() {
        Path dir = TableFixtures.writeCache(tmp, new Data(20, 4), new int[] {20}, DType.BF16);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ActivationTableReader.open(conf(), dir, List.of("blocks.9.hook_resid_post")));
        assertTrue(e.getMessage().contains("blocks.9.hook_resid_post"), e.getMessage());
        for (String hook : HOOKS) {
            assertTrue(e.getMessage().contains(hook), e.getMessage());
        }
    }

    @Test
    void truncatedShardFailsWithOneLineNamingTheFile() throws IOException {
        Path dir = TableFixtures.writeCache(tmp, new Data(ROWS, 5), SHARDS, DType.BF16);
        java.nio.file.Path shard = tmp.resolve("part-00002.parquet");
        try (RandomAccessFile file = new RandomAccessFile(shard.toFile(), "rw")) {
            file.setLength(file.length() / 2);
        }
        try (ActivationTableReader reader = ActivationTableReader.open(conf(), dir, HOOKS)) {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> TableFixtures.readAll(reader, ROWS, 100, false));
            assertTrue(e.getMessage().contains("part-00002.parquet"), e.getMessage());
            assertTrue(e.getMessage().contains("corrupt or truncated"), e.getMessage());
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
        }
    }

    @Test
    void corruptPageBytesAreCaughtByThePageChecksum() throws IOException {
        Path dir = TableFixtures.writeCache(tmp, new Data(ROWS, 6), SHARDS, DType.F32);
        java.nio.file.Path shard = tmp.resolve("part-00000.parquet");
        byte[] bytes = Files.readAllBytes(shard);
        for (int i = 2000; i < 2100; i++) {
            bytes[i] ^= 0x5a; // inside the first row group's value bytes, footer untouched
        }
        Files.write(shard, bytes);
        try (ActivationTableReader reader = ActivationTableReader.open(conf(), dir, HOOKS)) {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> TableFixtures.readAll(reader, ROWS, 100, false));
            assertTrue(e.getMessage().contains("part-00000.parquet"), e.getMessage());
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
        }
    }

    @Test
    void nanFailsNamingSeqPosAndHookAndLeavesNoFile() throws IOException {
        Data data = new Data(100, 7);
        data.values[2][41 * DIMS[2] + 5] = Float.NaN;
        Path shard = new Path(TableFixtures.path(tmp), "part-00000.parquet");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TableFixtures.writeShard(shard, data, 0, 100, DType.BF16, 30));
        assertTrue(e.getMessage().startsWith("NaN activation at seq " + Data.seqId(41) + " pos " + Data.pos(41)
                + " in " + HOOKS.get(2)), e.getMessage());
        assertFalse(e.getMessage().contains("\n"));
        try (Stream<java.nio.file.Path> files = Files.list(tmp)) {
            assertEquals(List.of(), files.toList(), "an aborted shard leaves nothing behind");
        }
    }

    @Test
    void float16OverflowIsReportedAsSuch() {
        Data data = new Data(10, 8);
        data.values[0][3 * DIMS[0]] = 1e6f;
        Path shard = new Path(TableFixtures.path(tmp), "part-00000.parquet");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TableFixtures.writeShard(shard, data, 0, 10, DType.F16, 10));
        assertTrue(e.getMessage().contains("overflows float16") && e.getMessage().contains("seq " + Data.seqId(3)), e.getMessage());
    }

    @Test
    void secondAttemptAtTheSameShardLosesWithoutDuplicatingRows() throws IOException {
        Data data = new Data(120, 9);
        Path shard = new Path(TableFixtures.path(tmp), "part-00000.parquet");
        ShardSummary first = TableFixtures.writeShard(shard, data, 0, 120, DType.BF16, 50);
        ShardSummary second = TableFixtures.writeShard(shard, data, 0, 120, DType.BF16, 50);
        assertTrue(first.committed());
        assertFalse(second.committed());
        assertEquals(first.attempt(), second.attempt(), "a losing attempt reports the winner's shard");
        assertEquals(Set.of("part-00000.parquet", "_part-00000.parquet.stats.json"), listNames());

        ActivationManifest.CommittedShards committed = ActivationManifest.listCommittedShards(conf(), TableFixtures.path(tmp));
        assertEquals(120, committed.rows());
        assertEquals(first.attempt(), committed.shards().get(0).attempt());
    }

    @Test
    void leftoversOfFailedAttemptsAreIgnoredByReadersAndCleanedByTheDriver() throws IOException {
        Data data = new Data(50, 18);
        Path dir = TableFixtures.path(tmp);
        TableFixtures.writeShard(new Path(dir, "part-00000.parquet"), data, 0, 50, DType.BF16, 50);
        // a crashed attempt: its temp file, and a sidecar written just before it died
        Files.writeString(tmp.resolve(".part-00001.parquet.1234.tmp"), "half a parquet file");
        Files.writeString(tmp.resolve("_part-00001.parquet.stats.json"), "{}");
        ActivationManifest.CommittedShards committed = ActivationManifest.listCommittedShards(conf(), dir);
        assertEquals(1, committed.shards().size());
        assertEquals(50, committed.rows());
        assertEquals(2, ActivationManifest.deleteLeftovers(conf(), dir));
        assertEquals(Set.of("part-00000.parquet", "_part-00000.parquet.stats.json"), listNames());
    }

    @Test
    void concurrentAttemptsCommitExactlyOnce() throws Exception {
        Data data = new Data(40, 10);
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            for (int round = 0; round < 10; round++) {
                Path shard = new Path(TableFixtures.path(tmp), ActivationShardWriter.shardFileName(round));
                CyclicBarrier barrier = new CyclicBarrier(2);
                List<Future<ShardSummary>> attempts = new ArrayList<>();
                for (int a = 0; a < 2; a++) {
                    attempts.add(pool.submit(() -> {
                        try (ActivationShardWriter writer = ActivationShardWriter.open(conf(), shard, HOOKS, DIMS, DType.BF16)) {
                            long[] seq = new long[40];
                            writer.writeRows(seq, new int[40], new int[40], data.values, 40);
                            barrier.await();
                            return writer.commit();
                        }
                    }));
                }
                ShardSummary a = attempts.get(0).get();
                ShardSummary b = attempts.get(1).get();
                assertTrue(a.committed() ^ b.committed(), "round " + round + ": exactly one attempt commits");
                String winner = a.committed() ? a.attempt() : b.attempt();
                assertEquals(winner, a.attempt());
                assertEquals(winner, b.attempt());
                assertEquals(winner, ActivationManifest.listCommittedShards(conf(), TableFixtures.path(tmp))
                        .shards().get(round).attempt(), "the sidecar describes the winning file");
            }
        } finally {
            pool.shutdownNow();
        }
        Set<String> names = listNames();
        assertEquals(20, names.size(), "10 shards and 10 sidecars, no temp files: " + names);
        ActivationManifest.CommittedShards committed = ActivationManifest.listCommittedShards(conf(), TableFixtures.path(tmp));
        assertEquals(400, committed.rows());
    }

    private Set<String> listNames() throws IOException {
        try (Stream<java.nio.file.Path> files = Files.list(tmp)) {
            return new HashSet<>(files.map(p -> p.getFileName().toString()).toList());
        }
    }

    @Test
    void missingManifestMissingDirectoryAndMalformedManifestGiveClearErrors() throws IOException {
        Path dir = TableFixtures.path(tmp);
        TableFixtures.writeShard(new Path(dir, "part-00000.parquet"), new Data(10, 11), 0, 10, DType.BF16, 10);
        IllegalStateException missing = assertThrows(IllegalStateException.class,
                () -> ActivationTableReader.open(conf(), dir, HOOKS));
        assertEquals(dir + " is not a complete activation cache (no _manifest.json): run or resume `spindle cache`", missing.getMessage());

        Path nowhere = new Path(dir, "nowhere");
        IllegalArgumentException absent = assertThrows(IllegalArgumentException.class, () -> ActivationManifest.read(conf(), nowhere));
        assertTrue(absent.getMessage().contains("does not exist") && absent.getMessage().contains("nowhere"), absent.getMessage());

        Files.writeString(tmp.resolve("_manifest.json"), "{\"formatVersion\": 1, \"hooks\": [");
        IllegalStateException malformed = assertThrows(IllegalStateException.class, () -> ActivationManifest.read(conf(), dir));
        assertTrue(malformed.getMessage().contains("_manifest.json is malformed"), malformed.getMessage());
        assertFalse(malformed.getMessage().contains("\n"), malformed.getMessage());
    }

    @Test
    void manifestRoundTripsAndIsRebuiltFromShardsAlone() throws IOException {
        Data data = new Data(ROWS, 12);
        Path dir = TableFixtures.writeCache(tmp, data, SHARDS, DType.BF16);
        ActivationManifest manifest = ActivationManifest.read(conf(), dir);
        assertEquals("test-model", manifest.modelId());
        assertEquals(ROWS, manifest.tokenCount());
        assertEquals(17L, manifest.shuffleSeed());
        assertEquals(HOOKS, manifest.hookNames());
        assertEquals(List.of(300L, 0L, 250L, 130L), manifest.shards().stream().map(ActivationManifest.ShardEntry::rows).toList());

        // A resumed run that lost every sidecar rebuilds the same statistics from the shard footers.
        try (Stream<java.nio.file.Path> files = Files.list(tmp)) {
            for (java.nio.file.Path f : files.filter(p -> p.getFileName().toString().endsWith(".stats.json")).toList()) {
                Files.delete(f);
            }
        }
        ActivationManifest.CommittedShards rebuilt = ActivationManifest.listCommittedShards(conf(), dir);
        assertEquals(ROWS, rebuilt.rows());
        for (String hook : HOOKS) {
            assertEquals(manifest.statistics().get(hook).sumNorm(), rebuilt.statistics().get(hook).sumNorm(), 1e-9);
        }
    }

    @Test
    void statisticsEqualADirectComputationOverTheStoredRows() {
        Data data = new Data(ROWS, 13);
        Path dir = TableFixtures.writeCache(tmp, data, SHARDS, DType.BF16);
        ActivationManifest manifest = ActivationManifest.read(conf(), dir);
        float[][] stored;
        try (ActivationTableReader reader = ActivationTableReader.open(conf(), dir, HOOKS)) {
            stored = TableFixtures.readAll(reader, ROWS, 128, false);
        }
        for (int h = 0; h < HOOKS.size(); h++) {
            int d = DIMS[h];
            double normSum = 0;
            double[] mean = new double[d];
            for (int r = 0; r < ROWS; r++) {
                double sq = 0;
                for (int j = 0; j < d; j++) {
                    double v = stored[h][r * d + j];
                    sq += v * v;
                    mean[j] += v / ROWS;
                }
                normSum += Math.sqrt(sq);
            }
            double[] variance = new double[d];
            for (int r = 0; r < ROWS; r++) {
                for (int j = 0; j < d; j++) {
                    double dev = stored[h][r * d + j] - mean[j];
                    variance[j] += dev * dev / ROWS;
                }
            }
            HookStatistics stats = manifest.statistics().get(HOOKS.get(h));
            assertEquals(ROWS, stats.count());
            assertEquals(normSum / ROWS, stats.meanNorm(), 1e-9 * normSum);
            for (int j = 0; j < d; j++) {
                assertEquals(mean[j], stats.mean()[j], 1e-9, "mean of dim " + j);
                assertEquals(variance[j], stats.variance()[j], 1e-8, "variance of dim " + j);
            }
        }
    }

    @Test
    void replicaSubsetsAreDisjointNearEqualAndCoverAllRows() {
        Data data = new Data(ROWS, 14);
        Path dir = TableFixtures.writeCache(tmp, data, SHARDS, DType.BF16);
        for (int replicas : new int[] {3, 7}) {
            Set<Long> seen = new HashSet<>();
            long total = 0;
            for (int i = 0; i < replicas; i++) {
                try (ActivationTableReader reader = ActivationTableReader.open(conf(), dir, List.of(HOOKS.get(0)),
                        ActivationTableReader.Options.replica(i, replicas).withRowMetadata())) {
                    long expected = reader.rowCount();
                    assertTrue(Math.abs(expected - ROWS / (double) replicas) < 1, "replica " + i + " has " + expected + " rows");
                    FloatBuffer[] buf = {FloatBuffer.allocate(64 * DIMS[0])};
                    ActivationTableReader.RowMetadata meta = new ActivationTableReader.RowMetadata(ROWS);
                    int n;
                    while ((n = reader.read(buf, 64, meta)) > 0) {
                        buf[0].clear();
                        total += n;
                    }
                    assertEquals(expected, meta.offset);
                    for (int r = 0; r < meta.offset; r++) {
                        long key = meta.seqIds[r] * 7 + meta.positions[r]; // unique per row in the fixture
                        assertTrue(seen.add(key), "row (" + meta.seqIds[r] + ", " + meta.positions[r] + ") read by two replicas");
                    }
                }
            }
            assertEquals(ROWS, total);
            assertEquals(ROWS, seen.size());
        }
    }

    @Test
    void skipThenReadEqualsReadingThroughAcrossRowGroupsAndShards() {
        Data data = new Data(ROWS, 15);
        Path dir = TableFixtures.writeCache(tmp, data, SHARDS, DType.F32);
        for (int skip : new int[] {0, 1, 35, 296, 297, 298, 546, 677}) {
            try (ActivationTableReader reader = ActivationTableReader.open(conf(), dir, HOOKS)) {
                reader.read(new FloatBuffer[] {FloatBuffer.allocate(3 * DIMS[0]), FloatBuffer.allocate(3 * DIMS[1]),
                        FloatBuffer.allocate(3 * DIMS[2])}, 3); // skips relative to a non-zero position
                reader.skip(skip);
                assertEquals(3 + skip, reader.position());
                float[][] rest = TableFixtures.readAll(reader, ROWS - 3 - skip, 41, false);
                for (int h = 0; h < HOOKS.size(); h++) {
                    float[] expected = java.util.Arrays.copyOfRange(data.values[h], (3 + skip) * DIMS[h], ROWS * DIMS[h]);
                    assertArrayEqualsExactly(expected, rest[h]);
                }
            }
        }
        try (ActivationTableReader reader = ActivationTableReader.open(conf(), dir, HOOKS)) {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> reader.skip(ROWS + 1));
            assertTrue(e.getMessage().contains("end after " + ROWS), e.getMessage());
        }
    }

    @Test
    void manifestWidthThatDoesNotMatchTheDataIsAClearError() throws IOException {
        Path dir = TableFixtures.writeCache(tmp, new Data(30, 17), new int[] {30}, DType.BF16);
        java.nio.file.Path manifest = tmp.resolve("_manifest.json");
        String json = Files.readString(manifest);
        String edited = json.replaceFirst("\"d\" : " + DIMS[1], "\"d\" : " + (DIMS[1] + 1));
        assertFalse(json.equals(edited), "the fixture manifest has the expected layout");
        Files.writeString(manifest, edited);
        try (ActivationTableReader reader = ActivationTableReader.open(conf(), dir, List.of(HOOKS.get(1)))) {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> TableFixtures.readAll(reader, 30, 10, false));
            assertTrue(e.getMessage().contains("d=" + (DIMS[1] + 1)) && e.getMessage().contains("part-00000.parquet")
                    && e.getMessage().contains("does not match"), e.getMessage());
        }
    }

    @Test
    void hookColumnsAreNamedByHookAndReadableAsPlainParquet() throws IOException {
        Path dir = TableFixtures.writeCache(tmp, new Data(30, 16), new int[] {30}, DType.BF16);
        List<String> columns;
        try (ParquetFileReader footer = ParquetFileReader.open(HadoopInputFile.fromPath(new Path(dir, "part-00000.parquet"), conf()))) {
            columns = footer.getFileMetaData().getSchema().getFields().stream().map(f -> f.getName()).toList();
        }
        List<String> expected = new ArrayList<>(List.of("seq_id", "pos", "token_id"));
        expected.addAll(HOOKS);
        assertEquals(expected, columns);
    }

    private static void assertArrayEqualsExactly(float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length);
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToIntBits(expected[i]) != Float.floatToIntBits(actual[i])) {
                throw new AssertionError("element " + i + ": expected " + expected[i] + " got " + actual[i]);
            }
        }
    }
}
