package jobs.train;

import activations.table.InMemoryActivationSource;
import activations.table.MixingBuffer;
import activations.table.RepeatedSource;
import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import training.sae.SaeConfig;
import training.trainer.SaeTrainer;
import training.trainer.SyntheticDictionary;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Token budgets over caches smaller than the budget, and metrics of runs shorter than a metrics window. */
class TrainingBudgetTest {

    @Test
    void aSmallerCacheIsReadAsOftenAsTheBudgetNeeds() {
        TrainingBudget b = TrainingBudget.plan(200_000, 3_000_000, 32_768, 0, 4096);
        assertEquals(16, b.passes()); // (3,000,000 + 32,768 normalization rows) / 200,000 rounded up
        assertEquals(3_000_000, b.tokens());
        assertFalse(b.capped());
        assertEquals("cache holds 200,000 tokens: 16 passes for 3,000,000", b.describe());
        assertEquals(1, TrainingBudget.plan(10_000_000, 3_000_000, 32_768, 0, 4096).passes());
    }

    @Test
    void epochsCapThePassesAndShrinkTheBudgetToWholeBatches() {
        TrainingBudget b = TrainingBudget.plan(200_000, 3_000_000, 32_768, 2, 4096);
        assertTrue(b.capped());
        assertEquals(2, b.passes());
        assertEquals((400_000 - 32_768) / 4096 * 4096, b.tokens());
        assertTrue(b.describe().contains("epochs = 2 caps the run"), b.describe());
        // A cap at or above what is needed changes nothing.
        assertFalse(TrainingBudget.plan(200_000, 3_000_000, 32_768, 20, 4096).capped());
        assertThrows(IllegalArgumentException.class, () -> TrainingBudget.plan(1000, 3_000_000, 900, 1, 4096));
        assertThrows(IllegalArgumentException.class, () -> TrainingBudget.plan(1000, 3_000_000, 0, -1, 4096));
    }

    /**
     * The case: fewer steps than metrics-every. The run still writes its (partial) window
     * with finite figures, the budget re-reads the cache, and the trainer stops at the budget.
     */
    @Test
    void aRunShorterThanOneMetricsWindowReportsRealNumbers(@TempDir Path dir) throws Exception {
        int dIn = 16;
        SyntheticDictionary truth = new SyntheticDictionary(dIn, 32, 5);
        int rows = 3000;
        float[] data = truth.samples(rows, 3, 0.01, 6);
        SaeConfig config = SaeConfig.builder(SaeConfig.Architecture.JUMPRELU, dIn, 64).batchSize(100).totalTokens(4000)
                .jumpReluSparsity(SaeConfig.JumpReluSparsity.QUADRATIC).targetL0(3).thresholdInit(0)
                .metricsEverySteps(100).checkpointEverySteps(0).normalizationBatches(2).build();
        TrainingBudget budget = TrainingBudget.plan(rows, config.totalTokens(), 200, 0, config.batchSize());
        assertEquals(2, budget.passes());
        SaeTrainer.Result result;
        try (var source = new MixingBuffer(new RepeatedSource(() -> new InMemoryActivationSource(List.of("h"),
                new float[][] {data}, new int[] {dIn}, 1), budget.passes()), 500, 1)) {
            result = new SaeTrainer(config, dir).train(source);
        }
        assertEquals(40, result.steps());
        JsonNode last = TrainSaeJob.lastMetrics(dir);
        assertEquals(40, last.path("step").asLong());
        for (String key : new String[] {"loss", "mse", "fvu", "l0", "deadFraction"}) {
            assertTrue(Double.isFinite(last.path(key).asDouble(Double.NaN)), key + " is " + last.path(key));
        }
        assertTrue(last.path("fvu").asDouble() < 1.5 && last.path("l0").asDouble() > 0, last.toString());

        // A source that ends before the budget (one pass of 3,000 rows): the last, partial window is written.
        Path early = dir.resolve("early");
        try (var source = new InMemoryActivationSource("h", data, dIn)) {
            result = new SaeTrainer(config, early).train(source);
        }
        assertEquals(28, result.steps()); // (3,000 - 200 normalization rows) / 100
        assertEquals(28, TrainSaeJob.lastMetrics(early).path("step").asLong());
        assertTrue(Double.isFinite(TrainSaeJob.lastMetrics(early).path("fvu").asDouble(Double.NaN)));
    }
}
