package training.clt;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.hooks.Intervention;
import activations.model.ModelConfig;
import activations.model.TransformerModel;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.FloatBuffer;
import java.util.Arrays;

/**
 * The replacement-model evaluation of a transcoder (REFERENCE section 5): run the model with MLP
 * outputs replaced by the transcoder's predictions and compare next-token distributions with the
 * original model: top-1 agreement (fraction of positions where the argmax matches) and mean
 * KL(original || replaced) per position. Done with every layer replaced at once (a CLT's
 * prediction at layer l sums the decoders of all source layers <= l, each encoded from the input
 * the REPLACED model feeds that layer) and with one layer at a time; plus, on the original model's
 * own activations, per-layer NMSE (squared error / squared deviation from the mean) and L0.
 *
 * <p>Mechanics: an intervention at each layer's input hook (the hook the transcoder was trained on,
 * e.g. {@code ln2.hook_normalized}, which fires before the MLP) copies the MLP input out; one at
 * {@code hook_mlp_out} of the same layer overwrites the MLP output. Hooks fire in forward order,
 * so later layers see the replaced residual stream.
 */
public final class ReplacementEvaluation {

    /** Figures over all evaluated positions. */
    public record Report(double allLayersAgreement, double allLayersKl, double[] singleLayerAgreement,
                         double[] singleLayerKl, double[] nmseByLayer, double[] l0ByLayer, int[] deadByLayer,
                         long positions) {
    }

    /**
     * Per forward pass: sees each layer's MLP input (raw) in forward order and supplies MLP outputs.
     * {@link #evaluate(TransformerModel, Replacement.Factory, String, int[][])} makes one per pass.
     */
    public interface Replacement {
        void observeInput(int layer, INDArray input);

        /** The replacement [rows, d] for layer l's MLP output, given the model's own output. */
        INDArray replaceOutput(int layer, INDArray modelOutput);

        @FunctionalInterface
        interface Factory {
            Replacement create();
        }
    }

    private ReplacementEvaluation() {
    }

    /** A transcoder as a replacement: encode each layer's input as it arrives, decode at the output. */
    public static Replacement.Factory of(MlpTranscoder transcoder) {
        return () -> new Replacement() {
            private final INDArray[] inputs = new INDArray[transcoder.layers()];
            private final INDArray[] activations = new INDArray[transcoder.layers()];

            @Override
            public void observeInput(int layer, INDArray input) {
                inputs[layer] = input;
                activations[layer] = transcoder.encode(layer, input);
            }

            @Override
            public INDArray replaceOutput(int layer, INDArray modelOutput) {
                return transcoder.decode(layer, activations, inputs);
            }
        };
    }

    /** Evaluates a transcoder on token sequences (a batch of equal-length rows) of {@code model}. */
    public static Report evaluate(TransformerModel model, MlpTranscoder transcoder, int[][] sequences) {
        Report replaced = evaluate(model, of(transcoder), transcoder.featureInputHook(), sequences);
        int layers = transcoder.layers();
        ModelConfig config = model.config();
        // NMSE and L0 on the original model's own activations.
        HookPoint[] in = new HookPoint[layers];
        HookPoint[] out = new HookPoint[layers];
        ForwardRequest capture = new ForwardRequest();
        for (int l = 0; l < layers; l++) {
            in[l] = inputHook(transcoder.featureInputHook(), l, config);
            out[l] = new HookPoint(HookPoint.Kind.MLP_OUT, l);
            capture.alsoCapture(in[l]).alsoCapture(out[l]);
        }
        ForwardResult clean = model.forward(sequences, capture);
        int rows = sequences.length * sequences[0].length;
        INDArray[] x = new INDArray[layers];
        INDArray[] a = new INDArray[layers];
        for (int l = 0; l < layers; l++) {
            x[l] = Nd4j.createFromArray(clean.get(in[l])).reshape(rows, clean.dim(in[l]));
            a[l] = transcoder.encode(l, x[l]);
        }
        double[] nmse = new double[layers];
        double[] l0 = new double[layers];
        int[] dead = new int[layers];
        for (int l = 0; l < layers; l++) {
            INDArray y = Nd4j.createFromArray(clean.get(out[l])).reshape(rows, clean.dim(out[l]));
            INDArray prediction = transcoder.decode(l, a, x);
            double variance = y.subRowVector(y.mean(0)).norm2Number().doubleValue();
            nmse[l] = y.squaredDistance(prediction) / (variance * variance);
            INDArray fired = a[l].gt(0).castTo(DataType.DOUBLE);
            l0[l] = fired.sumNumber().doubleValue() / rows;
            // Dead: never fired on any evaluated position.
            for (double count : fired.sum(0).toDoubleVector()) {
                dead[l] += count == 0 ? 1 : 0;
            }
        }
        return new Report(replaced.allLayersAgreement(), replaced.allLayersKl(), replaced.singleLayerAgreement(),
                replaced.singleLayerKl(), nmse, l0, dead, replaced.positions());
    }

