package activations.model;

import java.util.Arrays;

/**
 * The keys and values one sequence's earlier positions left in every layer, so incremental
 * decoding ({@link TransformerModel#forwardCached}) runs only the new positions. Keys are stored
 * after RoPE, at their absolute positions; rows are {@code [position][kvHead][headDim]}, so growing
 * is a plain array copy. One cache per sequence and per thread; it grows by doubling.
 */
public final class KvCache {

    final int kvWidth;
    final float[][] keys;
    final float[][] values;
    private int length;
    private int capacity;

    public KvCache(ModelConfig config) {
        this.kvWidth = config.kvDim();
        this.keys = new float[config.nLayers()][0];
        this.values = new float[config.nLayers()][0];
    }

    /** Positions cached so far: the next forwardCached pass starts at this position. */
    public int length() {
        return length;
    }

    /** Room for {@code positions} positions in every layer (called before a pass writes into it). */
    void reserve(int positions) {
        if (positions <= capacity) {
            return;
        }
        int grown = Math.max(positions, Math.max(16, 2 * capacity));
        for (int l = 0; l < keys.length; l++) {
            keys[l] = Arrays.copyOf(keys[l], grown * kvWidth);
            values[l] = Arrays.copyOf(values[l], grown * kvWidth);
        }
        capacity = grown;
    }

    /** Marks {@code positions} more positions as cached, once a pass has filled every layer. */
    void advance(int positions) {
        length += positions;
    }
}
