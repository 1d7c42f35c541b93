package activations.hooks;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Captured hook values of one forward pass: for each hook, {@code batch * seqLen} rows of its
 * width, row-major; row {@code b * seqLen + t} is position t of sequence b.
 */
public final class ForwardResult {

    private final int batch;
    private final int seqLen;
    private final Map<HookPoint, float[]> values = new LinkedHashMap<>();
    private final Map<HookPoint, Integer> dims = new LinkedHashMap<>();

    public ForwardResult(int batch, int seqLen) {
        this.batch = batch;
        this.seqLen = seqLen;
    }

    public void put(HookPoint hook, float[] data, int dim) {
        values.put(hook, data);
        dims.put(hook, dim);
    }

    public int batch() {
        return batch;
    }

    public int seqLen() {
        return seqLen;
    }

    public Map<HookPoint, float[]> all() {
        return Collections.unmodifiableMap(values);
    }

    public float[] get(HookPoint hook) {
        float[] v = values.get(hook);
        if (v == null) {
            throw new IllegalArgumentException("hook " + hook + " was not captured; add it to the forward request");
        }
        return v;
    }

    public int dim(HookPoint hook) {
        get(hook);
        return dims.get(hook);
    }

    /** One position's vector: sequence b, position t. */
    public float[] row(HookPoint hook, int b, int t) {
        int dim = dim(hook);
        float[] out = new float[dim];
        System.arraycopy(get(hook), (b * seqLen + t) * dim, out, 0, dim);
        return out;
    }
}
