package training.trainer;

import activations.table.InMemoryActivationSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import training.sae.SaeConfig;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Interrupting a run at a checkpoint and resuming it gives the weights of an uninterrupted run. */
class ResumeTest {

    private static final int D_IN = 16;
    private static final int BATCH = 32;
    private static final int STEPS = 12;
    private static final int NORMALIZATION_BATCHES = 2;

    @TempDir
    Path dir;

    private static float[] data(int rows) {
        Random random = new Random(5);
        float[] x = new float[rows * D_IN];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) (random.nextGaussian() * (1 + i % D_IN) + 0.3);
        }
        return x;
    }

    private static InMemoryActivationSource source(float[] data, int rows) {
        return new InMemoryActivationSource(List.of("h"), new float[][] {Arrays.copyOf(data, rows * D_IN)}, new int[] {D_IN}, 1);
    }

    /** Returns the resumed run's result. */
    private static SaeTrainer.Result resumesToTheSameWeights(SaeConfig config, Path straightDir, Path splitDir) {
        int rows = (NORMALIZATION_BATCHES + STEPS) * BATCH;
        float[] data = data(rows);
        float[] straight = new SaeTrainer(config, straightDir).train(source(data, rows)).sae().parameters().toFloatVector();

        // First half: the activations end after STEPS/2 training batches (the final checkpoint lands there).
        SaeTrainer.Result half = new SaeTrainer(config, splitDir).train(source(data, (NORMALIZATION_BATCHES + STEPS / 2) * BATCH));
        assertEquals(STEPS / 2, half.steps());
        assertThrows(IllegalStateException.class, () -> new SaeTrainer(config, splitDir).train(source(data, rows)),
                "an output directory with a checkpoint must be refused unless resuming");
        SaeTrainer.Result resumed = new SaeTrainer(config, splitDir).resume(true).train(source(data, rows));
        assertEquals(STEPS, resumed.steps());
        float[] split = resumed.sae().parameters().toFloatVector();

        double maxDiff = 0;
        double maxAbs = 0;
        for (int i = 0; i < straight.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(straight[i] - split[i]));
            maxAbs = Math.max(maxAbs, Math.abs(straight[i]));
        }
        assertTrue(maxDiff <= 1e-5 * maxAbs, config.architecture() + ": resumed weights differ by " + maxDiff);
        assertTrue(Files.exists(splitDir.resolve("metrics.jsonl")));
        return resumed;
    }

    private static SaeConfig.Builder config(SaeConfig.Architecture architecture) {
        return SaeConfig.builder(architecture, D_IN, 48).batchSize(BATCH).totalTokens((long) STEPS * BATCH)
                .learningRate(1e-2).lrWarmupSteps(3).sparsityWarmupSteps(4).checkpointEverySteps(4).metricsEverySteps(2)
                .normalizationBatches(NORMALIZATION_BATCHES).deadWindowTokens(2 * BATCH).k(4).kAux(8);
    }

    @Test
    void jumpReluWithPreActivationLossResumes() {
        resumesToTheSameWeights(config(SaeConfig.Architecture.JUMPRELU).preActLossCoefficient(0.1).thresholdInit(0.5)
                .bandwidth(0.5).build(), dir.resolve("a"), dir.resolve("b"));
    }

    @Test
    void batchTopKWithAuxKResumes() {
        resumesToTheSameWeights(config(SaeConfig.Architecture.BATCHTOPK).auxKCoefficient(0.5).build(), dir.resolve("a"), dir.resolve("b"));
    }

    /** TopK at a small L0 takes the sparse decoding path (the cost model's choice), which must resume exactly too. */
    @Test
    void topKOnTheSparsePathResumes() {
        SaeTrainer.Result resumed = resumesToTheSameWeights(config(SaeConfig.Architecture.TOPK).build(), dir.resolve("a"), dir.resolve("b"));
        assertTrue(resumed.sae().lastPassSparse(), "the run decoded sparsely");
    }

    @Test
    void topKWithDeadLatentsOnTheSparsePathResumes() {
        // Dead latents within the run (a short window) bring AuxK's sparse term in.
        SaeTrainer.Result resumed = resumesToTheSameWeights(config(SaeConfig.Architecture.TOPK).auxKCoefficient(1.0 / 32).kAux(8)
                .deadWindowTokens(BATCH).build(), dir.resolve("a"), dir.resolve("b"));
        assertTrue(resumed.sae().lastPassSparse(), "the run decoded sparsely");
    }

    @Test
    void aDifferentConfigCannotResume() {
        SaeConfig config = config(SaeConfig.Architecture.RELU).build();
        int rows = (NORMALIZATION_BATCHES + STEPS) * BATCH;
        float[] data = data(rows);
        new SaeTrainer(config, dir).train(source(data, (NORMALIZATION_BATCHES + 2) * BATCH));
        SaeConfig other = config.toBuilder().learningRate(5e-3).build();
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> new SaeTrainer(other, dir).resume(true).train(source(data, rows)));
        assertTrue(e.getMessage().contains("learningRate"), e.getMessage());
    }

    @Test
    void nonFiniteActivationsStopWithTheRowNamed() {
        SaeConfig config = config(SaeConfig.Architecture.RELU).normalizationScale(1.0).build();
        int rows = (NORMALIZATION_BATCHES + STEPS) * BATCH;
        float[] data = data(rows);
        int badRow = (NORMALIZATION_BATCHES + 5) * BATCH + 3;
        data[badRow * D_IN + 2] = Float.NaN;
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> new SaeTrainer(config, dir).train(source(data, rows)));
        assertTrue(e.getMessage().contains("row " + badRow) && e.getMessage().contains("step 5"), e.getMessage());
        // The checkpoint at step 4 survives.
        assertTrue(Checkpoints.latest(dir).isPresent());
        assertEquals(4, Checkpoints.stepOf(Checkpoints.latest(dir).get()));
    }
}
