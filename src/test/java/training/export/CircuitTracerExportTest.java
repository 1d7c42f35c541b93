package training.export;

import activations.safetensors.DType;
import activations.safetensors.SafeTensors;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.clt.CltConfig;
import training.clt.CrossLayerTranscoder;
import training.sae.JumpReluSae;
import training.sae.SaeConfig;
import training.sae.SparseAutoencoder;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * circuit-tracer exports read back with nothing but the safetensors files and config.yaml
 * (through {@link CircuitTracerDictionary}) reproduce the in-memory models on RAW activations,
 * with the per-layer input/target scales folded in, and carry circuit-tracer's tensor names,
 * shapes and dtype.
 */
class CircuitTracerExportTest {

    private static final int L = 3;
    private static final int D = 6;
    private static final int F = 10;
    private static final int ROWS = 40;

    @TempDir
    Path dir;

    private static INDArray[] rawInputs(Random r) {
        INDArray[] x = new INDArray[L];
        for (int l = 0; l < L; l++) {
            float[] v = new float[ROWS * D];
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) ((1 + l) * (r.nextGaussian() + 0.3));
            }
            x[l] = Nd4j.createFromArray(v).reshape(ROWS, D);
        }
        return x;
    }

    private static void assertClose(INDArray expected, INDArray actual, String what) {
        double err = actual.sub(expected).norm2Number().doubleValue() / Math.max(1e-12, expected.norm2Number().doubleValue());
        assertTrue(err < 1e-5, what + " differs by relative " + err);
    }

    @Test
    void crossLayerTranscoderRoundTripsOnRawActivations() throws Exception {
        CltConfig config = CltConfig.builder(L, D, F).thresholdInit(0.2).batchSize(ROWS).totalTokens(ROWS).build();
        CrossLayerTranscoder clt = new CrossLayerTranscoder(config, DataType.FLOAT);
        clt.initialize(5);
        Random r = new Random(6);
        for (int l = 0; l < L; l++) {
            for (int i = 0; i < F; i++) {
                clt.bEnc(l).putScalar(i, 0.1 * r.nextGaussian());
                clt.logThreshold(l).putScalar(i, Math.log(0.05 + 0.3 * r.nextDouble()));
            }
            for (int j = 0; j < D; j++) {
                clt.bDec(l).putScalar(j, r.nextGaussian());
            }
        }
        double[] in = {2.0, 0.5, 1.5};
        double[] out = {0.25, 3.0, 1.2};
        CircuitTracerExporter.exportCrossLayer(clt, in, out, "blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out", dir);

        JsonNode yaml = new ObjectMapper(new YAMLFactory()).readTree(dir.resolve("config.yaml").toFile());
        assertEquals("cross_layer_transcoder", yaml.get("model_kind").asText());
        assertEquals("ln2.hook_normalized", yaml.get("feature_input_hook").asText());
        assertEquals("hook_mlp_out", yaml.get("feature_output_hook").asText());
        for (int i = 0; i < L; i++) {
            try (SafeTensors st = SafeTensors.open(dir.resolve("W_enc_" + i + ".safetensors"))) {
                assertEquals("[" + F + ", " + D + "]", st.info("W_enc_" + i).shapeString());
                assertEquals("[" + F + "]", st.info("b_enc_" + i).shapeString());
                assertEquals("[" + D + "]", st.info("b_dec_" + i).shapeString());
                assertEquals("[" + F + "]", st.info("threshold_" + i).shapeString());
                assertEquals(DType.F32, st.info("W_enc_" + i).dtype());
            }
            try (SafeTensors st = SafeTensors.open(dir.resolve("W_dec_" + i + ".safetensors"))) {
                assertEquals("[" + F + ", " + (L - i) + ", " + D + "]", st.info("W_dec_" + i).shapeString());
            }
        }

        INDArray[] raw = rawInputs(r);
        INDArray[] normalized = new INDArray[L];
        INDArray[] codes = new INDArray[L];
        for (int l = 0; l < L; l++) {
            normalized[l] = raw[l].mul(in[l]);
            codes[l] = clt.encode(l, normalized[l]);
        }
        CircuitTracerDictionary loaded = CircuitTracerDictionary.load(dir);
        assertEquals(L, loaded.layers());
        INDArray[] predictions = loaded.forward(raw);
        int active = 0;
        for (int t = 0; t < L; t++) {
            assertClose(codes[t], loaded.encode(t, raw[t]), "codes of layer " + t);
            assertClose(clt.decode(t, codes).div(out[t]), predictions[t], "prediction of layer " + t);
            active += codes[t].gt(0).castTo(DataType.FLOAT).sumNumber().intValue();
        }
        assertTrue(active > ROWS, "too few active features for a meaningful check: " + active);
    }

    @Test
    void largeTensorsAreWrittenAndReadInPartsWithTheSameResult() throws Exception {
        CltConfig config = CltConfig.builder(L, D, F).thresholdInit(0.2).batchSize(ROWS).totalTokens(ROWS).build();
        CrossLayerTranscoder clt = new CrossLayerTranscoder(config, DataType.FLOAT);
        clt.initialize(7);
        double[] in = {2.0, 0.5, 1.5};
        double[] out = {0.25, 3.0, 1.2};
        Path whole = dir.resolve("whole");
        Path parts = dir.resolve("parts");
        CircuitTracerExporter.exportCrossLayer(clt, in, out, "blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out", whole);
        long savedExport = CircuitTracerExporter.exportPartValues;
        long savedRead = CircuitTracerDictionary.readPartValues;
        CircuitTracerDictionary loadedWhole;
        CircuitTracerDictionary loadedParts;
        try {
            // A few feature rows per written part (and one row when a row alone is over the size), 5 values per read.
            CircuitTracerExporter.exportPartValues = 3L * D;
            CircuitTracerDictionary.readPartValues = 5;
            CircuitTracerExporter.exportCrossLayer(clt, in, out, "blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out", parts);
            loadedParts = CircuitTracerDictionary.load(parts);
        } finally {
            CircuitTracerExporter.exportPartValues = savedExport;
            CircuitTracerDictionary.readPartValues = savedRead;
        }
        loadedWhole = CircuitTracerDictionary.load(whole);
        for (int i = 0; i < L; i++) {
            for (String file : List.of("W_enc_" + i + ".safetensors", "W_dec_" + i + ".safetensors")) {
                assertArrayEquals(Files.readAllBytes(whole.resolve(file)), Files.readAllBytes(parts.resolve(file)), file + " byte for byte");
            }
            assertEquals(loadedWhole.encode(i, Nd4j.ones(DataType.FLOAT, 2, D)), loadedParts.encode(i, Nd4j.ones(DataType.FLOAT, 2, D)));
            for (int t = i; t < L; t++) {
                assertEquals(loadedWhole.wDec(i, t), loadedParts.wDec(i, t), "W_dec " + i + " -> " + t);
            }
            assertEquals(loadedWhole.threshold(i), loadedParts.threshold(i));
        }
        try (SafeTensors st = SafeTensors.open(whole.resolve("W_dec_0.safetensors"))) {
            float[] all = st.floats("W_dec_0");
            assertArrayEquals(java.util.Arrays.copyOfRange(all, 7, 20), st.floats("W_dec_0", 7, 13), "a range read");
        }
    }

    @Test
    void perLayerTranscoderSetRoundTripsWithSkipAndThresholds() throws Exception {
        List<SparseAutoencoder> set = new ArrayList<>();
        Random r = new Random(8);
        double[] in = {1.7, 0.4, 2.2};
        double[] out = {0.6, 1.9, 0.3};
        for (int l = 0; l < L; l++) {
            SaeConfig config = SaeConfig.builder(SaeConfig.Architecture.JUMPRELU, D, F).dOut(D).skipConnection(true)
                    .batchSize(ROWS).totalTokens(ROWS).build();
            SparseAutoencoder t = SparseAutoencoder.create(config, DataType.FLOAT);
            INDArray p = t.parameters();
            for (int i = 0; i < p.length(); i++) {
                p.putScalar(0, i, 0.4 * r.nextGaussian());
            }
            ((JumpReluSae) t).logThreshold().assign(Math.log(0.2));
            set.add(t);
        }
        CircuitTracerExporter.exportTranscoderSet(set, in, out, "ln2.hook_normalized", "hook_mlp_out", dir);
        JsonNode yaml = new ObjectMapper(new YAMLFactory()).readTree(dir.resolve("config.yaml").toFile());
        assertEquals("transcoder_set", yaml.get("model_kind").asText());
        try (SafeTensors st = SafeTensors.open(dir.resolve("layer_1.safetensors"))) {
            assertEquals("[" + F + ", " + D + "]", st.info("W_enc").shapeString());
            assertEquals("[" + F + ", " + D + "]", st.info("W_dec").shapeString());
            assertEquals("[" + F + "]", st.info("activation_function.threshold").shapeString());
            assertEquals("[" + D + ", " + D + "]", st.info("W_skip").shapeString());
        }
        CircuitTracerDictionary loaded = CircuitTracerDictionary.load(dir);
        INDArray[] raw = rawInputs(r);
        INDArray[] predictions = loaded.forward(raw);
        for (int l = 0; l < L; l++) {
            INDArray normalized = raw[l].mul(in[l]);
            SparseAutoencoder t = set.get(l);
            INDArray codes = t.encode(normalized);
            assertTrue(codes.gt(0).castTo(DataType.FLOAT).sumNumber().intValue() > ROWS / 2, "too few active features");
            assertClose(codes, loaded.encode(l, raw[l]), "codes of layer " + l);
            assertClose(t.decode(codes, normalized).div(out[l]), predictions[l], "prediction of layer " + l);
        }
    }
}
