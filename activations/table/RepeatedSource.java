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

    public RepeatedSource(Supplier<ActivationSource> open, int epochs) {
        if (epochs < 1) {
            throw new IllegalArgumentException("epochs is " + epochs + "; it must be >= 1");
        }
        this.open = open;
        this.epochs = epochs;
        this.current = open.get();
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
    public long position() {
        return position;
    }

    @Override
    public void close() {
        current.close();
    }
}
