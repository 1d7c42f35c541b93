package jobs.output;

import activations.table.CommitProtocol;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import testing.MiniHdfs;
import training.trainer.Checkpoints;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Plain-Java outputs published on a local path and on a real HDFS, under both commit protocols:
 * rename (local, HDFS) and marker (what object stores get; forced here on HDFS, which then must not
 * rely on its atomic rename); and a training run's scratch directory mirrored to HDFS.
 */
class StagedOutputTest {

    @TempDir
    static java.nio.file.Path base;
    private static MiniHdfs hdfs;

    @BeforeAll
    static void start() throws IOException {
        hdfs = MiniHdfs.start(base.resolve("hdfs"));
    }

    @AfterAll
    static void stop() throws IOException {
        hdfs.close();
    }

    static Configuration conf(CommitProtocol protocol) {
        Configuration conf = new Configuration();
        conf.set(CommitProtocol.SETTING, protocol.name().toLowerCase(java.util.Locale.ROOT));
        return conf;
    }

    @Test
    void theProtocolFollowsTheScheme() throws IOException {
        Configuration auto = new Configuration();
        assertEquals(CommitProtocol.RENAME, CommitProtocol.of(new Path(hdfs.uri("x")), auto));
        assertEquals(CommitProtocol.RENAME, CommitProtocol.of(new Path(base.toUri()), auto));
        assertEquals(CommitProtocol.MARKER, CommitProtocol.of(new Path(hdfs.uri("x")), conf(CommitProtocol.MARKER)));
        Configuration wrong = new Configuration();
        wrong.set(CommitProtocol.SETTING, "atomic");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CommitProtocol.of(new Path(hdfs.uri("x")), wrong));
        assertTrue(e.getMessage().contains("use auto, rename or marker"), e.getMessage());
    }

    @Test
    void withAtomicRenameAFailedOverwriteKeepsTheOldOutput() throws IOException {
        for (String target : new String[] {base.resolve("rename-local").toString(), hdfs.uri("rename/out")}) {
            Configuration conf = conf(CommitProtocol.RENAME);
            StagedOutput.directory(conf, target, "done.json", false, out -> twoFiles(out, "1"));
            assertEquals("1", read(conf, target, "done.json"));
            assertEquals("1", read(conf, target, "sub/part.txt"));
            assertThrows(IllegalArgumentException.class,
                    () -> StagedOutput.directory(conf, target, "done.json", false, out -> twoFiles(out, "2")));
            assertThrows(IllegalStateException.class, () -> StagedOutput.directory(conf, target, "done.json", true, out -> {
                twoFiles(out, "3");
                throw new IllegalStateException("writer failed");
            }));
            assertEquals("1", read(conf, target, "done.json"), "the old output is intact");
            StagedOutput.directory(conf, target, "done.json", true, out -> twoFiles(out, "4"));
            assertEquals("4", read(conf, target, "sub/part.txt"));
            assertEquals(1, listing(conf, new Path(target).getParent()).length, "no staging leftovers beside " + target);
        }
    }

    @Test
    void withoutRenameTheManifestIsWrittenLastAndAFailedOverwriteIsMarkedIncomplete() throws IOException {
        Configuration conf = conf(CommitProtocol.MARKER);
        String target = hdfs.uri("marker/out");
        StagedOutput.directory(conf, target, "done.json", false, out -> twoFiles(out, "1"));
        FileSystem fs = hdfs.fileSystem();
        long manifestTime = fs.getFileStatus(new Path(target, "done.json")).getModificationTime();
        assertTrue(fs.getFileStatus(new Path(target, "sub/part.txt")).getModificationTime() <= manifestTime,
                "the manifest is the last file written");
        assertThrows(IllegalArgumentException.class,
                () -> StagedOutput.directory(conf, target, "done.json", false, out -> twoFiles(out, "2")));
        assertThrows(IllegalStateException.class, () -> StagedOutput.directory(conf, target, "done.json", true, out -> {
            twoFiles(out, "3");
            throw new IllegalStateException("writer failed");
        }));
        assertFalse(fs.exists(new Path(target, "done.json")), "a failed overwrite never passes for complete");
        // An incomplete output is an interrupted run's: the next run replaces it without --overwrite.
        StagedOutput.directory(conf, target, "done.json", false, out -> twoFiles(out, "4"));
        assertEquals("4", read(conf, target, "done.json"));
        assertEquals(1, listing(conf, new Path(target).getParent()).length, "written in place, nothing beside it");
    }

    @Test
    void singleFilesAreReplacedOnlyWhenAsked() throws IOException {
        for (CommitProtocol protocol : CommitProtocol.values()) {
            Configuration conf = conf(protocol);
            for (String target : new String[] {base.resolve("file-" + protocol + ".json").toString(), hdfs.uri("files/" + protocol + ".json")}) {
                StagedOutput.file(conf, target, false, f -> write(f, "x"));
                assertEquals("x", read(conf, target, null));
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> StagedOutput.file(conf, target, false, f -> write(f, "y")));
                assertTrue(e.getMessage().contains("--overwrite"), e.getMessage());
                StagedOutput.file(conf, target, true, f -> write(f, "z"));
                assertEquals("z", read(conf, target, null));
            }
        }
        for (FileStatus s : listing(new Configuration(), new Path(hdfs.uri("files")))) {
            assertFalse(s.getPath().getName().startsWith("."), "temporary file left: " + s.getPath());
        }
    }

    private static Checkpoints.TrainerState state(long step) {
        Checkpoints.TrainerState s = new Checkpoints.TrainerState();
        s.step = step;
        s.tokens = step * 10;
        return s;
    }

    /**
     * A training run into an HDFS directory: checkpoints uploaded and committed by marker, the remote
     * copy kept to the trainer's newest two, a fresh scratch directory resuming from the newest
     * committed checkpoint (never from one whose upload was cut short), the dictionary's manifest last.
     */
    @Test
    void trainingCheckpointsGoUpCommittedAndComeBackOnResume() throws IOException {
        Configuration conf = new Configuration();
        String target = hdfs.uri("runs/sae");
        FileSystem fs = hdfs.fileSystem();
        java.nio.file.Path firstScratch;
        try (TrainingOutput out = TrainingOutput.open(conf, target, "cfg.json")) {
            firstScratch = out.local();
            assertFalse(firstScratch.toString().contains("hdfs"), "the trainer writes to local disk");
            for (long step = 1; step <= 3; step++) {
                Checkpoints.write(out.local(), state(step), new float[] {step, 2 * step}, new float[] {0, 0, 0, 0});
                Files.writeString(out.local().resolve("metrics.jsonl"), "{\"step\":" + step + "}\n",
                        java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
                out.checkpointed(Checkpoints.latest(out.local()).orElseThrow());
            }
            String[] remote = Arrays.stream(fs.listStatus(new Path(target, "checkpoints"))).map(s -> s.getPath().getName())
                    .sorted().toArray(String[]::new);
            String[] local;
            try (var list = Files.list(Checkpoints.root(out.local()))) {
                local = list.map(p -> p.getFileName().toString()).sorted().toArray(String[]::new);
            }
            assertArrayEquals(local, remote, "the remote copy keeps what the trainer keeps");
            assertEquals(2, remote.length);
            for (String dir : remote) {
                assertTrue(fs.exists(new Path(target, "checkpoints/" + dir + "/_COMMITTED")), dir + " committed");
            }
            assertFalse(out.complete());
        }
        assertFalse(Files.exists(firstScratch), "the scratch directory goes with the run");

        // A checkpoint whose upload was cut short (no marker) is newer but never trusted.
        Path torn = new Path(target, "checkpoints/step-000000009");
        fs.mkdirs(torn);
        fs.create(new Path(torn, "trainer.json")).close();

        try (TrainingOutput resumed = TrainingOutput.open(conf, target, "cfg.json")) {
            Optional<java.nio.file.Path> latest = Checkpoints.latest(resumed.local());
            assertTrue(latest.isPresent(), "the newest committed checkpoint was fetched");
            assertEquals(3, Checkpoints.stepOf(latest.get()));
            assertEquals(3, Checkpoints.read(latest.get()).state().step);
            assertArrayEquals(new float[] {3, 6}, Checkpoints.read(latest.get()).parameters());
            assertEquals("{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n", Files.readString(resumed.local().resolve("metrics.jsonl")));
            assertFalse(Files.exists(latest.get().resolve("_COMMITTED")), "the marker stays remote");

            Files.writeString(resumed.local().resolve("sae_weights.safetensors"), "weights");
            Files.writeString(resumed.local().resolve("cfg.json"), "{}");
            resumed.publish();
            assertTrue(resumed.complete());
            long manifest = fs.getFileStatus(new Path(target, "cfg.json")).getModificationTime();
            assertTrue(fs.getFileStatus(new Path(target, "sae_weights.safetensors")).getModificationTime() <= manifest,
                    "cfg.json, the file readers take as 'trained', comes last");
        }
    }

    private static void twoFiles(java.nio.file.Path dir, String value) {
        write(dir.resolve("done.json"), value);
        try {
            Files.createDirectories(dir.resolve("sub"));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        write(dir.resolve("sub/part.txt"), value);
    }

    private static String read(Configuration conf, String target, String child) throws IOException {
        Path path = child == null ? new Path(target) : new Path(target, child);
        try (InputStream in = path.getFileSystem(conf).open(path)) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    private static FileStatus[] listing(Configuration conf, Path dir) throws IOException {
        return java.util.Arrays.stream(dir.getFileSystem(conf).listStatus(dir))
                .filter(s -> !s.getPath().getName().endsWith(".crc") && !s.getPath().getName().startsWith("file-")
                        && !s.getPath().getName().equals("hdfs"))
                .toArray(FileStatus[]::new);
    }

    private static void write(java.nio.file.Path file, String text) {
        try {
            Files.writeString(file, text);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
