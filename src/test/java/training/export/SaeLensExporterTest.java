package training.export;

import activations.safetensors.SafeTensors;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.sae.SaeConfig;
import training.sae.SparseAutoencoder;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The exported directory, read with nothing but SafeTensors, Jackson and a plain-Java SAELens
 * encode, gives the in-memory model's codes and reconstructions on RAW inputs (the normalization
 * scale folded into the weights); the loader agrees too.
 */
class SaeLensExporterTest {

    private static final int D_IN = 12;
    private static final int D_SAE = 40;
    private static final int ROWS = 64;
    private static final double SCALE = 2.5;

    @TempDir
    Path dir;

    private void roundTrip(SaeConfig config) throws Exception {
        SparseAutoencoder sae = SparseAutoencoder.create(config, DataType.FLOAT);
        Random random = new Random(3);
        float[] raw = new float[ROWS * D_IN];
        for (int i = 0; i < raw.length; i++) {
            raw[i] = (float) (random.nextGaussian() + 0.2 * (i % D_IN));
        }
        INDArray rawX = Nd4j.createFromArray(raw).reshape(ROWS, D_IN);
        INDArray normalized = rawX.mul(SCALE);
        sae.initialize(normalized, 11);
        // Move away from the symmetric init so the check is not trivial (and give BatchTopK a threshold).
        INDArray p = sae.parameters();
        for (int i = 0; i < p.length(); i++) {
            p.putScalar(0, i, p.getDouble(0, i) + 0.2 * random.nextGaussian());
        }
        if (config.architecture() == SaeConfig.Architecture.JUMPRELU) {
            ((training.sae.JumpReluSae) sae).logThreshold().assign(Math.log(0.3));
        }
        sae.forwardBackward(normalized);

        INDArray codes = sae.encode(normalized);
        INDArray reconstruction = sae.decode(codes).div(SCALE); // back to raw units
        double[] density = new double[D_SAE];
        Arrays.fill(density, 0.01);
        density[0] = 0;
        SaeLensExporter.export(sae, SCALE, density,
                new SaeLensMetadata("tiny", "blocks.0.hook_resid_pre", null, 128, true, "corpora/x"), dir);

        JsonNode cfg = new ObjectMapper().readTree(dir.resolve("cfg.json").toFile());
        assertEquals(D_IN, cfg.get("d_in").asInt());
        assertEquals(D_SAE, cfg.get("d_sae").asInt());
        assertEquals("none", cfg.get("normalize_activations").asText());
        assertTrue(cfg.get("apply_b_dec_to_input").asBoolean());
        assertEquals("blocks.0.hook_resid_pre", cfg.at("/metadata/hook_name").asText());
        assertTrue(cfg.at("/metadata/sae_lens_version").asText().startsWith("6."));
        assertTrue(cfg.at("/metadata/hook_head_index").isNull());
        String architecture = cfg.get("architecture").asText();

        float[] wEnc;
        float[] bEnc;
        float[] wDec;
        float[] bDec;
        float[] threshold = null;
        float[] rMag = null;
        float[] bMag = null;
        try (SafeTensors st = SafeTensors.open(dir.resolve("sae_weights.safetensors"))) {
            assertEquals("[" + D_IN + ", " + D_SAE + "]", st.info("W_enc").shapeString());
            assertEquals("[" + D_SAE + ", " + D_IN + "]", st.info("W_dec").shapeString());
            wEnc = st.floats("W_enc");
            bEnc = st.floats(architecture.equals("gated") ? "b_gate" : "b_enc");
            if (architecture.equals("gated")) {
                assertTrue(!st.contains("b_enc"), "SAELens's gated layout has no b_enc");
                rMag = st.floats("r_mag");
                bMag = st.floats("b_mag");
            }
            wDec = st.floats("W_dec");
            bDec = st.floats("b_dec");
            if (architecture.equals("jumprelu")) {
                threshold = st.floats("threshold");
            }
        }
        try (SafeTensors st = SafeTensors.open(dir.resolve("sparsity.safetensors"))) {
            float[] log10 = st.floats("sparsity");
            assertEquals(-2.0, log10[1], 1e-5);
            assertEquals(-10.0, log10[0], 1e-5);
        }

        SaeLensDictionary loaded = SaeLensDictionary.load(dir);
        INDArray loadedCodes = loaded.encode(rawX);
        INDArray loadedReconstruction = loaded.decode(loadedCodes);
        int active = 0;
        for (int r = 0; r < ROWS; r++) {
            double[] z = new double[D_SAE];
            for (int i = 0; i < D_SAE; i++) {
                double s = bEnc[i];
                for (int j = 0; j < D_IN; j++) {
                    s += (raw[r * D_IN + j] - bDec[j]) * wEnc[j * D_SAE + i];
                }
                z[i] = s;
            }
            double[] f = new double[D_SAE];
            switch (architecture) {
                case "standard" -> {
                    for (int i = 0; i < D_SAE; i++) {
                        f[i] = Math.max(z[i], 0);
                    }
                }
                case "jumprelu" -> {
                    for (int i = 0; i < D_SAE; i++) {
                        f[i] = z[i] > threshold[i] ? z[i] : 0;
                    }
                }
                case "topk" -> {
                    int k = cfg.get("k").asInt();
                    double[] sorted = z.clone();
                    Arrays.sort(sorted);
                    double kth = sorted[D_SAE - k];
                    for (int i = 0; i < D_SAE; i++) {
                        f[i] = z[i] >= kth ? Math.max(z[i], 0) : 0;
                    }
                }
                case "gated" -> {
                    for (int i = 0; i < D_SAE; i++) {
                        double magnitude = (z[i] - bEnc[i]) * Math.exp(rMag[i]) + bMag[i];
                        f[i] = z[i] > 0 ? Math.max(magnitude, 0) : 0;
                    }
                }
                default -> throw new AssertionError("unexpected architecture " + architecture);
            }
            for (int i = 0; i < D_SAE; i++) {
                active += f[i] > 0 ? 1 : 0;
                assertEquals(codes.getDouble(r, i), f[i], 2e-4 * (1 + Math.abs(f[i])), "code " + r + "," + i);
                assertEquals(loadedCodes.getDouble(r, i), f[i], 2e-4 * (1 + Math.abs(f[i])), "loaded code " + r + "," + i);
            }
            for (int j = 0; j < D_IN; j++) {
                double s = bDec[j];
                for (int i = 0; i < D_SAE; i++) {
                    s += f[i] * wDec[i * D_IN + j];
                }
                assertEquals(reconstruction.getDouble(r, j), s, 2e-4 * (1 + Math.abs(s)), "reconstruction " + r + "," + j);
                assertEquals(loadedReconstruction.getDouble(r, j), s, 2e-4 * (1 + Math.abs(s)));
            }
        }
        assertTrue(active > ROWS, "too few active codes for a meaningful check: " + active);
    }

