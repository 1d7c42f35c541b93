package training.export;

import activations.safetensors.SafeTensors;
import activations.safetensors.SafeTensorsWriter;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import training.clt.CrossLayerTranscoder;
import training.sae.SaeConfig;
import training.sae.SparseAutoencoder;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes transcoders in the layout safety-research/circuit-tracer loads (fp32):
 * <ul>
 *   <li>Cross-layer transcoder ({@code model_kind: cross_layer_transcoder}): per layer i,
 *   {@code W_enc_i.safetensors} with {@code W_enc_i} [F, d], {@code b_enc_i} [F], {@code b_dec_i} [d]
 *   (bias of TARGET layer i) and {@code threshold_i} [F] (real threshold, strict {@code >}), and
 *   {@code W_dec_i.safetensors} with {@code W_dec_i} [F, L - i, d] (source i to targets i..L-1).</li>
 *   <li>Per-layer transcoders ({@code model_kind: transcoder_set}): {@code layer_i.safetensors} with
 *   {@code W_enc} [F, d_in], {@code W_dec} [F, d_out], {@code b_enc}, {@code b_dec}, optional
 *   {@code activation_function.threshold} [F] (JumpReLU, BatchTopK-as-JumpReLU) and {@code W_skip}
 *   [d_out, d_in] (applied as {@code x W_skip^T}).</li>
 * </ul>
 * {@code config.yaml} holds {@code model_kind}, {@code feature_input_hook} and
 * {@code feature_output_hook} as circuit-tracer's hook suffixes (the {@code blocks.N.} prefix
 * dropped, e.g. {@code ln2.hook_normalized}, {@code hook_mlp_out}), plus sizes for readers.
 *
 * <p>Training scales are folded in so the files work on RAW activations: with input scale s_l and
 * target scale u_t, {@code W_enc' = s_l W_enc}, {@code W_dec'[l -> t] = W_dec / u_t},
 * {@code b_dec'_t = b_dec_t / u_t}, {@code W_skip' = W_skip s / u}; b_enc and thresholds unchanged.
 * Every file is written to a temporary name and renamed; config.yaml comes last.
 */
