package analysis.lens;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.hooks.HookPoint.Kind;
import activations.model.ModelConfig;
import activations.model.TransformerModel;

import java.util.ArrayList;
import java.util.List;

/**
 * Direct logit attribution: the final residual at one position is the sum of the embedding (and,
 * for GPT-2, the position embedding) and every layer's attention and MLP output, so with the final
 * norm's scale frozen at the full residual's value the norm is linear, and each component's share
 * of the target's logit is {@code (gain * centre(c) * scale) . W_U[target]} (centring only for
 * LayerNorm). The shares sum to the logit minus the norm's bias projected on the target row (what
 * TransformerLens folds into the unembedding bias).
 */
public final class DirectLogitAttribution {

    public record Component(String name, double logit) {
    }

    /** {@code unembedBias}: the final norm's bias through the target's unembedding row (0 for RMSNorm). */
    public record Result(int targetId, int position, List<Component> components, double logit, double unembedBias) {

        public double componentSum() {
            double sum = 0;
            for (Component c : components) {
                sum += c.logit();
            }
            return sum;
        }
    }

    private DirectLogitAttribution() {
    }

    /** Attribution of {@code target}'s logit at the last position; {@code target < 0}: the top prediction. */
    public static Result run(TransformerModel model, int[] tokens, int target) {
        ModelConfig c = model.config();
        int last = tokens.length - 1;
        List<HookPoint> parts = new ArrayList<>();
        List<String> names = new ArrayList<>();
        parts.add(new HookPoint(Kind.EMBED, -1));
        names.add("embed");
        if (c.family() == ModelConfig.Family.GPT2) {
            parts.add(new HookPoint(Kind.POS_EMBED, -1));
            names.add("pos_embed");
        }
        for (int l = 0; l < c.nLayers(); l++) {
            parts.add(new HookPoint(Kind.ATTN_OUT, l));
            names.add("blocks." + l + ".attn");
            parts.add(new HookPoint(Kind.MLP_OUT, l));
            names.add("blocks." + l + ".mlp");
        }
        HookPoint resid = new HookPoint(Kind.RESID_POST, c.nLayers() - 1);
        HookPoint logits = new HookPoint(Kind.LOGITS, -1);
        List<HookPoint> capture = new ArrayList<>(parts);
        capture.add(resid);
        capture.add(logits);
        ForwardResult r = model.forward(new int[][] {tokens}, ForwardRequest.capture(capture));
        float[] modelLogits = r.row(logits, 0, last);
        int targetId = target >= 0 ? target : TransformerModel.argmax(modelLogits);
        if (targetId >= c.vocabSize()) {
            throw new IllegalArgumentException("target id " + targetId + " is outside the vocabulary [0, " + c.vocabSize() + ")");
        }

        boolean layerNorm = model.finalNormCentres();
        float[] residual = r.row(resid, 0, last);
        double scale = 1.0 / Math.sqrt(variance(residual, layerNorm) + c.normEps());
        float[] gain = model.finalNormGain();
        float[] unembedRow = model.unembedding().getRow(targetId).toFloatVector();
        // The direction a residual component is read along: gain * W_U[target] * scale.
        double[] direction = new double[c.dModel()];
        for (int i = 0; i < direction.length; i++) {
            direction[i] = (double) gain[i] * unembedRow[i] * scale;
        }
        List<Component> components = new ArrayList<>();
        for (int k = 0; k < parts.size(); k++) {
            float[] value = r.row(parts.get(k), 0, last);
            double mean = layerNorm ? mean(value) : 0;
            double logit = 0;
            for (int i = 0; i < value.length; i++) {
                logit += (value[i] - mean) * direction[i];
            }
            components.add(new Component(names.get(k), logit));
        }
        float[] bias = model.finalNormBias();
        double biasLogit = 0;
        if (bias != null) {
            for (int i = 0; i < bias.length; i++) {
                biasLogit += (double) bias[i] * unembedRow[i];
            }
        }
        return new Result(targetId, last, components, modelLogits[targetId], biasLogit);
    }

    private static double mean(float[] v) {
        double sum = 0;
        for (float x : v) {
            sum += x;
        }
        return sum / v.length;
    }

    /** Mean square about the mean (LayerNorm) or about zero (RMSNorm), as the final norm computes it. */
    private static double variance(float[] v, boolean centred) {
        double mean = centred ? mean(v) : 0;
        double squares = 0;
        for (float x : v) {
            squares += (x - mean) * (x - mean);
        }
        return squares / v.length;
    }
}