    private static SaeConfig.Builder config(SaeConfig.Architecture a) {
        return SaeConfig.builder(a, D_IN, D_SAE).batchSize(ROWS).totalTokens(ROWS).k(5);
    }

    @Test
    void relu() throws Exception {
        roundTrip(config(SaeConfig.Architecture.RELU).build());
    }

    @Test
    void jumpRelu() throws Exception {
        roundTrip(config(SaeConfig.Architecture.JUMPRELU).build());
    }

    @Test
    void topK() throws Exception {
        roundTrip(config(SaeConfig.Architecture.TOPK).build());
    }

    @Test
    void batchTopKExportsAsJumpRelu() throws Exception {
        roundTrip(config(SaeConfig.Architecture.BATCHTOPK).build());
        assertEquals("jumprelu", new ObjectMapper().readTree(dir.resolve("cfg.json").toFile()).get("architecture").asText());
    }

    @Test
    void matryoshkaExportsAsJumpRelu() throws Exception {
        roundTrip(config(SaeConfig.Architecture.MATRYOSHKA).matryoshkaWidths(java.util.List.of(8, 20)).build());
        assertEquals("jumprelu", new ObjectMapper().readTree(dir.resolve("cfg.json").toFile()).get("architecture").asText());
    }

    @Test
    void gatedInSaeLensGatedLayout() throws Exception {
        roundTrip(config(SaeConfig.Architecture.GATED).build());
        assertEquals("gated", new ObjectMapper().readTree(dir.resolve("cfg.json").toFile()).get("architecture").asText());
    }
}
