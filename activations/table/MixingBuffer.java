package activations.table;

import java.nio.FloatBuffer;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Shuffles a stream of activation rows within a buffer of {@code capacity} rows, so a trainer does
 * not see long runs of tokens from the same sequence (neighbouring tokens' activations are strongly
 * correlated). Each output row is a uniformly random buffered row, whose slot is refilled with the
 * next input row; when the input ends, the buffer drains in random order. A row thus leaves about
 * {@code capacity} rows after it arrived, on average. All hooks of a row move together.
 * <p>
 * The order depends only on the seed and the input stream, never on how callers batch their reads,
 * so {@link #skip(long)} of N rows followed by reads gives exactly the rows that reading N rows and
 * then reading would have: a resumed trainer sees the same stream. Skipping still reads the
 * skipped rows from the source (the buffer's contents depend on them) but copies nothing out; at
 * hundreds of thousands of rows a second it costs about 1% of the training it replays.
 */
public final class MixingBuffer implements ActivationSource {

    private static final int STAGING_ROWS = 512;

    private final ActivationSource source;
    private final List<String> hooks;
    private final int[] dims;
    private final int capacity;
    private final SplittableRandom random;
    private final float[][] slots;
    private final float[][] staging;
    private final FloatBuffer[] stagingViews;
    private int size;
    private int stagedRows;
    private int stagedNext;
    private boolean filled;
    private boolean sourceDone;
    private long position;

    public MixingBuffer(ActivationSource source, int capacity, long seed) {
        if (capacity < 1) {
            throw new IllegalArgumentException("mixing buffer capacity must be at least 1 row, got " + capacity);
        }
        this.source = source;
        this.hooks = source.hooks();
        this.dims = source.dims();
        this.capacity = capacity;
        this.random = new SplittableRandom(seed);
        this.slots = new float[dims.length][];
        this.staging = new float[dims.length][];
        this.stagingViews = new FloatBuffer[dims.length];
        int stagingRows = Math.min(STAGING_ROWS, capacity);
        for (int h = 0; h < dims.length; h++) {
            long floats = (long) capacity * dims[h];
            if (floats > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException("mixing buffer of " + capacity + " rows x " + dims[h]
                        + " floats is over 2^31 floats for hook " + hooks.get(h) + "; use a smaller capacity");
            }
            slots[h] = new float[(int) floats];
            staging[h] = new float[stagingRows * dims[h]];
            stagingViews[h] = FloatBuffer.wrap(staging[h]);
        }
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
    public long position() {
        return position;
    }

    @Override
    public int read(FloatBuffer[] dst, int maxRows) {
        if (dst.length != dims.length) {
            throw new IllegalArgumentException("read needs one buffer per hook " + hooks + ", got " + dst.length);
        }
        fillOnce();
        int done = 0;
        while (done < maxRows && size > 0) {
            int slot = random.nextInt(size);
            for (int h = 0; h < dims.length; h++) {
                dst[h].put(slots[h], slot * dims[h], dims[h]);
            }
            replace(slot);
            done++;
        }
        position += done;
        return done;
    }

    /** Advances exactly as reading would (same random draws, same refills), without copying rows out. */
    @Override
    public void skip(long rows) {
        fillOnce();
        for (long i = 0; i < rows; i++) {
            if (size == 0) {
                throw new IllegalStateException("cannot skip " + rows + " rows: the activations end after " + i
                        + "; resume against the same activation cache the run started on");
            }
            replace(random.nextInt(size));
            position++;
        }
    }

    /** Refills the emptied slot with the next input row, or, once the input is exhausted, with the last buffered row. */
    private void replace(int slot) {
        if (stagedNext == stagedRows && !sourceDone) {
            stage();
        }
        if (stagedNext < stagedRows) {
            for (int h = 0; h < dims.length; h++) {
                System.arraycopy(staging[h], stagedNext * dims[h], slots[h], slot * dims[h], dims[h]);
            }
            stagedNext++;
        } else {
            size--;
            if (slot != size) {
                for (int h = 0; h < dims.length; h++) {
                    System.arraycopy(slots[h], size * dims[h], slots[h], slot * dims[h], dims[h]);
                }
            }
        }
    }

    private void stage() {
        for (FloatBuffer view : stagingViews) {
            view.clear();
        }
        stagedRows = source.read(stagingViews, staging[0].length / dims[0]);
        stagedNext = 0;
        sourceDone = stagedRows == 0;
    }

    /** The first read fills the buffer straight from the source. */
    private void fillOnce() {
        if (filled) {
            return;
        }
        filled = true;
        FloatBuffer[] views = new FloatBuffer[dims.length];
        while (size < capacity) {
            for (int h = 0; h < dims.length; h++) {
                views[h] = FloatBuffer.wrap(slots[h], size * dims[h], (capacity - size) * dims[h]);
            }
            int n = source.read(views, capacity - size);
            if (n == 0) {
                sourceDone = true;
                break;
            }
            size += n;
        }
    }

    @Override
    public void close() {
        source.close();
    }
}
