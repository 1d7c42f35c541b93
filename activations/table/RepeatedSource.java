package activations.table;

import java.nio.FloatBuffer;
import java.util.List;
import java.util.function.Supplier;

/**
 * Several passes (epochs) over an activation source, reopened for each pass: small caches can
 * train dictionaries longer than one pass allows. Positions count across passes.
 */
public final class RepeatedSource implements ActivationSource {

    private final Supplier<ActivationSource> open;
    private final int epochs;
    private ActivationSource current;
    private int epoch;
    private long position;
    private final long rowsPerEpoch;

    public RepeatedSource(Supplier<ActivationSource> open, int epochs) {
        if (epochs < 1) {
            throw new IllegalArgumentException("epochs is " + epochs + "; it must be >= 1");
        }
        this.open = open;
        this.epochs = epochs;
        this.current = open.get();
        // A source that knows its row count lets skip() jump epochs without reading them.
        this.rowsPerEpoch = current.rowCount();
    }

    @Override
    public List<String> hooks() {
        return current.hooks();
    }

    @Override
    public int[] dims() {
        return current.dims();
    }

    @Override
    public int read(FloatBuffer[] dst, int maxRows) {
        while (true) {
            int n = current.read(dst, maxRows);
            if (n > 0) {
                position += n;
                return n;
            }
            if (epoch + 1 >= epochs) {
                return 0;
            }
            current.close();
            epoch++;
            current = open.get();
        }
    }

    @Override
    public void skip(long rows) {
        if (rowsPerEpoch <= 0) {
            ActivationSource.super.skip(rows);
            return;
        }
        long target = position + rows;
        int targetEpoch = (int) (target / rowsPerEpoch);
        if (targetEpoch >= epochs) {
            throw new IllegalStateException("cannot skip to row " + target + ": " + epochs + " epochs of " + rowsPerEpoch
                    + " rows end before it; resume with the settings the run started with");
        }
        if (targetEpoch != epoch) {
            current.close();
            epoch = targetEpoch;
            current = open.get();
            current.skip(target % rowsPerEpoch);
        } else {
            current.skip(rows);
        }
        position = target;
    }

    @Override
    public long position() {
        return position;
    }

    @Override
    public void close() {
        current.close();
    }
}
