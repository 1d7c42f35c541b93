package training.evaluation;

import org.nd4j.linalg.api.ndarray.INDArray;
import training.export.SaeLensDictionary;

import java.nio.file.Path;

/**
 * What evaluation and feature analysis need from a sparse dictionary: encode raw activations of
 * its input hook into features, decode features into the output hook's space. SAEs read and write
 * the same hook; a transcoder reads one hook and writes another (it implements this too).
 */
public interface FeatureDictionary {

    int dIn();

    int dSae();

    /** Width of the reconstruction ({@code dIn} for an SAE). */
    default int dOut() {
        return dIn();
    }

    /** The TransformerLens hook the dictionary reads, or null when its metadata does not say. */
    String hookName();

    /** The hook the reconstruction replaces ({@link #hookName()} for an SAE). */
    default String outputHookName() {
        return hookName();
    }

    /** Feature activations [n, dSae] of raw activations [n, dIn]. */
    INDArray encode(INDArray x);

    /** Reconstruction [n, dOut] of feature activations [n, dSae]. */
    INDArray decode(INDArray features);

    /** The decoder directions [dSae, dOut] (rows are features), for logit tables. */
    INDArray decoderDirections();

    /** Loads a SAELens SAE directory. */
    static FeatureDictionary load(Path directory) {
        return new SaeLensFeatureDictionary(SaeLensDictionary.load(directory));
    }
}
