package training.clt;

import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * What the replacement-model evaluation needs from a transcoder working on RAW activations: a
 * cross-layer transcoder or a per-layer transcoder set (e.g. a {@code CircuitTracerDictionary}).
 */
public interface MlpTranscoder {

    int layers();

    /** Feature activations [n, F] of layer l from its raw MLP inputs [n, d]. */
    INDArray encode(int layer, INDArray x);

    /**
     * Prediction [n, d] of target layer t's MLP output from the activations of layers 0..t (index =
     * layer; entries above t may be null) and the raw inputs (for skip connections; may be null otherwise).
     */
    INDArray decode(int target, INDArray[] activations, INDArray[] inputs);

    /** The input hook's suffix the transcoder was trained on, e.g. {@code ln2.hook_normalized}. */
    String featureInputHook();
}
