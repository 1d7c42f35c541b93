package training.trainer;

import activations.table.InMemoryActivationSource;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.factory.Nd4j;
import training.sae.SaeConfig;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each architecture, trained by {@link SaeTrainer} on sparse combinations of a known over-complete
 * dictionary (d_in 64, 256 unit-norm features, ~5 active per sample, small noise), must find >= 90%
 * of the true directions with cosine >= 0.9 in some decoder row.
 */
class GroundTruthRecoveryTest {

    private static final int D_IN = 64;
    private static final int D_SAE = 512;
    private static final int BATCH = 256;
    private static final int ROWS = 65_536;
    private static final long TOKENS = 200_000L;
    private static SyntheticDictionary truth;
    private static float[] data;

    @TempDir
    Path dir;

    private static int savedThreads;
    private static int savedMasterThreads;

    @BeforeAll
    static void data() {
        // Small matrices: one thread avoids OpenMP synchronization costs on a shared 2-core machine.
        savedThreads = Nd4j.getEnvironment().maxThreads();
        savedMasterThreads = Nd4j.getEnvironment().maxMasterThreads();
        Nd4j.getEnvironment().setMaxThreads(1);
        Nd4j.getEnvironment().setMaxMasterThreads(1);
        truth = new SyntheticDictionary(D_IN, 256, 7);
        data = truth.samples(ROWS, 5, 0.01, 8);
    }

    @AfterAll
    static void restoreThreads() {
        Nd4j.getEnvironment().setMaxThreads(savedThreads);
        Nd4j.getEnvironment().setMaxMasterThreads(savedMasterThreads);
    }

    private double train(SaeConfig config) {
        InMemoryActivationSource source = new InMemoryActivationSource(List.of("h"), new float[][] {data},
                new int[] {D_IN}, (int) (TOKENS / ROWS + 2));
        StringBuilder log = new StringBuilder();
        SaeTrainer.Result result = new SaeTrainer(config, dir).listener(m -> log.append(m).append('\n')).train(source);
        double recovered = truth.recovered(result.sae().wDec().dup('c').reshape(-1).toFloatVector(), D_SAE, 0.9);
        System.out.println(config.architecture() + " recovered " + recovered + "\n" + log);
        return recovered;
    }

    private static SaeConfig.Builder common(SaeConfig.Architecture architecture) {
        return SaeConfig.builder(architecture, D_IN, D_SAE).batchSize(BATCH).totalTokens(TOKENS)
                .learningRate(3e-3).lrWarmupSteps(20).metricsEverySteps(200).checkpointEverySteps(0)
                .deadWindowTokens(50_000).seed(3);
    }

    @Test
    void relu() {
        double r = train(common(SaeConfig.Architecture.RELU).sparsityCoefficient(1.0).sparsityWarmupSteps(100).build());
        assertTrue(r >= 0.9, "ReLU SAE recovered only " + r + " of the true features");
    }

    @Test
    void jumpRelu() {
        double r = train(common(SaeConfig.Architecture.JUMPRELU).sparsityCoefficient(1.0).sparsityWarmupSteps(100)
                // Normalized inputs put true activations near 2-5: start the thresholds and kernel at that scale.
                .thresholdInit(0.5).bandwidth(0.5).build());
        assertTrue(r >= 0.9, "JumpReLU SAE recovered only " + r + " of the true features");
    }

    @Test
    void topK() {
        double r = train(common(SaeConfig.Architecture.TOPK).k(6).build());
        assertTrue(r >= 0.9, "TopK SAE recovered only " + r + " of the true features");
    }

    @Test
    void batchTopK() {
        double r = train(common(SaeConfig.Architecture.BATCHTOPK).k(6).build());
        assertTrue(r >= 0.9, "BatchTopK SAE recovered only " + r + " of the true features");
    }
}