public final class CircuitTracerExporter {

    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());

    /** Values per streamed part of a W_dec file; package-private so tests can make it tiny. */
    static long exportPartValues = 1L << 26;

    private CircuitTracerExporter() {
    }

    /** Exports a trained CLT; scales are per layer (inputs, targets) as the trainer reports them. */
    public static void exportCrossLayer(CrossLayerTranscoder clt, double[] inputScales, double[] targetScales,
                                        String featureInputHook, String featureOutputHook, Path directory) {
        int layers = clt.layers();
        int d = clt.dModel();
        int features = clt.featuresPerLayer();
        checkScales(inputScales, layers, "input");
        checkScales(targetScales, layers, "target");
        try {
            Files.createDirectories(directory);
            for (int i = 0; i < layers; i++) {
                new SafeTensorsWriter().metadata("format", "pt")
                        .addF32Parts("W_enc_" + i, transposedInParts(clt.wEnc(i), inputScales[i]), features, d)
                        .addF32("b_enc_" + i, SaeLensExporter.scaled(clt.bEnc(i), 1), features)
                        .addF32("b_dec_" + i, SaeLensExporter.scaled(clt.bDec(i), 1 / targetScales[i]), d)
                        .addF32("threshold_" + i, SaeLensExporter.scaled(clt.threshold(i), 1), features)
                        .write(directory.resolve("W_enc_" + i + ".safetensors"));
                int targets = layers - i;
                int source = i;
                // [F, L - i, d] can pass 2^31 values (Gemma-2-2B shape: 981 M for layer 0 at F 16384):
                // streamed a block of feature rows at a time.
                int rowsPerPart = (int) Math.max(1, Math.min(features, exportPartValues / ((long) targets * d)));
                new SafeTensorsWriter().metadata("format", "pt").addF32Parts("W_dec_" + i, sink -> {
                    for (int f0 = 0; f0 < features; f0 += rowsPerPart) {
                        int rows = Math.min(rowsPerPart, features - f0);
                        float[] part = new float[rows * targets * d];
                        for (int k = 0; k < targets; k++) {
                            INDArray block = clt.wDec(source, source + k)
                                    .get(NDArrayIndex.interval(f0, f0 + rows), NDArrayIndex.all());
                            float[] values = SaeLensExporter.scaled(block, 1 / targetScales[source + k]);
                            for (int f = 0; f < rows; f++) {
                                System.arraycopy(values, f * d, part, (f * targets + k) * d, d);
                            }
                        }
                        sink.accept(part);
                    }
                }, features, targets, d).write(directory.resolve("W_dec_" + i + ".safetensors"));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the circuit-tracer export in " + directory + ": " + e.getMessage(), e);
        }
        Map<String, Object> config = new LinkedHashMap<>();
        config.put("model_kind", "cross_layer_transcoder");
        config.put("feature_input_hook", suffix(featureInputHook));
        config.put("feature_output_hook", suffix(featureOutputHook));
        config.put("n_layers", layers);
        config.put("d_model", d);
        config.put("d_transcoder", features);
        config.put("activation", "jump_relu");
        writeConfig(directory, config);
    }

    /** Exports one per-layer transcoder per layer (index = layer) as a circuit-tracer transcoder set. */
    public static void exportTranscoderSet(List<SparseAutoencoder> transcoders, double[] inputScales, double[] targetScales,
                                           String featureInputHook, String featureOutputHook, Path directory) {
        int layers = transcoders.size();
        if (layers == 0) {
            throw new IllegalArgumentException("a transcoder set needs at least one transcoder (one per layer from 0)");
        }
        checkScales(inputScales, layers, "input");
        checkScales(targetScales, layers, "target");
        SparseAutoencoder first = transcoders.get(0);
        String activation = null;
        try {
            Files.createDirectories(directory);
            for (int i = 0; i < layers; i++) {
                SparseAutoencoder t = transcoders.get(i);
                if (!t.isTranscoder()) {
                    throw new IllegalArgumentException("layer " + i + " holds an SAE, not a transcoder; train it with d_out set");
                }
                if (t.dSae() != first.dSae() || t.config().architecture() != first.config().architecture()) {
                    throw new IllegalArgumentException("layer " + i + "'s transcoder differs in size or architecture from layer 0's;"
                            + " circuit-tracer needs one d_transcoder and activation for the set");
                }
                int dIn = t.dIn();
                int dOut = t.dOut();
                int dSae = t.dSae();
                SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", "pt")
                        .addF32("W_enc", transposed(t.wEnc(), inputScales[i]), dSae, dIn)
                        .addF32("W_dec", SaeLensExporter.scaled(t.wDec(), 1 / targetScales[i]), dSae, dOut)
                        .addF32("b_enc", SaeLensExporter.scaled(t.bEnc(), 1), dSae)
                        .addF32("b_dec", SaeLensExporter.scaled(t.bDec(), 1 / targetScales[i]), dOut);
                INDArray threshold = t.exportThreshold();
                if (threshold != null) {
                    w.addF32("activation_function.threshold", SaeLensExporter.scaled(threshold, 1), dSae);
                }
                if (t.wSkip() != null) {
                    w.addF32("W_skip", transposed(t.wSkip(), inputScales[i] / targetScales[i]), dOut, dIn);
                }
                w.write(directory.resolve("layer_" + i + ".safetensors"));
                activation = threshold != null ? null : t.config().architecture() == SaeConfig.Architecture.TOPK ? "topk" : "relu";
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the circuit-tracer export in " + directory + ": " + e.getMessage(), e);
        }
        Map<String, Object> config = new LinkedHashMap<>();
        config.put("model_kind", "transcoder_set");
        config.put("feature_input_hook", suffix(featureInputHook));
        config.put("feature_output_hook", suffix(featureOutputHook));
        // circuit-tracer reads JumpReLU thresholds from the weights when no activation is named.
        if (activation != null) {
            config.put("activation", activation);
            if (activation.equals("topk")) {
                config.put("k", first.config().k());
            }
        }
        config.put("n_layers", layers);
        config.put("d_transcoder", first.dSae());
        writeConfig(directory, config);
    }

    /**
     * A circuit-tracer transcoder set from SAELens transcoder directories, one per layer in layer
     * order (as `spindle train-sae --hook-in/--hook-out` writes them). Their scales are already
     * folded into the weights, so this is a re-layout: W_enc is transposed to [F, d].
     */
    public static void transcoderSetFromSaeLens(List<Path> saeLensDirectories, Path directory) {
        if (saeLensDirectories.isEmpty()) {
            throw new IllegalArgumentException("give one SAELens transcoder directory per layer, from layer 0");
        }
        com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
        String architecture = null;
        int dSae = -1;
        int k = 0;
        String inputHook = null;
        String outputHook = null;
        try {
            Files.createDirectories(directory);
            for (int i = 0; i < saeLensDirectories.size(); i++) {
                Path source = saeLensDirectories.get(i);
                com.fasterxml.jackson.databind.JsonNode cfg = json.readTree(source.resolve("cfg.json").toFile());
                com.fasterxml.jackson.databind.JsonNode meta = cfg.path("metadata");
                if (!cfg.has("d_out") || meta.path("hook_name_out").isMissingNode()) {
                    throw new IllegalArgumentException(source + " is an SAE, not a transcoder (no d_out / hook_name_out); "
                            + "train it with --hook-in and --hook-out");
                }
                String hookIn = meta.path("hook_name").asText();
                if (!hookIn.startsWith("blocks." + i + ".")) {
                    throw new IllegalArgumentException(source + " reads " + hookIn + " but is listed for layer " + i
                            + "; list the transcoders in layer order from layer 0");
                }
                String arch = cfg.path("architecture").asText();
                int width = cfg.path("d_sae").asInt();
                if (architecture == null) {
                    architecture = arch;
                    dSae = width;
                    k = cfg.path("k").asInt(0);
                    inputHook = suffix(hookIn);
                    outputHook = suffix(meta.path("hook_name_out").asText());
                } else if (!architecture.equals(arch) || dSae != width || !inputHook.equals(suffix(hookIn))) {
                    throw new IllegalArgumentException(source + " differs from layer 0's transcoder (architecture, d_sae or hooks);"
                            + " circuit-tracer needs one d_transcoder, activation and hook pair for the set");
                }
                try (SafeTensors weights = SafeTensors.open(source.resolve("sae_weights.safetensors"))) {
                    long[] encShape = weights.info("W_enc").shape();
                    int dIn = (int) encShape[0];
                    int dOut = cfg.path("d_out").asInt();
                    SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", "pt")
                            .addF32("W_enc", transposed(Nd4j.createFromArray(weights.floats("W_enc")).reshape(dIn, width), 1), width, dIn)
                            .addF32("W_dec", weights.floats("W_dec"), width, dOut)
                            .addF32("b_enc", weights.floats("b_enc"), width)
                            .addF32("b_dec", weights.floats("b_dec"), dOut);
                    if (weights.contains("threshold")) {
                        w.addF32("activation_function.threshold", weights.floats("threshold"), width);
                    }
                    if (weights.contains("W_skip")) {
                        w.addF32("W_skip", weights.floats("W_skip"), dOut, dIn);
                    }
                    w.write(directory.resolve("layer_" + i + ".safetensors"));
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot convert the transcoders into " + directory + ": " + e.getMessage(), e);
        }
        Map<String, Object> config = new LinkedHashMap<>();
        config.put("model_kind", "transcoder_set");
        config.put("feature_input_hook", inputHook);
        config.put("feature_output_hook", outputHook);
        // circuit-tracer reads JumpReLU thresholds from the weights when no activation is named.
        if (!architecture.contains("jumprelu")) {
            config.put("activation", architecture.startsWith("topk") ? "topk" : "relu");
            if (architecture.startsWith("topk")) {
                config.put("k", k);
            }
        }
        config.put("n_layers", saeLensDirectories.size());
        config.put("d_transcoder", dSae);
        writeConfig(directory, config);
    }

    /** {@code blocks.3.ln2.hook_normalized} -> {@code ln2.hook_normalized}; suffixes pass through. */
    static String suffix(String hook) {
        if (hook == null || hook.isBlank()) {
            throw new IllegalArgumentException("feature input/output hook is missing; pass e.g. ln2.hook_normalized and hook_mlp_out");
        }
        return hook.replaceFirst("^blocks\\.\\d+\\.", "");
    }

    private static void writeConfig(Path directory, Map<String, Object> config) {
        Path temp = directory.resolve(".config.yaml.tmp-" + ProcessHandle.current().pid());
        try {
            YAML.writeValue(temp.toFile(), config);
            Files.move(temp, directory.resolve("config.yaml"), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + directory.resolve("config.yaml") + ": " + e.getMessage(), e);
        }
    }

    private static void checkScales(double[] scales, int layers, String side) {
        if (scales == null || scales.length != layers) {
            throw new IllegalArgumentException("need one " + side + " scale per layer (" + layers + "); pass 1s if the activations were not scaled");
        }
        for (double s : scales) {
            if (!(s > 0) || !Double.isFinite(s)) {
                throw new IllegalArgumentException(side + " normalization scale " + s + " must be a positive number");
            }
        }
    }

    /** The transpose of a [r, c] matrix as row-major [c, r] floats, times factor. */
    /** {@code a^T * factor} for a [d, F] encoder, a block of feature rows at a time. */
    private static SafeTensorsWriter.FloatParts transposedInParts(INDArray a, double factor) {
        long d = a.size(0);
        int features = (int) a.size(1);
        int rowsPerPart = (int) Math.max(1, Math.min(features, exportPartValues / d));
        return sink -> {
            for (int f0 = 0; f0 < features; f0 += rowsPerPart) {
                int rows = Math.min(rowsPerPart, features - f0);
                sink.accept(transposed(a.get(NDArrayIndex.all(), NDArrayIndex.interval(f0, f0 + rows)), factor));
            }
        };
    }

    private static float[] transposed(INDArray a, double factor) {
        return SaeLensExporter.scaled(a.transpose(), factor);
    }
}
