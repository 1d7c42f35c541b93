package training.sae;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.nio.ByteOrder;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;

/**
 * Element access to a dense, offset-0 ND4J array's native memory through an NIO view (no copy),
 * for the few steps ND4J has no allocation-free op for (per-row top-k selection). FLOAT and
 * DOUBLE arrays only.
 */
final class HostArray {

    private final FloatBuffer floats;
    private final DoubleBuffer doubles;
    private final int length;

    HostArray(INDArray array) {
        if (array.isView() || array.offset() != 0 || array.length() != array.data().length()) {
            throw new IllegalArgumentException("host access needs a whole, non-view array");
        }
        if (array.length() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("array of " + array.length() + " elements is too large for host access");
        }
        length = (int) array.length();
        if (array.dataType() == DataType.FLOAT) {
            floats = array.data().asNio().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
            doubles = null;
        } else if (array.dataType() == DataType.DOUBLE) {
            doubles = array.data().asNio().order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer();
            floats = null;
        } else {
            throw new IllegalArgumentException("host access supports FLOAT and DOUBLE, not " + array.dataType());
        }
    }

    int length() {
        return length;
    }

    double get(int i) {
        return floats != null ? floats.get(i) : doubles.get(i);
    }

    void set(int i, double v) {
        if (floats != null) {
            floats.put(i, (float) v);
        } else {
            doubles.put(i, v);
        }
    }

    boolean isFloat() {
        return floats != null;
    }

    /** Copies {@code n} elements starting at {@code from} into {@code dst} (an fp32 array only; bulk). */
    void readFloats(int from, float[] dst, int n) {
        floats.get(from, dst, 0, n);
    }

    /** Copies {@code n} elements starting at {@code from} into {@code dst}. */
    void read(int from, double[] dst, int n) {
        if (floats != null) {
            for (int i = 0; i < n; i++) {
                dst[i] = floats.get(from + i);
            }
        } else {
            doubles.get(from, dst, 0, n);
        }
    }
}
