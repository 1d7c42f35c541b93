package training.export;

import activations.safetensors.SafeTensorsWriter;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import org.nd4j.linalg.api.ndarray.INDArray;
import training.sae.SparseAutoencoder;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Writes a trained SAE as a SAELens 6 directory: {@code cfg.json}, {@code sae_weights.safetensors}
 * (W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in], b_dec, plus {@code threshold} for JumpReLU and
 * BatchTopK/Matryoshka-as-JumpReLU; gated: b_gate, r_mag, b_mag instead of b_enc) and, given feature densities, {@code sparsity.safetensors} (log10 density).
 *
 * <p>The SAE was trained on inputs scaled by s; the scale is folded into the weights so the export
 * works on raw activations: with x_n = s x, {@code W_enc' = s W_enc}, {@code b_dec' = b_dec / s},
 * {@code W_dec' = W_dec / s} (b_enc and thresholds unchanged), hence {@code normalize_activations = none}.
 *
 * <p>Transcoders are written in SAELens's transcoder layout: {@code d_out}, W_dec [d_sae, d_out],
 * b_dec [d_out], {@code apply_b_dec_to_input = false}, {@code metadata.hook_name_out}, architecture
 * {@code transcoder}, {@code skip_transcoder}, {@code jumprelu_transcoder} or
 * {@code jumprelu_skip_transcoder} (TopK transcoders keep {@code topk} with {@code d_out}), and
 * {@code W_skip} as SAELens stores it, [d_out, d_in] (applied as {@code x W_skip^T}). Input scale
 * s_x and target scale s_y fold as {@code W_enc' = s_x W_enc}, {@code W_dec' = W_dec / s_y},
 * {@code b_dec' = b_dec / s_y}, {@code W_skip' = W_skip s_x / s_y}.
 */
public final class SaeLensExporter {

    /** The SAELens version whose format this writes. */
    public static final String SAE_LENS_VERSION = "6.0.0";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private SaeLensExporter() {
    }

    /**
     * @param normalizationScale the s the SAE's inputs were multiplied by during training (1 if none)
     * @param featureDensity per-feature firing frequency in [0, 1], or null to skip sparsity.safetensors
     */
    public static void export(SparseAutoencoder sae, double normalizationScale, double[] featureDensity,
                              SaeLensMetadata metadata, Path directory) {
        if (sae.isTranscoder()) {
            throw new IllegalArgumentException("a transcoder export needs the target's scale and hook; use the transcoder overload");
        }
        export(sae, normalizationScale, normalizationScale, featureDensity, metadata, null, directory);
    }

    /**
     * Transcoder (or SAE, with equal scales and a null {@code hookNameOut}) export.
     *
     * @param targetScale the factor the targets were multiplied by during training
     * @param hookNameOut the target hook (e.g. {@code blocks.3.hook_mlp_out}); required for transcoders
     */
    public static void export(SparseAutoencoder sae, double normalizationScale, double targetScale, double[] featureDensity,
                              SaeLensMetadata metadata, String hookNameOut, Path directory) {
        if (!(normalizationScale > 0) || !Double.isFinite(normalizationScale)) {
            throw new IllegalArgumentException("normalization scale " + normalizationScale + " must be a positive number (1 if inputs were not scaled)");
        }
        if (!(targetScale > 0) || !Double.isFinite(targetScale)) {
            throw new IllegalArgumentException("target normalization scale " + targetScale + " must be a positive number (1 if targets were not scaled)");
        }
        if (sae.isTranscoder() && (hookNameOut == null || hookNameOut.isBlank())) {
            throw new IllegalArgumentException("a transcoder export needs the target hook name (metadata.hook_name_out)");
        }
        int dIn = sae.dIn();
        int dSae = sae.dSae();
        int dOut = sae.dOut();
        if (featureDensity != null && featureDensity.length != dSae) {
            throw new IllegalArgumentException("feature density has " + featureDensity.length + " entries, not d_sae = " + dSae);
        }
        float s = (float) normalizationScale;
        float[] wEnc = scaled(sae.wEnc(), normalizationScale);
        float[] bEnc = scaled(sae.bEnc(), 1);
        float[] wDec = scaled(sae.wDec(), 1 / targetScale);
        float[] bDec = scaled(sae.bDec(), 1 / targetScale);
        SafeTensorsWriter weights = new SafeTensorsWriter()
                .metadata("format", "pt")
                .addF32("W_enc", wEnc, dIn, dSae);
        if (sae instanceof training.sae.GatedSae gated) {
            // SAELens's gated layout: b_gate instead of b_enc, plus r_mag and b_mag (all unchanged by the input scale).
            weights.addF32("b_gate", bEnc, dSae).addF32("r_mag", scaled(gated.rMag(), 1), dSae)
                    .addF32("b_mag", scaled(gated.bMag(), 1), dSae);
        } else {
            weights.addF32("b_enc", bEnc, dSae);
        }
        weights.addF32("W_dec", wDec, dSae, dOut)
                .addF32("b_dec", bDec, dOut);
        if (sae.wSkip() != null) {
            weights.addF32("W_skip", scaled(sae.wSkip().transpose(), normalizationScale / targetScale), dOut, dIn);
        }
        INDArray threshold = sae.exportThreshold();
        if (threshold != null) {
            weights.addF32("threshold", scaled(threshold, 1), dSae);
        }

        Map<String, Object> cfg = new LinkedHashMap<>();
        cfg.put("architecture", architecture(sae));
        cfg.put("d_in", dIn);
        cfg.put("d_sae", dSae);
        if (sae.isTranscoder()) {
            cfg.put("d_out", dOut);
        }
        cfg.put("dtype", "float32");
        cfg.put("device", "cpu");
        cfg.put("apply_b_dec_to_input", !sae.isTranscoder());
        cfg.put("normalize_activations", "none");
        cfg.put("reshape_activations", "none");
        if (sae.exportArchitecture().equals("topk")) {
            cfg.put("k", sae.config().k());
        }
        Map<String, Object> meta = new LinkedHashMap<>();
        meta.put("model_name", metadata.modelName());
        meta.put("hook_name", metadata.hookName());
        if (sae.isTranscoder()) {
            meta.put("hook_name_out", hookNameOut);
        }
        meta.put("hook_head_index", metadata.hookHeadIndex());
        meta.put("context_size", metadata.contextSize());
        meta.put("prepend_bos", metadata.prependBos());
        meta.put("dataset_path", metadata.datasetPath());
        meta.put("sae_lens_version", SAE_LENS_VERSION);
        meta.put("sae_lens_training_version", SAE_LENS_VERSION);
        meta.put("trained_architecture", sae.config().architecture().name().toLowerCase(java.util.Locale.ROOT));
        meta.put("normalization_scale_folded", normalizationScale);
        if (sae.isTranscoder()) {
            meta.put("target_normalization_scale_folded", targetScale);
        }
        cfg.put("metadata", meta);

        try {
            Files.createDirectories(directory);
            weights.write(directory.resolve("sae_weights.safetensors"));
            if (featureDensity != null) {
                float[] log10 = new float[dSae];
                for (int i = 0; i < dSae; i++) {
                    log10[i] = (float) Math.log10(featureDensity[i] + 1e-10);
                }
                new SafeTensorsWriter().metadata("format", "pt").addF32("sparsity", log10, dSae)
                        .write(directory.resolve("sparsity.safetensors"));
            }
            Path temp = directory.resolve(".cfg.json.tmp-" + ProcessHandle.current().pid());
            JSON.writeValue(temp.toFile(), cfg);
            Files.move(temp, directory.resolve("cfg.json"), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the SAELens export in " + directory + ": " + e.getMessage(), e);
        }
    }

    /** SAELens's architecture name, with its transcoder variants. */
    static String architecture(SparseAutoencoder sae) {
        String base = sae.exportArchitecture();
        if (!sae.isTranscoder() || base.equals("topk")) {
            return base;
        }
        String skip = sae.wSkip() != null ? "skip_" : "";
        return base.equals("jumprelu") ? "jumprelu_" + skip + "transcoder" : skip + "transcoder";
    }

    /** A tensor as row-major floats times {@code factor} (undoing the training normalization). */
    static float[] scaled(INDArray a, double factor) {
        float[] v = a.dup('c').reshape(a.length()).toFloatVector();
        if (factor != 1) {
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) (v[i] * factor);
            }
        }
        return v;
    }
}
