package attribution;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.hooks.HookPoint.Kind;
import activations.model.ModelConfig;
import activations.model.TransformerModel;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.export.CircuitTracerDictionary;

import java.util.ArrayList;
import java.util.List;

/**
 * The local replacement model of one prompt (the attribution-graphs methods paper, as
 * circuit-tracer builds it): one real forward pass records every attention pattern and norm
 * scale (frozen from then on), each layer's transcoder input, its feature pre-activations and
 * activations, and the error node of each MLP, the real MLP output minus the transcoder's
 * reconstruction, so that features + errors reproduce the real model exactly.
 *
 * <p>As circuit-tracer does, a first token that is special (BOS) gets no feature or error nodes:
 * its MLP outputs stay in the model as constants, like the biases.
 */
public final class LocalReplacementModel {

    /** An active feature: a node of the graph. */
    public record Feature(int layer, int position, int feature, float activation) {
    }

    final TransformerModel model;
    final CircuitTracerDictionary transcoder;
    final ModelConfig config;
    final int[] tokens;
    final int positions;
    final int layers;
    final int d;
    final boolean zeroFirst;
    final boolean inputNormalized; // transcoders read ln2.hook_normalized (else hook_resid_mid)
    final float[][] patterns; // [layer][heads * q * k]
    final float[][] ln1Scale; // [layer][position]
    final float[][] ln2Scale;
    final float[] finalScale;
    final INDArray[] inputs; // [layer] [positions, d]: what the transcoder reads
    final INDArray[] preActivations; // [layer] [positions, F]
    final INDArray[] activations; // [layer] [positions, F], first position zeroed when zeroFirst
    final INDArray[] mlpOutputs; // [layer] [positions, d]: the real MLP outputs
    final INDArray[] errors; // [layer] [positions, d]
    final float[] lastLogits;
    final List<Feature> features;

    /**
     * Runs {@code tokens} through {@code model} and sets up the replacement; {@code zeroFirstSpecial}
     * leaves the first position out of the graph when its token is special (circuit-tracer's zero_bos).
     */
    public LocalReplacementModel(TransformerModel model, CircuitTracerDictionary transcoder, int[] tokens, boolean firstIsSpecial) {
        this.model = model;
        this.transcoder = transcoder;
        this.config = model.config();
        checkCompatible(config, transcoder);
        if (tokens.length == 0) {
            throw new IllegalArgumentException("the prompt is empty: give at least one token of text");
        }
        if (tokens.length > config.maxPositions()) {
            throw new IllegalArgumentException("the prompt has " + tokens.length + " tokens but the model's context is "
                    + config.maxPositions() + "; shorten the prompt");
        }
        this.tokens = tokens.clone();
        this.positions = tokens.length;
        this.layers = config.nLayers();
        this.d = config.dModel();
        this.zeroFirst = firstIsSpecial;
        this.inputNormalized = transcoder.featureInputHook().equals(Kind.LN2_NORMALIZED.suffix);

        ForwardRequest request = new ForwardRequest();
        HookPoint logits = new HookPoint(Kind.LOGITS, -1);
        HookPoint lnFinal = new HookPoint(Kind.LN_FINAL_SCALE, -1);
        request.alsoCapture(logits).alsoCapture(lnFinal);
        for (int l = 0; l < layers; l++) {
            request.alsoCapture(new HookPoint(Kind.ATTN_PATTERN, l)).alsoCapture(new HookPoint(Kind.LN1_SCALE, l))
                    .alsoCapture(new HookPoint(Kind.LN2_SCALE, l)).alsoCapture(inputHook(l)).alsoCapture(new HookPoint(Kind.MLP_OUT, l));
        }
        ForwardResult r = model.forward(new int[][] {tokens}, request);
        patterns = new float[layers][];
        ln1Scale = new float[layers][];
        ln2Scale = new float[layers][];
        inputs = new INDArray[layers];
        preActivations = new INDArray[layers];
        activations = new INDArray[layers];
        mlpOutputs = new INDArray[layers];
        errors = new INDArray[layers];
        for (int l = 0; l < layers; l++) {
            patterns[l] = r.get(new HookPoint(Kind.ATTN_PATTERN, l));
            ln1Scale[l] = r.get(new HookPoint(Kind.LN1_SCALE, l));
            ln2Scale[l] = r.get(new HookPoint(Kind.LN2_SCALE, l));
            inputs[l] = Nd4j.createFromArray(r.get(inputHook(l))).reshape(positions, d);
            mlpOutputs[l] = Nd4j.createFromArray(r.get(new HookPoint(Kind.MLP_OUT, l))).reshape(positions, d);
            preActivations[l] = inputs[l].mmul(transcoder.encoder(l)).addiRowVector(transcoder.encoderBias(l));
            activations[l] = transcoder.encode(l, inputs[l]);
        }
        for (int l = 0; l < layers; l++) {
            errors[l] = mlpOutputs[l].sub(transcoder.decode(l, activations, inputs));
            if (zeroFirst) {
                errors[l].getRow(0).assign(0);
                activations[l].getRow(0).assign(0);
            }
        }
        finalScale = r.get(lnFinal);
        lastLogits = r.row(logits, 0, positions - 1);
        features = activeFeatures();
    }

