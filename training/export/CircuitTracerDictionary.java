package training.export;

import activations.safetensors.SafeTensors;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import org.nd4j.linalg.api.buffer.DataType;
import training.sae.TopKSelection;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastSubOp;
import org.nd4j.linalg.api.ops.impl.scalar.Step;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * A circuit-tracer transcoder directory read back from its safetensors files and config.yaml
 * alone: a cross-layer transcoder ({@code W_enc_i}/{@code W_dec_i} files) or a per-layer transcoder
 * set ({@code layer_i.safetensors}). Works on RAW activations as circuit-tracer does:
 * {@code a_l = act(x_l W_enc_l^T + b_enc_l)} (JumpReLU {@code z * (z > threshold)}, else ReLU, or
 * top-k for a set configured so), and the prediction of layer t is
 * {@code sum_{l <= t} a_l W_dec[l -> t] + b_dec_t} (a set: l = t only, plus {@code x_t W_skip^T}).
 */
public final class CircuitTracerDictionary implements training.clt.MlpTranscoder {

    private final String kind;
    private final String featureInputHook;
    private final String featureOutputHook;
    private final int layers;
    private final int dModel;
    private final int features;
    private final INDArray[] wEncT; // [d, F] per layer, i.e. W_enc_i transposed for x @ W
    private final INDArray[] bEnc;
    private final INDArray[] bDec;
    private final INDArray[] threshold; // null entries: ReLU
    private final INDArray[][] wDec; // [source][target - source] -> [F, d]
    private final INDArray[] wSkipT; // [d_in, d_out] or null
    private final int topK;

    private CircuitTracerDictionary(String kind, String in, String out, int layers, int dModel, int features, INDArray[] wEncT,
                                    INDArray[] bEnc, INDArray[] bDec, INDArray[] threshold, INDArray[][] wDec, INDArray[] wSkipT, int topK) {
        this.kind = kind;
        this.featureInputHook = in;
        this.featureOutputHook = out;
        this.layers = layers;
        this.dModel = dModel;
        this.features = features;
        this.wEncT = wEncT;
        this.bEnc = bEnc;
        this.bDec = bDec;
        this.threshold = threshold;
        this.wDec = wDec;
        this.wSkipT = wSkipT;
        this.topK = topK;
    }

    public static CircuitTracerDictionary load(Path directory) {
        Path configFile = directory.resolve("config.yaml");
        if (!Files.isRegularFile(configFile)) {
            throw new IllegalArgumentException(directory + " has no config.yaml; point at a circuit-tracer transcoder directory");
        }
        JsonNode config;
        try {
            config = new ObjectMapper(new YAMLFactory()).readTree(configFile.toFile());
        } catch (IOException e) {
            throw new IllegalArgumentException(configFile + " is not valid YAML (" + e.getMessage() + ")");
        }
        String kind = config.path("model_kind").asText("");
        String in = config.path("feature_input_hook").asText("hook_resid_mid");
        String out = config.path("feature_output_hook").asText("hook_mlp_out");
        return switch (kind) {
            case "cross_layer_transcoder" -> loadCrossLayer(directory, in, out);
            case "transcoder_set" -> loadSet(directory, config, in, out);
            default -> throw new IllegalArgumentException(configFile + ": model_kind '" + kind
                    + "' is not supported; use cross_layer_transcoder or transcoder_set");
        };
    }

    private static int countFiles(Path directory, String prefix) {
        int n = 0;
        while (Files.isRegularFile(directory.resolve(prefix + n + ".safetensors"))) {
            n++;
        }
        if (n == 0) {
            throw new IllegalArgumentException(directory + " has no " + prefix + "0.safetensors; the export is incomplete");
        }
        return n;
    }

