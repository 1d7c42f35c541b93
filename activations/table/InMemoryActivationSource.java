package activations.table;

import java.nio.FloatBuffer;
import java.util.List;

/**
 * Activations already in memory (row-major arrays), read in order, optionally cycling over the
 * data for a fixed number of epochs. For small experiments, imports and tests.
 */
public final class InMemoryActivationSource implements ActivationSource {

    private final List<String> hooks;
    private final float[][] data;
    private final int[] dims;
    private final int rows;
    private final long totalRows;
    private long position;

    /** One hook: {@code data} holds {@code data.length / dim} rows of {@code dim} floats. */
    public InMemoryActivationSource(String hook, float[] data, int dim) {
        this(List.of(hook), new float[][] {data}, new int[] {dim}, 1);
    }

    public InMemoryActivationSource(List<String> hooks, float[][] data, int[] dims, int epochs) {
        if (hooks.size() != data.length || data.length != dims.length || data.length == 0) {
            throw new IllegalArgumentException("one data array and one width per hook are needed");
        }
        this.hooks = List.copyOf(hooks);
        this.data = data;
        this.dims = dims.clone();
        this.rows = data[0].length / dims[0];
        for (int h = 0; h < data.length; h++) {
            if (data[h].length != (long) rows * dims[h]) {
                throw new IllegalArgumentException("hook " + hooks.get(h) + " has " + data[h].length
                        + " values, not " + rows + " rows of " + dims[h]);
            }
        }
        this.totalRows = (long) rows * epochs;
    }

    @Override
    public List<String> hooks() {
        return hooks;
    }

    @Override
    public int[] dims() {
        return dims.clone();
    }

    @Override
    public int read(FloatBuffer[] dst, int maxRows) {
        int n = (int) Math.min(maxRows, totalRows - position);
        for (int i = 0; i < n; i++) {
            int row = (int) ((position + i) % rows);
            for (int h = 0; h < data.length; h++) {
                dst[h].put(data[h], row * dims[h], dims[h]);
            }
        }
        position += n;
        return n;
    }

    @Override
    public long rowCount() {
        return totalRows;
    }

    @Override
    public long position() {
        return position;
    }

    @Override
    public void skip(long skipRows) {
        if (position + skipRows > totalRows) {
            throw new IllegalStateException("cannot skip " + skipRows + " rows: only " + (totalRows - position) + " left");
        }
        position += skipRows;
    }

    @Override
    public void close() {
        // nothing held
    }
}