    /** The transcoders must cover every layer, read a supported MLP-input hook and match d_model. */
    public static void checkCompatible(ModelConfig config, CircuitTracerDictionary transcoder) {
        // The backward pass knows the Llama-family and GPT-2 blocks; others (post-norms, parallel residuals) are refused.
        if (config.family() != ModelConfig.Family.LLAMA && config.family() != ModelConfig.Family.GPT2) {
            throw new IllegalArgumentException("attribution graphs support Llama-family and GPT-2 models; "
                    + config.architecture() + " is not supported yet");
        }
        String in = transcoder.featureInputHook();
        if (!in.equals(Kind.LN2_NORMALIZED.suffix) && !in.equals(Kind.RESID_MID.suffix)) {
            throw new IllegalArgumentException("the transcoders read '" + in + "'; attribution needs transcoders on the MLP input "
                    + "(feature_input_hook ln2.hook_normalized or hook_resid_mid in config.yaml)");
        }
        if (!transcoder.featureOutputHook().equals(Kind.MLP_OUT.suffix)) {
            throw new IllegalArgumentException("the transcoders write '" + transcoder.featureOutputHook()
                    + "'; attribution replaces MLP outputs (feature_output_hook hook_mlp_out in config.yaml)");
        }
        if (transcoder.layers() != config.nLayers()) {
            throw new IllegalArgumentException("the transcoders cover " + transcoder.layers() + " layers but the model has "
                    + config.nLayers() + "; attribution replaces every MLP, so train or export one for each layer");
        }
        if (transcoder.dModel() != config.dModel()) {
            throw new IllegalArgumentException("the transcoders are " + transcoder.dModel() + " wide but the model's d_model is "
                    + config.dModel() + "; they were trained on another model");
        }
        for (int l = 0; l < config.nLayers(); l++) {
            long out = transcoder.decoderBias(l).length();
            if (out != config.dModel()) {
                throw new IllegalArgumentException("layer " + l + "'s transcoder writes " + out + " values but the model's d_model is "
                        + config.dModel() + "; they were trained on another model");
            }
        }
    }

    private HookPoint inputHook(int layer) {
        return new HookPoint(inputNormalized ? Kind.LN2_NORMALIZED : Kind.RESID_MID, layer);
    }

    private List<Feature> activeFeatures() {
        List<Feature> active = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            float[] a = activations[l].castTo(DataType.FLOAT).dup('c').data().asFloat();
            int width = (int) activations[l].size(1);
            for (int p = 0; p < positions; p++) {
                for (int f = 0; f < width; f++) {
                    float v = a[p * width + f];
                    if (v != 0f) {
                        active.add(new Feature(l, p, f, v));
                    }
                }
            }
        }
        return active;
    }

    public List<Feature> features() {
        return features;
    }

    public int[] tokens() {
        return tokens.clone();
    }

    public int positions() {
        return positions;
    }

    public int layers() {
        return layers;
    }

    /** The real model's next-token logits at the last position. */
    public float[] lastLogits() {
        return lastLogits.clone();
    }

    /** A feature's pre-activation (encoder row . input + encoder bias) in the real forward pass. */
    public double preActivation(Feature f) {
        return preActivations[f.layer()].getDouble(f.position(), f.feature());
    }

    /** Error node vector of layer l at position p. */
    public float[] error(int layer, int position) {
        return errors[layer].getRow(position).toFloatVector();
    }

    /** The transcoder input the real forward pass gave layer l [positions, d]. */
    public INDArray input(int layer) {
        return inputs[layer].dup();
    }

    /** Feature activations of layer l [positions, F] as the graph uses them (first position zeroed when left out). */
    public INDArray activations(int layer) {
        return activations[layer].dup();
    }

    /** Frozen state, for checks outside this class: attention pattern and norm scales as captured. */
    public float[] pattern(int layer) {
        return patterns[layer].clone();
    }

    public float[] ln1Scale(int layer) {
        return ln1Scale[layer].clone();
    }

    public float[] ln2Scale(int layer) {
        return ln2Scale[layer].clone();
    }

    public float[] finalScale() {
        return finalScale.clone();
    }

    /** True when the first position has no nodes (its token is special). */
    public boolean firstPositionLeftOut() {
        return zeroFirst;
    }

    /** The real MLP output of layer l at position p. */
    public float[] mlpOutput(int layer, int position) {
        return mlpOutputs[layer].getRow(position).toFloatVector();
    }
}
