package training.trainer;

import activations.safetensors.SafeTensors;
import activations.table.InMemoryActivationSource;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.export.SaeLensDictionary;
import training.export.SaeLensExporter;
import training.export.SaeLensMetadata;
import training.sae.SaeConfig;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Per-layer transcoders through the SAE trainer: a two-hook source [in, out] with targets of
 * another width and scale, learning a sparse map; resume gives the uninterrupted weights; the
 * SAELens transcoder export applied to RAW inputs reproduces the in-memory prediction.
 */
class TranscoderTrainingTest {

    private static final int D_IN = 12;
    private static final int D_OUT = 8;
    private static final int BATCH = 64;

    @TempDir
    Path dir;

    /** x = random dense input; y = 30 * ReLU(x A) (a sparse-ish nonlinear map, large scale) + x B. */
    private static float[][] data(int rows) {
        Random random = new Random(9);
        double[][] a = new double[D_IN][D_OUT];
        double[][] b = new double[D_IN][D_OUT];
        for (double[] row : a) {
            for (int j = 0; j < D_OUT; j++) {
                row[j] = random.nextGaussian();
            }
        }
        for (double[] row : b) {
            for (int j = 0; j < D_OUT; j++) {
                row[j] = 0.5 * random.nextGaussian();
            }
        }
        float[] x = new float[rows * D_IN];
        float[] y = new float[rows * D_OUT];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < D_IN; i++) {
                x[r * D_IN + i] = (float) (0.2 * random.nextGaussian() + 0.1);
            }
            for (int j = 0; j < D_OUT; j++) {
                double pre = 0;
                double lin = 0;
                for (int i = 0; i < D_IN; i++) {
                    pre += x[r * D_IN + i] * a[i][j];
                    lin += x[r * D_IN + i] * b[i][j];
                }
                y[r * D_OUT + j] = (float) (30 * Math.max(pre, 0) + lin);
            }
        }
        return new float[][] {x, y};
    }

    private static InMemoryActivationSource source(float[][] data, int rows) {
        return new InMemoryActivationSource(List.of("blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out"),
                new float[][] {Arrays.copyOf(data[0], rows * D_IN), Arrays.copyOf(data[1], rows * D_OUT)},
                new int[] {D_IN, D_OUT}, 1);
    }

    private static SaeConfig config(int steps) {
        return SaeConfig.builder(SaeConfig.Architecture.JUMPRELU, D_IN, 32).dOut(D_OUT).skipConnection(true)
                .jumpReluSparsity(SaeConfig.JumpReluSparsity.TANH).sparsityCoefficient(1e-3).thresholdInit(0.05)
                .bandwidth(0.1).batchSize(BATCH).totalTokens((long) steps * BATCH).learningRate(3e-3)
                .normalizationBatches(2).checkpointEverySteps(10).metricsEverySteps(10).deadWindowTokens(20L * BATCH).build();
    }

    @Test
    void trainsResumesAndExportsOnRawUnits() throws Exception {
        int steps = 40;
        int rows = (2 + steps) * BATCH;
        float[][] data = data(rows);
        List<Double> fvus = new java.util.ArrayList<>();
        SaeTrainer.Result straight = new SaeTrainer(config(steps), dir.resolve("a")).listener(m -> fvus.add(m.fvu()))
                .train(source(data, rows));
        assertTrue(straight.sae().isTranscoder());
        assertTrue(fvus.get(fvus.size() - 1) < 0.6 * fvus.get(0), "FVU did not fall: " + fvus);
        // Each side has its own scale: E||x|| = sqrt(d_in) and E||y|| = sqrt(d_out) after scaling.
        assertTrue(Math.abs(Math.log(straight.normalizationScale() / straight.targetNormalizationScale())) > 1,
                "input and target scales should differ by far here");

        SaeTrainer.Result half = new SaeTrainer(config(steps), dir.resolve("b")).train(source(data, (2 + steps / 2) * BATCH));
        assertEquals(steps / 2, half.steps());
        SaeTrainer.Result resumed = new SaeTrainer(config(steps), dir.resolve("b")).resume(true).train(source(data, rows));
        float[] p1 = straight.sae().parameters().toFloatVector();
        float[] p2 = resumed.sae().parameters().toFloatVector();
        double maxDiff = 0;
        for (int i = 0; i < p1.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(p1[i] - p2[i]));
        }
        assertTrue(maxDiff < 1e-5, "resumed transcoder differs by " + maxDiff);

        Path export = dir.resolve("export");
        SaeLensExporter.export(straight.sae(), straight.normalizationScale(), straight.targetNormalizationScale(),
                straight.featureDensity(), new SaeLensMetadata("tiny", "blocks.0.ln2.hook_normalized", null, 64, true, null),
                "blocks.0.hook_mlp_out", export);
        JsonNode cfg = new ObjectMapper().readTree(export.resolve("cfg.json").toFile());
        assertEquals("jumprelu_skip_transcoder", cfg.get("architecture").asText());
        assertEquals(D_OUT, cfg.get("d_out").asInt());
        assertFalse(cfg.get("apply_b_dec_to_input").asBoolean());
        assertEquals("blocks.0.hook_mlp_out", cfg.at("/metadata/hook_name_out").asText());
        try (SafeTensors st = SafeTensors.open(export.resolve("sae_weights.safetensors"))) {
            assertEquals("[" + D_OUT + ", " + D_IN + "]", st.info("W_skip").shapeString());
            assertEquals("[32, " + D_OUT + "]", st.info("W_dec").shapeString());
        }

        INDArray raw = Nd4j.createFromArray(Arrays.copyOf(data[0], 50 * D_IN)).reshape(50, D_IN);
        INDArray normalized = raw.mul(straight.normalizationScale());
        INDArray expected = straight.sae().decode(straight.sae().encode(normalized), normalized).div(straight.targetNormalizationScale());
        SaeLensDictionary loaded = SaeLensDictionary.load(export);
        INDArray actual = loaded.decode(loaded.encode(raw), raw);
        double err = actual.sub(expected).norm2Number().doubleValue() / expected.norm2Number().doubleValue();
        assertTrue(err < 1e-4, "exported transcoder on raw inputs differs from the in-memory one by " + err);
        assertTrue(loaded.encode(raw).gt(0).castTo(DataType.FLOAT).sumNumber().doubleValue() > 50, "too few active features to compare");
    }

    @Test
    void aOneHookSourceIsRefusedForATranscoder() {
        float[][] data = data(4 * BATCH);
        InMemoryActivationSource oneHook = new InMemoryActivationSource("blocks.0.ln2.hook_normalized", data[0], D_IN);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new SaeTrainer(config(2), dir).train(oneHook));
        assertTrue(e.getMessage().contains("two hooks"), e.getMessage());
    }
}
