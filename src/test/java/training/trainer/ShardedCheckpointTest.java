package training.trainer;

import activations.safetensors.SafeTensors;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.clt.CltConfig;
import training.clt.CltStep;
import training.clt.CrossLayerTranscoder;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Sharded checkpoints (CLTs past 2^31 parameters) without allocating billions: a tiny shard size,
 * then shard counts, per-layer segments, no tensor above the limit, and reload equality.
 */
class ShardedCheckpointTest {

    @TempDir
    Path dir;

    static INDArray random(long n, long seed) {
        Random r = new Random(seed);
        float[] v = new float[(int) n];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) r.nextGaussian();
        }
        return Nd4j.createFromArray(v).reshape(1, n);
    }

    static Checkpoints.TrainerState state(long step) {
        Checkpoints.TrainerState s = new Checkpoints.TrainerState();
        s.step = step;
        s.tokens = 7 * step;
        return s;
    }

    @Test
    void aCltCheckpointIsCutPerLayerIntoShardsAndReadsBackExactly() throws Exception {
        CltConfig config = CltConfig.builder(3, 8, 12).build();
        CltStep step = new CltStep(config);
        CrossLayerTranscoder clt = step.clt();
        long n = clt.parameters().length();
        assertEquals(CrossLayerTranscoder.parameterCount(config), n);
        clt.parameters().assign(random(n, 1));
        step.adam().state().assign(random(2 * n, 2));
        List<Checkpoints.Segment> segments = clt.checkpointSegments();
        assertEquals(List.of("layer_0.encoder", "layer_1.encoder", "layer_2.encoder", "b_dec", "layer_0.decoders",
                "layer_1.decoders", "layer_2.decoders"), segments.stream().map(Checkpoints.Segment::name).toList());
        // Independent sizes: encoder d F + 2 F; decoders of source l: (L - l) F d.
        assertEquals(8 * 12 + 2 * 12, segments.get(0).length());
        assertEquals(3 * 12 * 8, segments.get(4).length());
        assertEquals(12 * 8, segments.get(6).length());
        // The layout's own views agree with the segments: W_dec(1, 2) lies in layer_1.decoders.
        assertEquals(clt.wDec(1, 2).getFloat(0, 0), clt.parameters().getFloat(0, segments.get(5).offset() + 12 * 8), 0);

        long limit = 37; // divides no segment
        long expectedShards = segments.stream().mapToLong(s -> (s.length() + limit - 1) / limit).sum();
        try (CheckpointShardLimit ignored = CheckpointShardLimit.of(limit)) {
            step.checkpoint(dir, step.capture(5, 35, 35));
        }
        Path saved = Checkpoints.latest(dir).orElseThrow();
        List<Path> shards;
        try (Stream<Path> files = Files.list(saved)) {
            shards = files.filter(p -> p.getFileName().toString().startsWith("shard-")).sorted().toList();
        }
        assertEquals(expectedShards, shards.size());
        for (Path shard : shards) {
            try (SafeTensors t = SafeTensors.open(shard)) {
                for (String name : List.of("parameters", "adam_m", "adam_v")) {
                    assertTrue(t.info(name).elementCount() <= limit, shard + " " + name);
                }
                assertTrue(t.metadata().get("segment").matches("layer_\\d\\.(encoder|decoders)|b_dec"));
            }
        }
        assertEquals("layer_2.decoders", new ObjectMapper().readTree(saved.resolve("shards.json").toFile())
                .at("/shards/" + (expectedShards - 1) + "/segment").asText());

        CltStep fresh = new CltStep(config);
        Checkpoints.TrainerState back = fresh.restoreFrom(saved);
        assertEquals(5, back.step);
        assertEquals(35, back.tokens);
        assertArrayEquals(clt.parameters().toFloatVector(), fresh.clt().parameters().toFloatVector());
        assertArrayEquals(step.adam().state().toFloatVector(), fresh.adam().state().toFloatVector());
    }

    @Test
    void readIntoReadsTheSingleFileLayoutAndRefusesAnotherShape() {
        INDArray params = random(50, 3);
        INDArray adam = random(100, 4);
        Checkpoints.write(dir, state(2), params.toFloatVector(), adam.toFloatVector());
        Path saved = Checkpoints.latest(dir).orElseThrow();
        INDArray p = Nd4j.zeros(DataType.FLOAT, 1, 50);
        INDArray a = Nd4j.zeros(DataType.FLOAT, 1, 100);
        assertEquals(2, Checkpoints.readInto(saved, p, a).step);
        assertArrayEquals(params.toFloatVector(), p.toFloatVector());
        assertArrayEquals(adam.toFloatVector(), a.toFloatVector());

        try (CheckpointShardLimit ignored = CheckpointShardLimit.of(16)) {
            Checkpoints.writeSharded(dir, state(3), params, adam, List.of(new Checkpoints.Segment("all", 0, 50)));
        }
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Checkpoints.readInto(
                Checkpoints.latest(dir).orElseThrow(), Nd4j.zeros(DataType.FLOAT, 1, 60), Nd4j.zeros(DataType.FLOAT, 1, 120)));
        assertTrue(e.getMessage().contains("holds 50 parameters, the model has 60"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Checkpoints.writeSharded(dir, state(4), params, adam,
                List.of(new Checkpoints.Segment("half", 0, 25))), "segments must tile the array");
    }
}
