package jobs.output;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import testing.MiniHdfs;
import training.trainer.Checkpoints;

import java.io.IOException;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A training run into an HDFS directory: checkpoints uploaded and committed by marker, the remote
 * copy kept to the trainer's newest two, a fresh scratch directory resuming from the newest
 * committed checkpoint (never from one whose upload was cut short), the dictionary's manifest last.
 */
class TrainingOutputTest {

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

    private static Checkpoints.TrainerState state(long step) {
        Checkpoints.TrainerState s = new Checkpoints.TrainerState();
        s.step = step;
        s.tokens = step * 10;
        return s;
    }

    @Test
    void checkpointsGoUpCommittedAndComeBackOnResume() throws IOException {
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
}
