package training.evaluation;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.hooks.Intervention;
import activations.model.TransformerModel;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Evaluates a dictionary on batches of token sequences: three forward passes per batch (clean,
 * with the dictionary's output hook replaced by its reconstruction, and with that hook zeroed),
 * accumulating reconstruction sums and next-token losses.
 */
public final class DictionaryEvaluator {

    private final TransformerModel model;
    private final FeatureDictionary dictionary;
    private final HookPoint input;
    private final HookPoint output;
    private final HookPoint logits;
    private final ReconstructionStatistics statistics;
    private final NextTokenLoss loss = new NextTokenLoss();

    public DictionaryEvaluator(TransformerModel model, FeatureDictionary dictionary) {
        this.model = model;
        this.dictionary = dictionary;
        this.input = hook(dictionary.hookName(), dictionary.dIn(), model, "input");
        this.output = hook(dictionary.outputHookName(), dictionary.dOut(), model, "output");
        this.logits = new HookPoint(HookPoint.Kind.LOGITS, -1);
        this.statistics = new ReconstructionStatistics(dictionary.dOut(), dictionary.dSae());
    }

    /** The hook a dictionary reads (or writes), checked against the model; one-line errors. */
    public static HookPoint hook(String name, int width, TransformerModel model, String role) {
        if (name == null) {
            throw new IllegalArgumentException("the dictionary's cfg.json names no hook (metadata.hook_name); add the hook the dictionary was trained on");
        }
        HookPoint hook = HookPoint.parse(name, model.config());
        int d = hook.dim(model.config());
        if (d != width) {
            throw new IllegalArgumentException("the dictionary's " + role + " width is " + width + " but the model's hook " + name
                    + " has width " + d + "; use a dictionary trained on this model and hook");
        }
        return hook;
    }

    /** Adds a batch of sequences of equal length. */
    public void add(int[][] tokens) {
        int seqLen = tokens[0].length;
        int rows = tokens.length * seqLen;
        ForwardRequest cleanRequest = ForwardRequest.capture(input, logits);
        if (!output.equals(input)) {
            cleanRequest.alsoCapture(output);
        }
        ForwardResult clean = model.forward(tokens, cleanRequest);
        INDArray x = Nd4j.createFromArray(clean.get(input)).reshape(rows, dictionary.dIn());
        INDArray features = dictionary.encode(x);
        INDArray reconstruction = dictionary.decode(features);
        float[] xHat = flat(reconstruction);
        statistics.add(clean.get(output), xHat, flat(features), rows);

        float[] spliced = model.forward(tokens, ForwardRequest.capture(logits)
                .intervene(output, Intervention.replaceWith(xHat))).get(logits);
        float[] zero = model.forward(tokens, ForwardRequest.capture(logits)
                .intervene(output, Intervention.zero())).get(logits);
        loss.add(clean.get(logits), spliced, zero, tokens, seqLen, model.config().vocabSize());
    }

    static float[] flat(INDArray a) {
        return a.dup('c').reshape(a.length()).toFloatVector();
    }

    public ReconstructionStatistics statistics() {
        return statistics;
    }

    public NextTokenLoss loss() {
        return loss;
    }
}
