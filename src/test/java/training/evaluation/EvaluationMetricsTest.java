package training.evaluation;

import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The cross-tool metrics of evaluation.json (docs/EVALUATION.md) on three tokens and one
 * predicted position, against values worked out by hand from the formulas.
 */
class EvaluationMetricsTest {

    @Test
    void reconstructionMetricsMatchTheirFormulas() {
        ReconstructionStatistics stats = new ReconstructionStatistics(2, 3);
        float[] x = {3, 4, 0, 0, 1, 0};
        float[] xHat = {1.5f, 2, 0, 0, 2, 0};
        float[] features = {1, 0, 0, 0, 0, 0, 2, 0, 0}; // feature 0 fires twice, 1 and 2 never
        stats.add(x, xHat, features, 3);
        // sum ||x - mean||^2 = 26 - ||(4, 4)||^2 / 3; squared error 6.25 + 0 + 1.
        assertEquals(1 - 7.25 / (26 - 32.0 / 3), stats.explainedVariance(), 1e-12);
        assertEquals(7.25 / (26 - 32.0 / 3), stats.fvu(), 1e-12);
        // ||x_hat|| / ||x|| over the tokens with x != 0: 2.5 / 5 and 2 / 1.
        assertEquals((0.5 + 2.0) / 2, stats.l2Ratio(), 1e-12);
        // sum ||x_hat||^2 / sum x . x_hat = (6.25 + 4) / (12.5 + 2).
        assertEquals(10.25 / 14.5, stats.relativeReconstructionBias(), 1e-12);
        assertEquals(1 / 3.0, stats.fracAlive(), 1e-12);

        ReconstructionStatistics other = new ReconstructionStatistics(2, 3);
        other.add(new float[] {0, 2}, new float[] {0, 1}, new float[] {0, 1, 0}, 1);
        stats.merge(other);
        assertEquals((0.5 + 2.0 + 0.5) / 3, stats.l2Ratio(), 1e-12, "merged across tasks");
        assertEquals(2 / 3.0, stats.fracAlive(), 1e-12);
    }

    @Test
    void klAndCeScoresUseTheZeroAblationBaseline() {
        NextTokenLoss loss = new NextTokenLoss();
        // One sequence [0, 1]: position 0 predicts token 1. Clean p = (1/2, 1/2), spliced q = (1/4, 3/4),
        // zero-ablated q0 = (9/10, 1/10).
        float[] clean = {0, 0, 0, 0};
        float[] spliced = {0, (float) Math.log(3), 0, 0};
        float[] zero = {(float) Math.log(9), 0, 0, 0};
        loss.add(clean, spliced, zero, new int[][] {{0, 1}}, 2, 2);
        double kl = 0.5 * Math.log(0.5 / 0.25) + 0.5 * Math.log(0.5 / 0.75);
        double klZero = 0.5 * Math.log(0.5 / 0.9) + 0.5 * Math.log(0.5 / 0.1);
        assertEquals(kl, loss.kl(), 1e-6);
        assertEquals(klZero, loss.klZeroAblated(), 1e-6);
        assertEquals((klZero - kl) / klZero, loss.klDivScore(), 1e-6);
        double ceClean = Math.log(2);
        double ceSpliced = -Math.log(0.75);
        double ceZero = -Math.log(0.1);
        assertEquals((ceZero - ceSpliced) / (ceZero - ceClean), loss.ceScore(), 1e-6);

        Map<String, Object> report = EvaluationReport.toMap(Map.of(), new ReconstructionStatistics(2, 3), loss);
        @SuppressWarnings("unchecked")
        Map<String, Object> downstream = (Map<String, Object>) report.get("downstream");
        assertEquals(loss.klDivScore(), (double) downstream.get("kl_div_score"), 1e-12);
        assertEquals(loss.ceScore(), (double) downstream.get("ce_loss_score"), 1e-12);
    }
}
