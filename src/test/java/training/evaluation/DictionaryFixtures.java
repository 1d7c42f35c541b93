package training.evaluation;

import activations.safetensors.SafeTensorsWriter;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/** Hand-built SAELens directories with known behaviour. */
public final class DictionaryFixtures {

    private DictionaryFixtures() {
    }

    /** A standard (ReLU) SAE with the given weights (row-major) and zero biases. */
    public static Path write(Path dir, String hook, int dIn, int dSae, float[] wEnc, float[] wDec) {
        try {
            Files.createDirectories(dir);
            new SafeTensorsWriter().metadata("format", "pt")
                    .addF32("W_enc", wEnc, dIn, dSae)
                    .addF32("b_enc", new float[dSae], dSae)
                    .addF32("W_dec", wDec, dSae, dIn)
                    .addF32("b_dec", new float[dIn], dIn)
                    .write(dir.resolve("sae_weights.safetensors"));
            Map<String, Object> cfg = new LinkedHashMap<>();
            cfg.put("architecture", "standard");
            cfg.put("d_in", dIn);
            cfg.put("d_sae", dSae);
            cfg.put("apply_b_dec_to_input", true);
            cfg.put("normalize_activations", "none");
            cfg.put("metadata", Map.of("hook_name", hook));
            new ObjectMapper().writeValue(dir.resolve("cfg.json").toFile(), cfg);
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Exact reconstruction: features relu(x), relu(-x); decoder [I; -I]. */
    public static Path identity(Path dir, String hook, int d) {
        float[] wEnc = new float[d * 2 * d];
        float[] wDec = new float[2 * d * d];
        for (int i = 0; i < d; i++) {
            wEnc[i * 2 * d + i] = 1;
            wEnc[i * 2 * d + d + i] = -1;
            wDec[i * d + i] = 1;
            wDec[(d + i) * d + i] = -1;
        }
        return write(dir, hook, d, 2 * d, wEnc, wDec);
    }

    /** Reconstructs everything as zero. */
    public static Path zero(Path dir, String hook, int d) {
        return write(dir, hook, d, 4, new float[d * 4], new float[4 * d]);
    }
}
