package training.export;

import activations.safetensors.SafeTensors;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.nd4j.linalg.api.buffer.DataType;
import training.sae.TopKSelection;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastSubOp;
import org.nd4j.linalg.api.ops.impl.scalar.Step;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * A SAELens-format SAE directory read back (ours or SAELens's own): architectures standard (ReLU),
 * jumprelu, topk and gated ({@code H(z) * ReLU((z - b_gate) exp(r_mag) + b_mag)} with z from b_gate), fp32 in memory whatever the stored float type. Encodes raw activations as
 * SAELens does: {@code z = (x - b_dec) W_enc + b_enc} (without the b_dec subtraction if
 * apply_b_dec_to_input is false), then ReLU, {@code z * (z > threshold)} or top-k then ReLU.
 */
public final class SaeLensDictionary {

    private final Path directory;
    private final String architecture;
    private final int dIn;
    private final int dSae;
    private final int dOut;
    private final int k;
    private final boolean applyBDecToInput;
    private final JsonNode cfg;
    private final INDArray wEnc;
    private final INDArray bEnc;
    private final INDArray wDec;
    private final INDArray bDec;
    private final INDArray threshold;
    private final INDArray wSkip;
    /** Gated only: r_mag and b_mag [d_sae] (b_enc holds b_gate); null otherwise. */
    private INDArray rMag;
    private INDArray bMag;

    private SaeLensDictionary(Path directory, JsonNode cfg, String architecture, int dIn, int dSae, int dOut, int k,
                              boolean applyBDecToInput, INDArray wEnc, INDArray bEnc, INDArray wDec, INDArray bDec,
                              INDArray threshold, INDArray wSkip) {
        this.directory = directory;
        this.cfg = cfg;
        this.architecture = architecture;
        this.dIn = dIn;
        this.dSae = dSae;
        this.dOut = dOut;
        this.k = k;
        this.applyBDecToInput = applyBDecToInput;
        this.wEnc = wEnc;
        this.bEnc = bEnc;
        this.wDec = wDec;
        this.bDec = bDec;
        this.threshold = threshold;
        this.wSkip = wSkip;
    }

    public static SaeLensDictionary load(Path directory) {
        Path cfgFile = directory.resolve("cfg.json");
        if (!Files.isRegularFile(cfgFile)) {
            throw new IllegalArgumentException(directory + " has no cfg.json; point at a SAELens SAE directory");
        }
        JsonNode cfg;
        try {
            cfg = new ObjectMapper().readTree(cfgFile.toFile());
        } catch (IOException e) {
            throw new IllegalArgumentException(cfgFile + " is not valid JSON (" + e.getMessage() + ")");
        }
        String declared = cfg.path("architecture").asText("standard");
        if (!Arrays.asList("standard", "jumprelu", "topk", "gated", "transcoder", "skip_transcoder", "jumprelu_transcoder",
                "jumprelu_skip_transcoder").contains(declared)) {
            throw new IllegalArgumentException(cfgFile + ": architecture '" + declared + "' is not supported; Spindle reads standard,"
                    + " jumprelu, topk and gated SAEs and (skip/jumprelu) transcoders");
        }
        boolean transcoder = declared.endsWith("transcoder") || cfg.has("d_out");
        boolean skip = declared.contains("skip");
        // The activation behind the SAELens name.
        String architecture = declared.startsWith("jumprelu") ? "jumprelu" : declared.equals("topk") || declared.equals("gated")
                ? declared : "standard";
        int dIn = required(cfg, "d_in", cfgFile);
        int dSae = required(cfg, "d_sae", cfgFile);
        int dOut = cfg.has("d_out") ? required(cfg, "d_out", cfgFile) : dIn;
        String normalize = cfg.path("normalize_activations").asText("none");
        if (!normalize.equals("none")) {
            throw new IllegalArgumentException(cfgFile + ": normalize_activations '" + normalize
                    + "' needs a dataset scaling factor Spindle does not apply; fold it into the weights and set it to none");
        }
        int k = architecture.equals("topk") ? required(cfg, "k", cfgFile) : 0;
        boolean applyBDec = cfg.path("apply_b_dec_to_input").asBoolean(!transcoder);
        Path weights = directory.resolve("sae_weights.safetensors");
        try (SafeTensors st = SafeTensors.open(weights)) {
            INDArray wEnc = tensor(st, "W_enc", dIn, dSae);
            INDArray bEnc = tensor(st, architecture.equals("gated") ? "b_gate" : "b_enc", dSae);
            INDArray wDec = tensor(st, "W_dec", dSae, dOut);
            INDArray bDec = tensor(st, "b_dec", dOut);
            INDArray threshold = architecture.equals("jumprelu") ? tensor(st, "threshold", dSae) : null;
            // SAELens stores W_skip as [d_out, d_in] and applies x W_skip^T; keep it as [d_in, d_out].
            INDArray wSkip = skip || st.contains("W_skip") ? tensor(st, "W_skip", dOut, dIn).transpose().dup('c') : null;
            SaeLensDictionary dictionary = new SaeLensDictionary(directory, cfg, architecture, dIn, dSae, dOut, k, applyBDec, wEnc,
                    bEnc, wDec, bDec, threshold, wSkip);
            if (architecture.equals("gated")) {
                dictionary.rMag = tensor(st, "r_mag", dSae);
                dictionary.bMag = tensor(st, "b_mag", dSae);
            }
            return dictionary;
        }
    }

    private static int required(JsonNode cfg, String key, Path file) {
        JsonNode v = cfg.get(key);
        if (v == null || !v.canConvertToInt() || v.asInt() < 1) {
            throw new IllegalArgumentException(file + ": '" + key + "' is missing or not a positive integer");
        }
        return v.asInt();
    }

    private static INDArray tensor(SafeTensors st, String name, long... shape) {
        if (!st.contains(name)) {
            throw new IllegalArgumentException(st.file() + ": tensor '" + name + "' is missing; the SAE directory is incomplete");
        }
        SafeTensors.TensorInfo info = st.info(name);
        if (!Arrays.equals(info.shape(), shape)) {
            throw new IllegalArgumentException(st.file() + ": tensor '" + name + "' has shape " + info.shapeString()
                    + " but cfg.json implies " + Arrays.toString(shape));
        }
        return Nd4j.createFromArray(st.floats(name)).reshape(shape);
    }

    /** Feature activations [n, d_sae] of raw activations [n, d_in]. */
    public INDArray encode(INDArray x) {
        if (x.rank() != 2 || x.size(1) != dIn) {
            throw new IllegalArgumentException("input has shape " + Arrays.toString(x.shape()) + "; expected [n, " + dIn + "]");
        }
        INDArray input = x.castTo(DataType.FLOAT);
        INDArray z = (applyBDecToInput ? input.subRowVector(bDec) : input).mmul(wEnc).addiRowVector(bEnc);
        switch (architecture) {
            case "jumprelu" -> {
                INDArray keep = Nd4j.create(DataType.FLOAT, z.shape());
                Nd4j.exec(new BroadcastSubOp(z, threshold, keep, 1));
                Nd4j.exec(new Step(keep, keep, 0.0));
                z.muli(keep);
            }
            case "topk" -> z = TopKSelection.keepTopK(z, k);
            case "gated" -> {
                // magnitude = ReLU((z - b_gate) exp(r_mag) + b_mag), kept where the gate z > 0.
                INDArray magnitude = z.subRowVector(bEnc).muliRowVector(Transforms.exp(rMag, true)).addiRowVector(bMag);
                Transforms.relu(magnitude, false);
                Nd4j.exec(new Step(z, z, 0.0));
                z.muli(magnitude);
            }
            default -> Transforms.relu(z, false);
        }
        return z;
    }

    /** Reconstruction [n, d_out] of feature activations [n, d_sae] (without a transcoder's skip path). */
    public INDArray decode(INDArray features) {
        return features.castTo(DataType.FLOAT).mmul(wDec).addiRowVector(bDec);
    }

    /** Prediction [n, d_out] from feature activations and the raw inputs [n, d_in] they came from (adds x W_skip). */
    public INDArray decode(INDArray features, INDArray x) {
        INDArray out = decode(features);
        return wSkip == null ? out : out.addi(x.castTo(DataType.FLOAT).mmul(wSkip));
    }

    public Path directory() { return directory; }
    public String architecture() { return architecture; }
    public int dIn() { return dIn; }
    public int dSae() { return dSae; }
    /** Target width (d_in for an SAE). */
    public int dOut() { return dOut; }
    /** Skip weights [d_in, d_out] (transposed from SAELens's [d_out, d_in]), or null. */
    public INDArray wSkip() { return wSkip; }
    public int k() { return k; }
    public boolean applyBDecToInput() { return applyBDecToInput; }
    /** cfg.json as read, including {@code metadata}. */
    public JsonNode cfg() { return cfg; }
    public INDArray wEnc() { return wEnc; }
    public INDArray bEnc() { return bEnc; }
    public INDArray wDec() { return wDec; }
    public INDArray bDec() { return bDec; }
    /** Thresholds [d_sae] for jumprelu, else null. */
    public INDArray threshold() { return threshold; }
}
