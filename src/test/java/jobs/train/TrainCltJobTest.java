package jobs.train;

import activations.safetensors.DType;
import activations.table.ActivationManifest;
import activations.table.ActivationShardWriter;
import com.typesafe.config.ConfigFactory;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.factory.Nd4j;
import training.clt.SmallShapes;
import training.export.CircuitTracerDictionary;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `spindle train-clt`'s job: cache checks before any allocation, and a circuit-tracer export that loads. */
class TrainCltJobTest {

    static final int D = 8;
    static final int ROWS = 4096;
    static Path cache;

    @BeforeAll
    static void writeCache(@TempDir Path dir) throws Exception {
        SmallShapes.singleThreaded();
        cache = dir.resolve("cache");
        Configuration conf = new Configuration();
        org.apache.hadoop.fs.Path out = new org.apache.hadoop.fs.Path(cache.toString());
        List<String> hooks = List.of("blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out",
                "blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out");
        Random random = new Random(5);
        float[][] values = new float[hooks.size()][ROWS * D];
        for (float[] v : values) {
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) random.nextGaussian();
            }
        }
        try (ActivationShardWriter w = ActivationShardWriter.open(conf, new org.apache.hadoop.fs.Path(out,
                ActivationShardWriter.shardFileName(0)), hooks, new int[] {D, D, D, D}, DType.F32)) {
            w.writeRows(new long[ROWS], new int[ROWS], new int[ROWS], values, ROWS);
            w.commit();
        }
        ActivationManifest.of("test", null, 0, null, null, null, ActivationManifest.listCommittedShards(conf, out))
                .write(FileSystem.getLocal(conf), out);
    }

    @AfterAll
    static void restore() {
        SmallShapes.restore();
    }

    static CltSettings settings(Map<String, Object> extra) {
        Map<String, Object> values = new java.util.HashMap<>(Map.of("features-per-layer", 16, "batch-tokens", 256,
                "tokens", 2560, "checkpoint-every", 0, "metrics-every", 5));
        values.putAll(extra);
        return CltSettings.of(ConfigFactory.parseMap(values), "test");
    }

    @Test
    void trainsAndExportsACltCircuitTracerLoads(@TempDir Path dir) {
        Path out = dir.resolve("clt");
        TrainCltJob.Outcome outcome = TrainCltJob.train(new Configuration(), cache.toString(), 2, settings(Map.of()),
                out.toString(), false, null);
        assertEquals(10, outcome.steps());
        assertTrue(Files.exists(out.resolve("config.yaml")) && Files.exists(out.resolve("W_dec_1.safetensors")));
        CircuitTracerDictionary clt = CircuitTracerDictionary.load(out);
        assertEquals(2, clt.layers());
        assertEquals(16, clt.encode(1, Nd4j.rand(org.nd4j.linalg.api.buffer.DataType.FLOAT, 3, D)).columns());
        var again = assertThrows(IllegalStateException.class, () -> TrainCltJob.train(new Configuration(), cache.toString(), 2,
                settings(Map.of()), out.toString(), false, null));
        assertTrue(again.getMessage().contains("already holds"), again.getMessage());
    }

    @Test
    void perLayerTranscodersExportAsACircuitTracerSet(@TempDir Path dir) {
        List<Path> layers = new java.util.ArrayList<>();
        for (int l = 0; l < 2; l++) {
            Path out = dir.resolve("plt" + l);
            SaeSettings sae = SaeSettings.of(ConfigFactory.parseMap(Map.of("architecture", "relu", "d-sae", 16,
                    "batch-tokens", 256, "tokens", 2560, "checkpoint-every", 0, "normalization-batches", 1)), "test");
            TrainSaeJob.train(new Configuration(), cache.toString(), new TrainSaeJob.Run("plt" + l,
                    "blocks." + l + ".ln2.hook_normalized", "blocks." + l + ".hook_mlp_out", sae, out.toString()), false, null);
            layers.add(out);
        }
        Path set = dir.resolve("set");
        assertEquals(0, jobs.cli.Spindle.run("export-transcoders", "--transcoders", layers.get(0) + "," + layers.get(1),
                "--out", set.toString()));
        CircuitTracerDictionary tracer = CircuitTracerDictionary.load(set);
        assertEquals(2, tracer.layers());
        org.nd4j.linalg.api.ndarray.INDArray x = Nd4j.rand(org.nd4j.linalg.api.buffer.DataType.FLOAT, 5, D).subi(0.5).muli(4);
        for (int l = 0; l < 2; l++) {
            training.export.SaeLensDictionary saeLens = training.export.SaeLensDictionary.load(layers.get(l));
            org.nd4j.linalg.api.ndarray.INDArray codes = saeLens.encode(x);
            assertTrue(codes.equalsWithEps(tracer.encode(l, x), 1e-4), "layer " + l + " codes");
            org.nd4j.linalg.api.ndarray.INDArray[] acts = new org.nd4j.linalg.api.ndarray.INDArray[2];
            acts[l] = codes;
            org.nd4j.linalg.api.ndarray.INDArray[] inputs = {x, x};
            assertTrue(saeLens.decode(codes).equalsWithEps(tracer.decode(l, acts, inputs), 1e-4), "layer " + l + " outputs");
        }
        var order = assertThrows(IllegalArgumentException.class, () -> training.export.CircuitTracerExporter
                .transcoderSetFromSaeLens(List.of(layers.get(1), layers.get(0)), dir.resolve("bad")));
        assertTrue(order.getMessage().contains("layer order"), order.getMessage());
    }

    @Test
    void refusesMissingLayersAWrongPairingAndAConfigTooLargeForMemory(@TempDir Path dir) {
        var layers = assertThrows(IllegalArgumentException.class, () -> TrainCltJob.train(new Configuration(),
                cache.toString(), 3, settings(Map.of()), dir.resolve("a").toString(), false, null));
        assertTrue(layers.getMessage().contains("lacks blocks.2.ln2.hook_normalized, blocks.2.hook_mlp_out"), layers.getMessage());

        var pairing = assertThrows(IllegalArgumentException.class, () -> TrainCltJob.train(new Configuration(),
                cache.toString(), 2, settings(Map.of("hook-in", "hook_resid_mid")), dir.resolve("b").toString(), false, null));
        assertTrue(pairing.getMessage().contains("blocks.0.hook_resid_mid") && pairing.getMessage().contains("hook-in"),
                pairing.getMessage());

        var memory = assertThrows(IllegalArgumentException.class, () -> TrainCltJob.train(new Configuration(),
                cache.toString(), 2, settings(Map.of("features-per-layer", 1_000_000, "memory-budget-gb", 1)),
                dir.resolve("c").toString(), false, null));
        assertTrue(memory.getMessage().contains("CLT needs") && memory.getMessage().contains("GiB"), memory.getMessage());
        assertTrue(!Files.exists(dir.resolve("c")), "nothing written before the memory check");
    }
}
