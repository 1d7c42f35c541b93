package activations.table;

import java.nio.FloatBuffer;
import java.util.List;

/**
 * A stream of activation rows, decoded to fp32, for one or more hooks read side by side (an SAE
 * reads one hook; a transcoder reads its input and output hooks; a CLT reads every layer's pair).
 * Row i of every hook belongs to the same token. Implementations decode straight into the
 * caller's buffers, so a trainer's batch buffer (an ND4J array's native memory) is filled without
 * a copy.
 */
public interface ActivationSource extends AutoCloseable {

    /** Hook names, in the order of the buffers passed to {@link #read}. */
    List<String> hooks();

    /** Width of each hook's rows, in the order of {@link #hooks()}. */
    int[] dims();

    /**
     * Fills up to {@code maxRows} rows of every hook into {@code dst[h]} (row-major, {@code dims()[h]}
     * floats a row) from each buffer's current position. Returns the rows written; 0 at the end.
     */
    int read(FloatBuffer[] dst, int maxRows);

    /** Rows handed out so far, the data position a checkpoint records. */
    long position();

    /** Rows this source hands out in all, or -1 when it cannot tell without reading them. */
    default long rowCount() {
        return -1;
    }

    /**
     * Skips rows so that the next {@link #read} continues from {@code rows} rows further on, as it
     * would have without the skip (used to resume a run at its checkpointed data position).
     */
    default void skip(long rows) {
        int[] dims = dims();
        int chunk = 1024;
        FloatBuffer[] scratch = new FloatBuffer[dims.length];
        for (int h = 0; h < dims.length; h++) {
            scratch[h] = FloatBuffer.allocate(chunk * dims[h]);
        }
        long left = rows;
        while (left > 0) {
            for (FloatBuffer b : scratch) {
                b.clear();
            }
            int n = read(scratch, (int) Math.min(chunk, left));
            if (n == 0) {
                throw new IllegalStateException("cannot skip " + rows + " rows: the activations end after "
                        + (rows - left) + "; resume against the same activation cache the run started on");
            }
            left -= n;
        }
    }

    @Override
    void close();
}
