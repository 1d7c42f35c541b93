package attribution;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.hooks.HookPoint.Kind;
import activations.hooks.Intervention;
import activations.model.TransformerModel;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.export.CircuitTracerDictionary;

import java.nio.FloatBuffer;

/**
 * The frozen local replacement model run FORWARD through the real TransformerModel with
 * interventions: attention patterns and norm scales replaced by the captured ones, each MLP output
 * replaced by fixed feature activations through the decoders, plus decoder bias, skip connection of
 * the current input and a fixed error vector (the first position's real MLP output when it is left
 * out of the graph). Independent of the backward code under test: every direct effect it implies
 * is a difference of two of its runs.
 */
final class FrozenForward {

    /** Logits at the last position minus their mean, and every feature's pre-activation [layer] [T * F]. */
    record Output(float[] demeanedLastLogits, float[][] preActivations, int features) {
        double pre(LocalReplacementModel.Feature f) {
            return preActivations[f.layer()][f.position() * features + f.feature()];
        }
    }

    private FrozenForward() {
    }

    /**
     * @param tokenScale  per position, multiplies the token embedding (1 keeps, 0 removes a token node)
     * @param activations [layer] [T, F] fixed feature activations
     * @param errors      [layer] [T, d] fixed error vectors
     * @param freeze      false runs the plain model (patterns and scales recomputed)
     */
    static Output run(LocalReplacementModel m, TransformerModel model, CircuitTracerDictionary transcoder, float[] tokenScale,
                      INDArray[] activations, INDArray[] errors, boolean freeze) {
        int layers = m.layers();
        int t = m.positions();
        int d = model.config().dModel();
        boolean normalized = transcoder.featureInputHook().equals("ln2.hook_normalized");
        HookPoint logits = new HookPoint(Kind.LOGITS, -1);
        ForwardRequest request = ForwardRequest.capture(logits);
        request.intervene(new HookPoint(Kind.EMBED, -1), (hook, values, batch, seqLen, dim) -> {
            for (int p = 0; p < seqLen; p++) {
                for (int i = 0; i < dim; i++) {
                    values.put(p * dim + i, values.get(p * dim + i) * tokenScale[p]);
                }
            }
        });
        if (freeze) {
            request.intervene(new HookPoint(Kind.LN_FINAL_SCALE, -1), Intervention.replaceWith(m.finalScale()));
        }
        INDArray[] inputs = new INDArray[layers];
        for (int l = 0; l < layers; l++) {
            int layer = l;
            if (freeze) {
                request.intervene(new HookPoint(Kind.ATTN_PATTERN, l), Intervention.replaceWith(m.pattern(l)));
                request.intervene(new HookPoint(Kind.LN1_SCALE, l), Intervention.replaceWith(m.ln1Scale(l)));
                request.intervene(new HookPoint(Kind.LN2_SCALE, l), Intervention.replaceWith(m.ln2Scale(l)));
            }
            request.intervene(new HookPoint(normalized ? Kind.LN2_NORMALIZED : Kind.RESID_MID, l),
                    (hook, values, batch, seqLen, dim) -> inputs[layer] = read(values, t, d));
            request.intervene(new HookPoint(Kind.MLP_OUT, l), (hook, values, batch, seqLen, dim) -> {
                INDArray out = transcoder.decode(layer, activations, inputs).add(errors[layer]);
                if (m.firstPositionLeftOut()) {
                    out.getRow(0).assign(Nd4j.createFromArray(m.mlpOutput(layer, 0)));
                }
                values.put(0, out.dup('c').data().asFloat());
            });
        }
        ForwardResult r = model.forward(new int[][] {m.tokens()}, request);
        float[] last = r.row(logits, 0, t - 1);
        double mean = 0;
        for (float v : last) {
            mean += v / (double) last.length;
        }
        float[] demeaned = new float[last.length];
        for (int i = 0; i < last.length; i++) {
            demeaned[i] = (float) (last[i] - mean);
        }
        float[][] pre = new float[layers][];
        for (int l = 0; l < layers; l++) {
            pre[l] = inputs[l].mmul(transcoder.encoder(l)).addiRowVector(transcoder.encoderBias(l)).dup('c').data().asFloat();
        }
        return new Output(demeaned, pre, transcoder.featuresPerLayer());
    }

    private static INDArray read(FloatBuffer values, int rows, int dim) {
        float[] copy = new float[rows * dim];
        values.get(0, copy);
        return Nd4j.createFromArray(copy).reshape(rows, dim);
    }
}
