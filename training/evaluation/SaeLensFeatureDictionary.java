package training.evaluation;

import com.fasterxml.jackson.databind.JsonNode;
import org.nd4j.linalg.api.ndarray.INDArray;
import training.export.SaeLensDictionary;

/** A SAELens SAE as a {@link FeatureDictionary}; the hook comes from cfg.json (metadata.hook_name or hook_name). */
public final class SaeLensFeatureDictionary implements FeatureDictionary {

    private final SaeLensDictionary sae;
    private final String hookName;

    public SaeLensFeatureDictionary(SaeLensDictionary sae) {
        this.sae = sae;
        JsonNode cfg = sae.cfg();
        JsonNode hook = cfg.path("metadata").path("hook_name");
        if (hook.isMissingNode() || hook.isNull()) {
            hook = cfg.path("hook_name");
        }
        this.hookName = hook.isTextual() ? hook.asText() : null;
    }

    public SaeLensDictionary sae() {
        return sae;
    }

    @Override
    public int dIn() {
        return sae.dIn();
    }

    @Override
    public int dSae() {
        return sae.dSae();
    }

    @Override
    public String hookName() {
        return hookName;
    }

    @Override
    public INDArray encode(INDArray x) {
        return sae.encode(x);
    }

    @Override
    public INDArray decode(INDArray features) {
        return sae.decode(features);
    }

    @Override
    public INDArray decoderDirections() {
        return sae.wDec();
    }
}
