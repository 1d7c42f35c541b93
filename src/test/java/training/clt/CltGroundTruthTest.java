package training.clt;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A CLT trained on {@link SyntheticCrossLayer} data recovers the true cross-layer decoders: for at
 * least 80% of the true features, some learned feature of the same layer has a concatenated decoder
 * (over targets l..L-1, in raw units, scales folded back) with cosine >= 0.9 to the true one.
 */
class CltGroundTruthTest {

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

    @Test
    void recoversTheTrueCrossLayerFeatures() {
        int layers = 3;
        int d = 16;
        int perLayer = 8;
        int batch = 256;
        int steps = 1000;
        SyntheticCrossLayer truth = new SyntheticCrossLayer(layers, d, perLayer, 0.12, 16_384, 7);
        CltConfig config = CltConfig.builder(layers, d, 2 * perLayer).batchSize(batch).totalTokens((long) steps * batch)
                .learningRate(1e-2).lrWarmupSteps(20).sparsityCoefficient(1.0).sparsityWarmupSteps(100)
                .thresholdInit(0.1).bandwidth(0.1).preActLossCoefficient(3e-4).deadWindowTokens(20L * batch)
                .metricsEverySteps(100).checkpointEverySteps(0).normalizationBatches(2).seed(3).build();
        StringBuilder log = new StringBuilder();
        CltTrainer.Result result = new CltTrainer(config, dir).listener(CltTrainer.consoleProgress(System.out)).listener(m -> log.append(java.util.Arrays.toString(m.nmseByLayer())).append(java.util.Arrays.toString(m.l0ByLayer())).append(" "))
                .train(truth.source(truth.rows, 20));
        CrossLayerTranscoder clt = result.clt();

        int recovered = 0;
        StringBuilder best = new StringBuilder();
        for (int l = 0; l < layers; l++) {
            for (int i = 0; i < perLayer; i++) {
                double bestCos = -1;
                for (int k = 0; k < clt.featuresPerLayer(); k++) {
                    double dot = 0;
                    double nTrue = 0;
                    double nLearned = 0;
                    for (int t = l; t < layers; t++) {
                        for (int j = 0; j < d; j++) {
                            double learned = clt.wDec(l, t).getDouble(k, j) / result.targetScales()[t];
                            double want = truth.decoders[l][i][t - l][j];
                            dot += learned * want;
                            nTrue += want * want;
                            nLearned += learned * learned;
                        }
                    }
                    bestCos = Math.max(bestCos, dot / Math.sqrt(nTrue * nLearned + 1e-30));
                }
                best.append(String.format(java.util.Locale.ROOT, "%.2f ", bestCos));
                recovered += bestCos >= 0.9 ? 1 : 0;
            }
        }
        int total = layers * perLayer;
        assertTrue(recovered >= 0.8 * total, "recovered " + recovered + "/" + total + " (best cosines " + best + "); nmse " + log);
        System.out.println("recovered " + recovered + "/" + total + " best cosines " + best);
    }
}