    private static CircuitTracerDictionary loadCrossLayer(Path directory, String in, String out) {
        int layers = countFiles(directory, "W_enc_");
        INDArray[] wEncT = new INDArray[layers];
        INDArray[] bEnc = new INDArray[layers];
        INDArray[] bDec = new INDArray[layers];
        INDArray[] threshold = new INDArray[layers];
        INDArray[][] wDec = new INDArray[layers][];
        int d = -1;
        int features = -1;
        for (int i = 0; i < layers; i++) {
            try (SafeTensors st = SafeTensors.open(directory.resolve("W_enc_" + i + ".safetensors"))) {
                long[] shape = shape(st, "W_enc_" + i, 2);
                if (i == 0) {
                    features = (int) shape[0];
                    d = (int) shape[1];
                }
                wEncT[i] = tensor(st, "W_enc_" + i, features, d).transpose().dup('c');
                bEnc[i] = tensor(st, "b_enc_" + i, features);
                bDec[i] = tensor(st, "b_dec_" + i, d);
                threshold[i] = st.contains("threshold_" + i) ? tensor(st, "threshold_" + i, features) : null;
            }
            Path decFile = directory.resolve("W_dec_" + i + ".safetensors");
            if (!Files.isRegularFile(decFile)) {
                throw new IllegalArgumentException(directory + " has W_enc_" + i + " but no W_dec_" + i + ".safetensors; the export is incomplete");
            }
            try (SafeTensors st = SafeTensors.open(decFile)) {
                INDArray all = tensor(st, "W_dec_" + i, features, layers - i, d);
                wDec[i] = new INDArray[layers - i];
                for (int k = 0; k < layers - i; k++) {
                    wDec[i][k] = all.get(NDArrayIndex.all(), NDArrayIndex.point(k), NDArrayIndex.all()).dup('c');
                }
            }
        }
        return new CircuitTracerDictionary("cross_layer_transcoder", in, out, layers, d, features, wEncT, bEnc, bDec, threshold,
                wDec, new INDArray[layers], 0);
    }

    private static CircuitTracerDictionary loadSet(Path directory, JsonNode config, String in, String out) {
        int layers = countFiles(directory, "layer_");
        String activation = config.path("activation").asText("");
        int k = activation.equals("topk") ? config.path("k").asInt(0) : 0;
        if (activation.equals("topk") && k < 1) {
            throw new IllegalArgumentException(directory.resolve("config.yaml") + ": activation topk needs a positive k");
        }
        INDArray[] wEncT = new INDArray[layers];
        INDArray[] bEnc = new INDArray[layers];
        INDArray[] bDec = new INDArray[layers];
        INDArray[] threshold = new INDArray[layers];
        INDArray[][] wDec = new INDArray[layers][];
        INDArray[] wSkipT = new INDArray[layers];
        int d = -1;
        int features = -1;
        for (int i = 0; i < layers; i++) {
            try (SafeTensors st = SafeTensors.open(directory.resolve("layer_" + i + ".safetensors"))) {
                long[] enc = shape(st, "W_enc", 2);
                long[] dec = shape(st, "W_dec", 2);
                if (i == 0) {
                    features = (int) enc[0];
                    d = (int) enc[1];
                }
                int dOut = (int) dec[1];
                wEncT[i] = tensor(st, "W_enc", features, d).transpose().dup('c');
                wDec[i] = new INDArray[] {tensor(st, "W_dec", features, dOut)};
                bEnc[i] = tensor(st, "b_enc", features);
                bDec[i] = tensor(st, "b_dec", dOut);
                threshold[i] = !activation.equals("relu") && !activation.equals("topk") && st.contains("activation_function.threshold")
                        ? tensor(st, "activation_function.threshold", features) : null;
                wSkipT[i] = st.contains("W_skip") ? tensor(st, "W_skip", dOut, d).transpose().dup('c') : null;
            }
        }
        return new CircuitTracerDictionary("transcoder_set", in, out, layers, d, features, wEncT, bEnc, bDec, threshold, wDec,
                wSkipT, k);
    }

    private static long[] shape(SafeTensors st, String name, int rank) {
        if (!st.contains(name)) {
            throw new IllegalArgumentException(st.file() + ": tensor '" + name + "' is missing; the export is incomplete");
        }
        long[] shape = st.info(name).shape();
        if (shape.length != rank) {
            throw new IllegalArgumentException(st.file() + ": tensor '" + name + "' has shape " + st.info(name).shapeString()
                    + "; expected rank " + rank);
        }
        return shape;
    }

