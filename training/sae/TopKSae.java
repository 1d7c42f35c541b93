package training.sae;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.scalar.RectifiedLinear;
import org.nd4j.linalg.factory.Nd4j;

/** TopK SAE: per token, keep the k largest pre-activations (then ReLU), zero the rest. */
public final class TopKSae extends AbstractTopKSae {

    public TopKSae(SaeConfig config, DataType dtype) {
        super(config, dtype);
    }

    @Override
    protected void activate(boolean training) {
        topKPerRow(zHost, maskHost, mask, batch, dSae, config.k(), null);
        multiply(z, mask, f);
        Nd4j.exec(new RectifiedLinear(f, f, 0.0));
        step(f, mask, 0.0);
        countFiring();
    }

    /** The k largest per row that are positive (the same selection as {@link #activate}). */
    @Override
    protected boolean activateSparse(boolean training) {
        long entries = (long) batch * Math.min(config.k(), dSae);
        if (!sparsePays(entries, entries)) {
            return false;
        }
        topKEntries(active, batch, dSae, config.k(), null, true);
        countActive();
        return true;
    }

    @Override
    protected void inferenceActivation(INDArray preActivations) {
        INDArray keep = Nd4j.create(dtype, preActivations.shape());
        int rows = (int) preActivations.size(0);
        INDArray pre = preActivations.isView() ? preActivations.dup() : preActivations;
        topKPerRow(new HostArray(pre), new HostArray(keep), keep, rows, dSae, config.k(), null);
        preActivations.muli(keep);
        Nd4j.exec(new RectifiedLinear(preActivations, preActivations, 0.0));
    }

    @Override
    public INDArray exportThreshold() {
        return null;
    }

    @Override
    public String exportArchitecture() {
        return "topk";
    }
}
