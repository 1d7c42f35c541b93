package activations.hooks;

import java.nio.FloatBuffer;

/**
 * Changes a hook's value in place during a forward pass, so everything downstream sees the new
 * value (splicing a dictionary's reconstruction in, ablations, steering). The buffer holds
 * {@code batch * seqLen} rows of {@code dim} floats; row {@code b * seqLen + t} is position t of
 * sequence b. Use absolute indexing; the buffer is only valid during the call.
 */
@FunctionalInterface
public interface Intervention {

    void apply(HookPoint hook, FloatBuffer values, int batch, int seqLen, int dim);

    /** Replaces the whole value with {@code replacement} (batch * seqLen * dim floats). */
    static Intervention replaceWith(float[] replacement) {
        return (hook, values, batch, seqLen, dim) -> {
            if (replacement.length != batch * seqLen * dim) {
                throw new IllegalArgumentException("replacement for " + hook + " has " + replacement.length
                        + " values, the hook has " + batch * seqLen * dim + " (" + batch + " x " + seqLen + " x " + dim + ")");
            }
            values.put(0, replacement);
        };
    }

    /** Adds {@code vector} (dim floats) at every position. */
    static Intervention addVector(float[] vector) {
        return (hook, values, batch, seqLen, dim) -> {
            if (vector.length != dim) {
                throw new IllegalArgumentException("vector for " + hook + " has " + vector.length
                        + " values, the hook has width " + dim);
            }
            for (int r = 0; r < batch * seqLen; r++) {
                for (int i = 0; i < dim; i++) {
                    int at = r * dim + i;
                    values.put(at, values.get(at) + vector[i]);
                }
            }
        };
    }

    /** Sets the value to zero (zero ablation). */
    static Intervention zero() {
        return (hook, values, batch, seqLen, dim) -> {
            for (int i = 0; i < batch * seqLen * dim; i++) {
                values.put(i, 0f);
            }
        };
    }
}