    private static INDArray tensor(SafeTensors st, String name, long... shape) {
        if (!st.contains(name)) {
            throw new IllegalArgumentException(st.file() + ": tensor '" + name + "' is missing; the export is incomplete");
        }
        if (!Arrays.equals(st.info(name).shape(), shape)) {
            throw new IllegalArgumentException(st.file() + ": tensor '" + name + "' has shape " + st.info(name).shapeString()
                    + " but the other tensors imply " + Arrays.toString(shape));
        }
        long count = st.info(name).elementCount();
        if (count <= readPartValues) {
            return Nd4j.createFromArray(st.floats(name)).reshape(shape);
        }
        // Past one part (and past 2^31 values, which no Java array holds): read part by part into the array.
        INDArray out = Nd4j.create(org.nd4j.linalg.api.buffer.DataType.FLOAT, shape);
        INDArray flat = out.reshape(count);
        for (long from = 0; from < count; from += readPartValues) {
            int n = (int) Math.min(readPartValues, count - from);
            flat.get(NDArrayIndex.interval(from, from + n)).assign(Nd4j.createFromArray(st.floats(name, from, n)));
        }
        return out;
    }

    /** Values read at a time from a large tensor; package-private so tests can make it tiny. */
    static long readPartValues = 1L << 26;

    /** Feature activations [n, F] of layer l from raw inputs [n, d]. */
    @Override
    public INDArray encode(int layer, INDArray x) {
        INDArray z = x.castTo(DataType.FLOAT).mmul(wEncT[layer]).addiRowVector(bEnc[layer]);
        if (threshold[layer] != null) {
            INDArray keep = Nd4j.create(DataType.FLOAT, z.shape());
            Nd4j.exec(new BroadcastSubOp(z, threshold[layer], keep, 1));
            Nd4j.exec(new Step(keep, keep, 0.0));
            return z.muli(keep);
        }
        if (topK > 0) {
            return TopKSelection.keepTopK(z, topK);
        }
        return Transforms.relu(z, false);
    }

    /**
     * Prediction [n, d_out] of target layer t from the activations of every layer (index = source
     * layer; a set uses only index t) and, for skip transcoders, the raw inputs (may be null otherwise).
     */
    @Override
    public INDArray decode(int target, INDArray[] activations, INDArray[] inputs) {
        INDArray out;
        if (kind.equals("transcoder_set")) {
            out = activations[target].castTo(DataType.FLOAT).mmul(wDec[target][0]).addiRowVector(bDec[target]);
            if (wSkipT[target] != null) {
                if (inputs == null || inputs[target] == null) {
                    throw new IllegalArgumentException("layer " + target + "'s transcoder has a skip connection; pass its inputs too");
                }
                out.addi(inputs[target].castTo(DataType.FLOAT).mmul(wSkipT[target]));
            }
            return out;
        }
        out = Nd4j.zeros(DataType.FLOAT, activations[0].size(0), dModel).addiRowVector(bDec[target]);
        for (int l = 0; l <= target; l++) {
            out.addi(activations[l].castTo(DataType.FLOAT).mmul(wDec[l][target - l]));
        }
        return out;
    }

    /** Encodes every layer's raw input and predicts every layer's output. */
    public INDArray[] forward(INDArray[] inputs) {
        INDArray[] a = new INDArray[layers];
        for (int l = 0; l < layers; l++) {
            a[l] = encode(l, inputs[l]);
        }
        INDArray[] out = new INDArray[layers];
        for (int t = 0; t < layers; t++) {
            out[t] = decode(t, a, inputs);
        }
        return out;
    }

    /** "cross_layer_transcoder" or "transcoder_set". */
    public String kind() { return kind; }
    @Override
    public String featureInputHook() { return featureInputHook; }
    public String featureOutputHook() { return featureOutputHook; }
    @Override
    public int layers() { return layers; }
    public int dModel() { return dModel; }
    public int featuresPerLayer() { return features; }
    /** Encoder of layer l oriented x @ W [d, F], encoder bias [F], decoder bias [d_out], skip [d, d_out] or null. */
    public INDArray encoder(int layer) { return wEncT[layer]; }
    public INDArray encoderBias(int layer) { return bEnc[layer]; }
    public INDArray decoderBias(int layer) { return bDec[layer]; }
    public INDArray skip(int layer) { return wSkipT[layer]; }
    /** k of a top-k set, 0 otherwise. */
    public int topK() { return topK; }
    /** Thresholds of layer l [F], or null (ReLU/top-k). */
    public INDArray threshold(int layer) { return threshold[layer]; }
    /** Decoder source -> target [F, d_out] (a set: source = target only). */
    public INDArray wDec(int source, int target) {
        return kind.equals("transcoder_set") ? (source == target ? wDec[source][0] : null) : wDec[source][target - source];
    }
}
