package jobs.cache;

import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.table.ActivationShardWriter;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Token rows of one shard on their way to the shard writer: buffered per batch (and flushed), or
 * for the whole shard when its rows are to be shuffled before writing.
 */
final class ShardRows {

    private final int[] dims;
    private long[] seqIds = new long[1024];
    private int[] positions = new int[1024];
    private int[] tokenIds = new int[1024];
    private float[][] values;
    private int rows;

    ShardRows(int hooks, int[] dims) {
        this.dims = dims.clone();
        values = new float[hooks][];
        for (int h = 0; h < hooks; h++) {
            values[h] = new float[1024 * dims[h]];
        }
    }

    void add(long seqId, int pos, int tokenId, ForwardResult result, List<HookPoint> hooks, int sequence) {
        if (rows == seqIds.length) {
            int capacity = rows * 2;
            seqIds = Arrays.copyOf(seqIds, capacity);
            positions = Arrays.copyOf(positions, capacity);
            tokenIds = Arrays.copyOf(tokenIds, capacity);
            for (int h = 0; h < values.length; h++) {
                values[h] = Arrays.copyOf(values[h], capacity * dims[h]);
            }
        }
        seqIds[rows] = seqId;
        positions[rows] = pos;
        tokenIds[rows] = tokenId;
        int row = sequence * result.seqLen() + pos;
        for (int h = 0; h < values.length; h++) {
            System.arraycopy(result.get(hooks.get(h)), row * dims[h], values[h], rows * dims[h], dims[h]);
        }
        rows++;
    }

    /** Fisher-Yates over whole rows (all hooks move together). */
    void shuffle(SplittableRandom random) {
        float[][] tmp = new float[values.length][];
        for (int h = 0; h < values.length; h++) {
            tmp[h] = new float[dims[h]];
        }
        for (int i = rows - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            swap(i, j, tmp);
        }
    }

    private void swap(int i, int j, float[][] tmp) {
        long s = seqIds[i];
        seqIds[i] = seqIds[j];
        seqIds[j] = s;
        int p = positions[i];
        positions[i] = positions[j];
        positions[j] = p;
        int t = tokenIds[i];
        tokenIds[i] = tokenIds[j];
        tokenIds[j] = t;
        for (int h = 0; h < values.length; h++) {
            int d = dims[h];
            System.arraycopy(values[h], i * d, tmp[h], 0, d);
            System.arraycopy(values[h], j * d, values[h], i * d, d);
            System.arraycopy(tmp[h], 0, values[h], j * d, d);
        }
    }

    /** Writes the buffered rows and empties the buffer. */
    void flushTo(ActivationShardWriter writer) {
        if (rows > 0) {
            writer.writeRows(seqIds, positions, tokenIds, values, rows);
            rows = 0;
        }
    }
}
