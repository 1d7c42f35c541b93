package jobs.train;

import activations.safetensors.SafeTensors;
import jobs.cli.Spindle;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import training.clt.SmallShapes;
import training.trainer.SyntheticDictionary;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The product path on data with known ground truth: sparse non-negative combinations of a known
 * over-complete dictionary (d_in 64, 256 unit-norm features, ~5 active per sample, small noise)
 * written as .npy, brought in with `spindle import-activations`, trained with `spindle train-sae`
 * (reader, mixing buffer, manifest normalization, export; the 65,536-row cache is read about three
 * times for the 200,000-token budget). Every architecture must find >= 90% of the true directions
 * with cosine >= 0.9 in a decoder row of the exported SAELens files, and the default JumpReLU must
 * end within 20% of its target L0.
 */
class GroundTruthRecoveryTest {

    static final int D_IN = 64;
    static final int D_SAE = 512;
    static final int ROWS = 65_536;
    static SyntheticDictionary truth;
    static float[] data;
    static Path cache;

    @BeforeAll
    static void importData(@TempDir Path dir) throws IOException {
        SmallShapes.singleThreaded();
        truth = new SyntheticDictionary(D_IN, 256, 7);
        Path npy = dir.resolve("synthetic.npy");
        data = truth.samples(ROWS, 5, 0.01, 8);
        writeNpy(npy, data, ROWS, D_IN);
        cache = dir.resolve("cache");
        assertEquals(0, Spindle.run("import-activations", "--input", npy.toString(), "--hook", "h",
                "--dtype", "float32", "--out", cache.toString()));
    }

    @AfterAll
    static void restoreThreads() {
        SmallShapes.restore();
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = ';', value = {
            "relu;lr=3e-3,sparsity-coeff=1.0,sparsity-warmup-steps=100",
            // The defaults (quadratic penalty, data-initialized thresholds, automatic lr and threshold lr)
            // with the one choice a user makes, the sparsity: the data have ~5 active features per token.
            "jumprelu;target-l0=5",
            "topk;lr=3e-3,k=6",
            "batchtopk;lr=3e-3,k=6",
            // The first prefix as wide as the true dictionary: it can hold every feature alone (with the
            // default d_sae/16, d_sae/4 prefixes of these 256 equally frequent features, 0.83 were recovered).
            "matryoshka;lr=3e-3,k=6,matryoshka-widths=[256,512]",
            // At sparsity-coeff 1 the gate stayed too open (L0 46, 0.79 recovered).
            "gated;lr=3e-3,sparsity-coeff=3.0,sparsity-warmup-steps=100"})
    void recoversTheTrueFeatures(String architecture, String extra, @TempDir Path dir) throws IOException {
        Path out = dir.resolve("sae");
        List<String> args = new ArrayList<>(List.of("train-sae", "--activations", cache.toString(), "--hook", "h",
                "--arch", architecture, "--d-sae", String.valueOf(D_SAE), "--batch-tokens", "256", "--tokens", "200000",
                "--seed", "3", "--out", out.toString(),
                "--set", "lr-warmup-steps=20", "--set", "dead-window-tokens=50000",
                "--set", "checkpoint-every=0", "--set", "metrics-every=200"));
        for (String setting : extra.split(",(?![^\\[]*\\])")) { // commas inside [...] belong to a list
            args.add("--set");
            args.add(setting);
        }
        assertEquals(0, Spindle.run(args.toArray(new String[0])));
        try (SafeTensors weights = SafeTensors.open(out.resolve("sae_weights.safetensors"))) {
            double recovered = truth.recovered(weights.floats("W_dec"), D_SAE, 0.9);
            System.out.println(architecture + " recovered " + recovered);
            assertTrue(recovered >= 0.9, architecture + " SAE recovered only " + recovered + " of the true features");
        }
        if (architecture.equals("batchtopk") || architecture.equals("matryoshka")) {
            // Exported as a JumpReLU: its one threshold must give about k latents per token without a batch.
            training.export.SaeLensDictionary exported = training.export.SaeLensDictionary.load(out);
            assertEquals("jumprelu", exported.architecture());
            org.nd4j.linalg.api.ndarray.INDArray codes = exported.encode(
                    org.nd4j.linalg.factory.Nd4j.createFromArray(java.util.Arrays.copyOf(data, 4096 * D_IN)).reshape(4096, D_IN));
            double l0 = codes.gt(0).castTo(org.nd4j.linalg.api.buffer.DataType.FLOAT).sumNumber().doubleValue() / 4096;
            System.out.println(architecture + " exported L0 " + l0);
            assertTrue(Math.abs(l0 / 6 - 1) <= 0.2, architecture + " exported as JumpReLU fires " + l0 + " latents per token, not about k = 6");
        }
        if (architecture.equals("jumprelu")) {
            double l0 = TrainSaeJob.lastMetrics(out).path("l0").asDouble();
            assertTrue(Math.abs(l0 / 5 - 1) <= 0.2, "JumpReLU ended at L0 " + l0 + ", not within 20% of its target 5");
        }
    }

    /** A float32 C-order .npy file (format version 1.0). */
    static void writeNpy(Path file, float[] data, int rows, int cols) throws IOException {
        String header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + rows + ", " + cols + "), }";
        int unpadded = 10 + header.length() + 1;
        int padding = (64 - unpadded % 64) % 64;
        header = header + " ".repeat(padding) + "\n";
        ByteBuffer buffer = ByteBuffer.allocate(10 + header.length() + data.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        buffer.put((byte) 0x93).put("NUMPY".getBytes(StandardCharsets.US_ASCII)).put((byte) 1).put((byte) 0);
        buffer.putShort((short) header.length()).put(header.getBytes(StandardCharsets.US_ASCII));
        buffer.asFloatBuffer().put(data);
        Files.write(file, buffer.array());
    }
}