    /**
     * Agreement and KL only (NMSE and L0 left empty), for any replacement, e.g. the identity that
     * hands back the model's own MLP output (agreement 1, KL 0).
     */
    public static Report evaluate(TransformerModel model, Replacement.Factory factory, String inputHookSuffix, int[][] sequences) {
        ModelConfig config = model.config();
        int layers = config.nLayers();
        HookPoint logits = new HookPoint(HookPoint.Kind.LOGITS, -1);
        float[] original = model.forward(sequences, ForwardRequest.capture(logits)).get(logits);
        int vocab = config.vocabSize();
        int positions = sequences.length * sequences[0].length;
        double[] allLayers = compare(original, replacedLogits(model, factory, inputHookSuffix, sequences, null), positions, vocab);
        double[] singleAgreement = new double[layers];
        double[] singleKl = new double[layers];
        for (int l = 0; l < layers; l++) {
            double[] r = compare(original, replacedLogits(model, factory, inputHookSuffix, sequences, l), positions, vocab);
            singleAgreement[l] = r[0];
            singleKl[l] = r[1];
        }
        return new Report(allLayers[0], allLayers[1], singleAgreement, singleKl, new double[0], new double[0], new int[0], positions);
    }

    /** Logits with every layer's MLP output replaced ({@code onlyLayer} null) or just one layer's. */
    private static float[] replacedLogits(TransformerModel model, Replacement.Factory factory, String inputHookSuffix,
                                          int[][] sequences, Integer onlyLayer) {
        ModelConfig config = model.config();
        Replacement replacement = factory.create();
        HookPoint logits = new HookPoint(HookPoint.Kind.LOGITS, -1);
        ForwardRequest request = ForwardRequest.capture(logits);
        int last = onlyLayer == null ? config.nLayers() - 1 : onlyLayer;
        for (int l = 0; l <= last; l++) {
            final int layer = l;
            request.intervene(inputHook(inputHookSuffix, l, config), (hook, values, batch, seqLen, dim) ->
                    replacement.observeInput(layer, read(values, batch * seqLen, dim)));
            if (onlyLayer == null || onlyLayer == l) {
                request.intervene(new HookPoint(HookPoint.Kind.MLP_OUT, l), (hook, values, batch, seqLen, dim) -> {
                    INDArray replaced = replacement.replaceOutput(layer, read(values, batch * seqLen, dim));
                    write(replaced, values, batch * seqLen, dim, hook);
                });
            }
        }
        return model.forward(sequences, request).get(logits);
    }

    private static HookPoint inputHook(String suffix, int layer, ModelConfig config) {
        HookPoint hook = HookPoint.parse("blocks." + layer + "." + suffix, config);
        if (hook.kind().ordinal() >= HookPoint.Kind.LN2_POST_NORMALIZED.ordinal()) { // fires after the MLP ran
            throw new IllegalArgumentException("input hook " + suffix + " fires after the MLP; a transcoder must read the MLP"
                    + " input (e.g. ln2.hook_normalized, mlp.hook_in or hook_resid_mid)");
        }
        return hook;
    }

    private static INDArray read(FloatBuffer values, int rows, int dim) {
        float[] copy = new float[rows * dim];
        values.get(0, copy);
        return Nd4j.createFromArray(copy).reshape(rows, dim);
    }

    private static void write(INDArray replacement, FloatBuffer values, int rows, int dim, HookPoint hook) {
        if (replacement.rank() != 2 || replacement.size(0) != rows || replacement.size(1) != dim) {
            throw new IllegalArgumentException("replacement for " + hook + " has shape " + Arrays.toString(replacement.shape())
                    + "; the hook has [" + rows + ", " + dim + "]");
        }
        values.put(0, replacement.castTo(DataType.FLOAT).dup('c').reshape(replacement.length()).toFloatVector());
    }

    /** {top-1 agreement, mean KL(p || q)} over positions, from logits [positions, vocab]. */
    static double[] compare(float[] originalLogits, float[] replacedLogits, int positions, int vocab) {
        int agree = 0;
        double kl = 0;
        double[] logP = new double[vocab];
        double[] logQ = new double[vocab];
        for (int r = 0; r < positions; r++) {
            int base = r * vocab;
            logSoftmax(originalLogits, base, vocab, logP);
            logSoftmax(replacedLogits, base, vocab, logQ);
            int argP = 0;
            int argQ = 0;
            double sum = 0;
            for (int v = 0; v < vocab; v++) {
                argP = logP[v] > logP[argP] ? v : argP;
                argQ = logQ[v] > logQ[argQ] ? v : argQ;
                sum += Math.exp(logP[v]) * (logP[v] - logQ[v]);
            }
            agree += argP == argQ ? 1 : 0;
            kl += Math.max(sum, 0); // a sum of p (log p - log q) is >= 0 up to rounding
        }
        return new double[] {agree / (double) positions, kl / positions};
    }

    private static void logSoftmax(float[] logits, int base, int vocab, double[] out) {
        double max = Double.NEGATIVE_INFINITY;
        for (int v = 0; v < vocab; v++) {
            max = Math.max(max, logits[base + v]);
        }
        double sum = 0;
        for (int v = 0; v < vocab; v++) {
            sum += Math.exp(logits[base + v] - max);
        }
        double logZ = max + Math.log(sum);
        for (int v = 0; v < vocab; v++) {
            out[v] = logits[base + v] - logZ;
        }
    }
}
