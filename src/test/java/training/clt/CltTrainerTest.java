package training.clt;

import activations.table.InMemoryActivationSource;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import training.trainer.Checkpoints;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The CLT trainer's contract: resume to the same weights, refusals with one-line errors, per-layer metrics. */
class CltTrainerTest {

    private static final int L = 2;
    private static final int D = 8;
    private static final int BATCH = 32;
    private static final int STEPS = 12;

    @TempDir
    Path dir;

    @BeforeAll
    static void singleThreaded() {
        SmallShapes.singleThreaded();
    }

    @AfterAll
    static void restoreThreads() {
        SmallShapes.restore();
    }

    private static CltConfig config() {
        return CltConfig.builder(L, D, 12).batchSize(BATCH).totalTokens((long) STEPS * BATCH).learningRate(1e-2)
                .lrWarmupSteps(3).sparsityWarmupSteps(4).sparsityCoefficient(0.5).preActLossCoefficient(0.01)
                .deadWindowTokens(2L * BATCH).checkpointEverySteps(4).metricsEverySteps(2).normalizationBatches(2).build();
    }

    private static SyntheticCrossLayer data() {
        return new SyntheticCrossLayer(L, D, 6, 0.2, (2 + STEPS) * BATCH, 11);
    }

    @Test
    void resumesToTheSameWeightsAndWritesPerLayerMetrics() throws Exception {
        SyntheticCrossLayer data = data();
        List<CltTrainer.Metrics> seen = new ArrayList<>();
        CltTrainer.Result straight = new CltTrainer(config(), dir.resolve("a")).listener(seen::add).train(data.source(data.rows, 1));
        assertEquals(STEPS, straight.steps());
        CltTrainer.Result half;
        try (training.trainer.CheckpointShardLimit ignored = training.trainer.CheckpointShardLimit.of(100)) {
            half = new CltTrainer(config(), dir.resolve("b")).train(data.source((2 + STEPS / 2) * BATCH, 1));
        }
        assertEquals(STEPS / 2, half.steps());
        IllegalStateException refused = assertThrows(IllegalStateException.class,
                () -> new CltTrainer(config(), dir.resolve("b")).train(data.source(data.rows, 1)));
        assertTrue(refused.getMessage().contains("already holds a run's checkpoint"), refused.getMessage());
        CltTrainer.Result resumed;
        // Resumed from checkpoints in shards of 100 values (the default is 2^28): the sharded path end to end.
        try (training.trainer.CheckpointShardLimit ignored = training.trainer.CheckpointShardLimit.of(100)) {
            resumed = new CltTrainer(config(), dir.resolve("b")).resume(true).train(data.source(data.rows, 1));
        }
        assertEquals(STEPS, resumed.steps());
        float[] p1 = straight.clt().parameters().toFloatVector();
        float[] p2 = resumed.clt().parameters().toFloatVector();
        double maxDiff = 0;
        for (int i = 0; i < p1.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(p1[i] - p2[i]));
        }
        assertTrue(maxDiff < 1e-5, "resumed CLT differs by " + maxDiff);
        assertEquals(straight.inputScales()[1], resumed.inputScales()[1], 0);

        List<String> lines = Files.readAllLines(dir.resolve("b").resolve("metrics.jsonl"));
        assertEquals(STEPS / 2, lines.size(), "one metrics line every 2 steps, none duplicated by the resume");
        JsonNode last = new ObjectMapper().readTree(lines.get(lines.size() - 1));
        assertEquals(L, last.get("nmseByLayer").size());
        assertEquals(L, last.get("l0ByLayer").size());
        assertEquals(L, last.get("deadFractionByLayer").size());
        CltTrainer.Metrics m = seen.get(seen.size() - 1);
        for (int l = 0; l < L; l++) {
            assertTrue(m.nmseByLayer()[l] >= 0 && m.nmseByLayer()[l] < 2, "NMSE of layer " + l + " = " + m.nmseByLayer()[l]);
        }
    }

    @Test
    void nonFiniteActivationsStopWithTheRowAndHookNamed() {
        SyntheticCrossLayer data = data();
        int badRow = (2 + 5) * BATCH + 3;
        data.data[3][badRow * D + 1] = Float.POSITIVE_INFINITY; // out_1
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> new CltTrainer(config(), dir).train(data.source(data.rows, 1)));
        assertTrue(e.getMessage().contains("row " + badRow) && e.getMessage().contains("blocks.1.hook_mlp_out")
                && e.getMessage().contains("step 5"), e.getMessage());
        assertEquals(4, Checkpoints.stepOf(Checkpoints.latest(dir).orElseThrow()));
    }

    @Test
    void hooksOutOfLayerOrderAreRefused() {
        SyntheticCrossLayer data = data();
        float[][] swapped = {data.data[2], data.data[3], data.data[0], data.data[1]};
        InMemoryActivationSource source = new InMemoryActivationSource(
                List.of("blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out", "blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out"),
                swapped, new int[] {D, D, D, D}, 1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new CltTrainer(config(), dir).train(source));
        assertTrue(e.getMessage().contains("layer order"), e.getMessage());
        InMemoryActivationSource tooFew = new InMemoryActivationSource("blocks.0.ln2.hook_normalized", data.data[0], D);
        IllegalArgumentException e2 = assertThrows(IllegalArgumentException.class, () -> new CltTrainer(config(), dir).train(tooFew));
        assertTrue(e2.getMessage().contains("[in_0, out_0, in_1, out_1, ...]"), e2.getMessage());
    }

    @Test
    void scalesFromTheManifestStatistics() {
        java.util.Map<String, activations.table.HookStatistics> stats = new java.util.LinkedHashMap<>();
        String[] hooks = {"blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out"};
        float[][] rows = {{3, 4}, {0, 2}}; // norms 5 and 2 (one row each)
        for (int h = 0; h < 2; h++) {
            activations.table.HookStatistics s = new activations.table.HookStatistics(2);
            s.add(rows[h], 0);
            stats.put(hooks[h], s);
        }
        activations.table.ActivationManifest manifest = new activations.table.ActivationManifest(1, "m", "c", List.of(), "float32", 1,
                8, null, null, null, stats, List.of(), null, null);
        double[][] scales = CltTrainer.scalesFromManifest(manifest, List.of(hooks));
        assertEquals(Math.sqrt(2) / 5, scales[0][0], 1e-12);
        assertEquals(Math.sqrt(2) / 2, scales[1][0], 1e-12);
        assertThrows(IllegalArgumentException.class, () -> CltTrainer.scalesFromManifest(manifest, List.of("blocks.1.hook_mlp_out", "x")));
    }
}
