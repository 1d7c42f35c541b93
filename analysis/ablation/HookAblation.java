package analysis.ablation;

import activations.hooks.ForwardRequest;
import activations.hooks.HookPoint;
import activations.hooks.Intervention;
import activations.model.TransformerModel;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.evaluation.DictionaryEvaluator;
import training.evaluation.FeatureDictionary;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;

/**
 * Ablates one hook of a model, or listed features of an SAE on that hook, and measures what the
 * next-token loss loses. Whole-hook ablation replaces the hook's value with zero, the data mean or
 * the value at the same position of a donor sequence. Feature ablation replaces only the listed
 * features' activations (by zero, their data means or the donor's activations) inside the SAE's
 * reconstruction and keeps the SAE's error term, so the new value is
 * {@code x + sum_i (replacement_i - f_i(x)) W_dec[i]}: everything the listed features do not
 * explain stays as it was.
 */
public final class HookAblation {

    private static final HookPoint LOGITS = new HookPoint(HookPoint.Kind.LOGITS, -1);

    private final TransformerModel model;
    private final HookPoint hook;
    private final AblationMode mode;
    private final FeatureDictionary dictionary;
    private final int[] features;
    private final INDArray featureDecoder;
    private final int width;
    private float[] means;

    /** Whole-hook ablation. */
    public HookAblation(TransformerModel model, String hookName, AblationMode mode) {
        this(model, hookName, mode, null, null);
    }

    /** Feature ablation with {@code dictionary} (an SAE on {@code hookName}); null: the whole hook. */
    public HookAblation(TransformerModel model, String hookName, AblationMode mode, FeatureDictionary dictionary, int[] features) {
        this.model = model;
        this.hook = HookPoint.parse(hookName, model.config());
        this.mode = mode;
        this.dictionary = dictionary;
        if (dictionary == null) {
            if (features != null && features.length > 0) {
                throw new IllegalArgumentException("--features needs --dictionary (the SAE whose features to ablate)");
            }
            this.features = null;
            this.featureDecoder = null;
            this.width = hook.dim(model.config());
        } else {
            if (!hook.name().equals(dictionary.hookName()) || !hook.name().equals(dictionary.outputHookName())) {
                throw new IllegalArgumentException("the dictionary reads " + dictionary.hookName() + (dictionary.outputHookName() != null
                        && !dictionary.outputHookName().equals(dictionary.hookName()) ? " and writes " + dictionary.outputHookName() : "")
                        + ", not --hook " + hook.name() + "; feature ablation needs an SAE trained on the ablated hook");
            }
            DictionaryEvaluator.hook(dictionary.hookName(), dictionary.dIn(), model, "input");
            this.features = checkedFeatures(features == null ? new int[0] : features, dictionary.dSae());
            this.featureDecoder = this.features.length == 0 ? null
                    : dictionary.decoderDirections().getRows(this.features).dup('c');
            this.width = this.features.length;
        }
    }

    static int[] checkedFeatures(int[] features, int dSae) {
        Set<Integer> seen = new HashSet<>();
        for (int f : features) {
            if (f < 0 || f >= dSae) {
                throw new IllegalArgumentException("feature " + f + " is out of range: the dictionary has features 0.." + (dSae - 1));
            }
            if (!seen.add(f)) {
                throw new IllegalArgumentException("feature " + f + " is listed twice in --features; list each once");
            }
        }
        return features.clone();
    }

    public HookPoint hook() {
        return hook;
    }

    public AblationMode mode() {
        return mode;
    }

    /** Length of the mean vector: the hook's width, or the number of ablated features. */
    public int meanWidth() {
        return width;
    }

    /** Adds a batch's hook values (or ablated features' activations) at every position to {@code sums}. */
    public void accumulateMeans(int[][] tokens, AblationMeans sums) {
        float[] values = replacedValues(tokens);
        int rows = tokens.length * tokens[0].length;
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < width; i++) {
                sums.sum[i] += values[r * width + i];
            }
        }
        sums.count += rows;
    }

    /** The data means {@link AblationMode#MEAN} substitutes (from {@link AblationMeans#means()}). */
    public HookAblation withMeans(float[] means) {
        if (means.length != width) {
            throw new IllegalArgumentException("means have " + means.length + " values, the ablation needs " + width);
        }
        this.means = means.clone();
        return this;
    }

    /** The hook's values (whole-hook) or the ablated features' activations [rows, width] of a clean run. */
    private float[] replacedValues(int[][] tokens) {
        float[] x = model.forward(tokens, ForwardRequest.capture(hook)).get(hook);
        if (dictionary == null) {
            return x;
        }
        if (features.length == 0) {
            return new float[0];
        }
        return selectedFeatures(x, x.length / dictionary.dIn()).reshape(-1).toFloatVector();
    }

    private INDArray selectedFeatures(float[] x, int rows) {
        INDArray all = dictionary.encode(Nd4j.createFromArray(x).reshape(rows, dictionary.dIn()));
        return all.getColumns(features);
    }

    /**
     * Next-token logits [batch * seqLen, vocab] with the ablation applied. {@code donors} (same
     * shape as {@code tokens}, row b the donor of sequence b) is needed for resampling only.
     */
    public float[] ablatedLogits(int[][] tokens, int[][] donors) {
        int rows = tokens.length * tokens[0].length;
        float[] replacement = switch (mode) {
            case ZERO -> null;
            case MEAN -> {
                if (means == null) {
                    throw new IllegalStateException("mean ablation needs the data means first (withMeans)");
                }
                float[] tiled = new float[rows * width];
                for (int r = 0; r < rows; r++) {
                    System.arraycopy(means, 0, tiled, r * width, width);
                }
                yield tiled;
            }
            case RESAMPLE -> {
                if (donors == null || donors.length != tokens.length || donors[0].length != tokens[0].length) {
                    throw new IllegalArgumentException("resampling needs one donor sequence of the same length per sequence");
                }
                yield replacedValues(donors);
            }
        };
        Intervention intervention;
        if (dictionary == null) {
            intervention = replacement == null ? Intervention.zero() : Intervention.replaceWith(replacement);
        } else {
            intervention = (h, values, batch, seqLen, dim) -> {
                if (features.length == 0) {
                    return;
                }
                float[] x = new float[rows * dim];
                values.get(0, x);
                INDArray current = selectedFeatures(x, rows);
                INDArray target = replacement == null ? Nd4j.zeros(current.dataType(), current.shape())
                        : Nd4j.createFromArray(replacement).reshape(rows, width);
                float[] delta = target.subi(current).mmul(featureDecoder).reshape(-1).toFloatVector();
                for (int i = 0; i < x.length; i++) {
                    values.put(i, x[i] + delta[i]);
                }
            };
        }
        return model.forward(tokens, ForwardRequest.capture(LOGITS).intervene(hook, intervention)).get(LOGITS);
    }

    /** Runs a batch clean and ablated and adds both losses. */
    public void add(int[][] tokens, int[][] donors, AblationLoss loss) {
        float[] clean = model.forward(tokens, ForwardRequest.capture(LOGITS)).get(LOGITS);
        float[] ablated = ablatedLogits(tokens, donors);
        loss.add(clean, ablated, tokens, tokens[0].length, model.config().vocabSize());
    }

    @Override
    public String toString() {
        return mode.userName() + " ablation of " + (dictionary == null ? hook.name()
                : "features " + Arrays.toString(features) + " of the SAE on " + hook.name());
    }
}
