package training.sae;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.shape.Shape;

import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.stream.IntStream;

/**
 * Some entries of a [rows, n] latent matrix, by row (CSR): a batch's active latents and any
 * inactive entries a backward pass still needs (JumpReLU's threshold window), each with its
 * activation {@link #f} (0 for an entry kept only for its gradient), pre-activation {@link #pre}
 * and a gradient slot {@link #grad}; plus the products of such a sparse matrix with dense
 * row-major fp32 matrices on the host (plain Java loops the JIT vectorizes: contiguous axpy and
 * dot products of length d). The dense path multiplies [rows, n] x [n, d] for every one of the
 * n latents; these touch only the entries, which is what makes a step at small L0 cheaper.
 */
public final class SparseRows {

    /** Appends one row's entries. */
    public interface RowScan {
        void scan(int row, Sink sink);
    }

    /** A growing list of entries for the rows one worker scans. */
    public static final class Sink {
        int[] col = new int[1024];
        float[] f = new float[1024];
        float[] pre = new float[1024];
        int size;
        /** Per-worker scratch for the scan (a row buffer, accumulators), reused across batches. */
        public float[] row = new float[0];
        public double[] accumulator = new double[0];
        private boolean fresh;

        public void add(int column, float activation, float preActivation) {
            if (size == col.length) {
                int grown = 2 * size;
                col = java.util.Arrays.copyOf(col, grown);
                f = java.util.Arrays.copyOf(f, grown);
                pre = java.util.Arrays.copyOf(pre, grown);
            }
            col[size] = column;
            f[size] = activation;
            pre[size] = preActivation;
            size++;
        }

        /** {@link #row} with at least {@code n} elements. */
        public float[] row(int n) {
            if (row.length < n) {
                row = new float[n];
            }
            return row;
        }

        /** {@link #accumulator} with at least {@code n} elements, zeroed on the first call of each {@link #fill}. */
        public double[] accumulator(int n) {
            if (fresh) {
                if (accumulator.length < n) {
                    accumulator = new double[n];
                } else {
                    java.util.Arrays.fill(accumulator, 0, n, 0);
                }
                fresh = false;
            }
            return accumulator;
        }

        /** Whether this worker scanned any row (its accumulator holds sums) in the last fill. */
        public boolean used() {
            return !fresh;
        }
    }

    private int rows;
    private int n;
    private int size;
    public int[] rowStart = new int[1];
    public int[] row = new int[0];
    public int[] col = new int[0];
    public float[] f = new float[0];
    public float[] pre = new float[0];
    public float[] grad = new float[0];
    private int[] colStart = new int[1];
    private int[] byColumn = new int[0];
    private boolean columnsValid;
    private Sink[] sinks = new Sink[0];
    private int[] localEnd = new int[0];

    public int rows() {
        return rows;
    }

    public int columns() {
        return n;
    }

    /** Number of entries. */
    public int size() {
        return size;
    }

    /** Entries with a nonzero activation. */
    public int activeCount() {
        int count = 0;
        for (int e = 0; e < size; e++) {
            if (f[e] != 0) {
                count++;
            }
        }
        return count;
    }

    /** Worker count for [rows]-parallel loops: a few chunks per core, so uneven rows balance. */
    static int chunks(int rows) {
        return Math.max(1, Math.min(rows, 4 * Runtime.getRuntime().availableProcessors()));
    }

    /** Replaces the entries by what {@code scan} appends for each row (rows scanned in parallel); returns the sinks used. */
    public Sink[] fill(int rows, int n, RowScan scan) {
        this.rows = rows;
        this.n = n;
        int chunks = chunks(rows);
        if (sinks.length != chunks) {
            sinks = new Sink[chunks];
            for (int c = 0; c < chunks; c++) {
                sinks[c] = new Sink();
            }
        }
        if (localEnd.length < rows) {
            localEnd = new int[rows];
        }
        IntStream.range(0, chunks).parallel().forEach(c -> {
            Sink sink = sinks[c];
            sink.size = 0;
            sink.fresh = true;
            for (int r = c * rows / chunks; r < (c + 1) * rows / chunks; r++) {
                scan.scan(r, sink);
                localEnd[r] = sink.size;
            }
        });
        int[] offset = new int[chunks + 1];
        for (int c = 0; c < chunks; c++) {
            offset[c + 1] = offset[c] + sinks[c].size;
        }
        size = offset[chunks];
        ensureCapacity(size);
        if (rowStart.length < rows + 1) {
            rowStart = new int[rows + 1];
        }
        IntStream.range(0, chunks).parallel().forEach(c -> {
            Sink sink = sinks[c];
            System.arraycopy(sink.col, 0, col, offset[c], sink.size);
            System.arraycopy(sink.f, 0, f, offset[c], sink.size);
            System.arraycopy(sink.pre, 0, pre, offset[c], sink.size);
            int start = offset[c];
            for (int r = c * rows / chunks; r < (c + 1) * rows / chunks; r++) {
                rowStart[r] = start;
                int end = offset[c] + localEnd[r];
                for (int e = start; e < end; e++) {
                    row[e] = r;
                }
                start = end;
            }
        });
        rowStart[rows] = size;
        java.util.Arrays.fill(grad, 0, size, 0f);
        columnsValid = false;
        return sinks;
    }

    private void ensureCapacity(int entries) {
        if (col.length < entries) {
            int capacity = Math.max(entries, col.length + col.length / 2);
            row = new int[capacity];
            col = new int[capacity];
            f = new float[capacity];
            pre = new float[capacity];
            grad = new float[capacity];
        }
    }

    /** Per-column entry counts with {@code f != 0} (firing counts). */
    public double[] activeColumnCounts() {
        double[] counts = new double[n];
        for (int e = 0; e < size; e++) {
            if (f[e] != 0) {
                counts[col[e]]++;
            }
        }
        return counts;
    }

    /** The entries grouped by column (counting sort), for products that accumulate per latent. */
    private void byColumns() {
        if (columnsValid) {
            return;
        }
        if (colStart.length < n + 1) {
            colStart = new int[n + 1];
        } else {
            java.util.Arrays.fill(colStart, 0, n + 1, 0);
        }
        if (byColumn.length < size) {
            byColumn = new int[col.length];
        }
        for (int e = 0; e < size; e++) {
            colStart[col[e] + 1]++;
        }
        for (int i = 0; i < n; i++) {
            colStart[i + 1] += colStart[i];
        }
        int[] next = java.util.Arrays.copyOf(colStart, n);
        for (int e = 0; e < size; e++) {
            byColumn[next[col[e]]++] = e;
        }
        columnsValid = true;
    }

    /** out[r, :] += sum over row r's entries of f_e w[col_e, :]; {@code w} [n, d], {@code out} [rows, d]. */
    public void decode(float[] w, int d, float[] out) {
        int chunks = chunks(rows);
        IntStream.range(0, chunks).parallel().forEach(c -> {
            for (int r = c * rows / chunks; r < (c + 1) * rows / chunks; r++) {
                int o = r * d;
                for (int e = rowStart[r]; e < rowStart[r + 1]; e++) {
                    float a = f[e];
                    if (a == 0) {
                        continue;
                    }
                    int wo = col[e] * d;
                    for (int j = 0; j < d; j++) {
                        out[o + j] += a * w[wo + j];
                    }
                }
            }
        });
    }

    /** out[e] (+)= a[row_e, :] . w[col_e, :] for every entry; {@code a} [rows, d], {@code w} [n, d]. */
    public void dots(float[] a, float[] w, int d, float[] out, boolean add) {
        int chunks = chunks(rows);
        IntStream.range(0, chunks).parallel().forEach(c -> {
            for (int r = c * rows / chunks; r < (c + 1) * rows / chunks; r++) {
                int ao = r * d;
                for (int e = rowStart[r]; e < rowStart[r + 1]; e++) {
                    float v = dot(a, ao, w, col[e] * d, d);
                    out[e] = add ? out[e] + v : v;
                }
            }
        });
    }

    /** Four partial sums so the loop is not one long dependency chain. */
    private static float dot(float[] a, int ao, float[] b, int bo, int d) {
        float s0 = 0;
        float s1 = 0;
        float s2 = 0;
        float s3 = 0;
        int j = 0;
        for (; j + 3 < d; j += 4) {
            s0 += a[ao + j] * b[bo + j];
            s1 += a[ao + j + 1] * b[bo + j + 1];
            s2 += a[ao + j + 2] * b[bo + j + 2];
            s3 += a[ao + j + 3] * b[bo + j + 3];
        }
        for (; j < d; j++) {
            s0 += a[ao + j] * b[bo + j];
        }
        return (s0 + s1) + (s2 + s3);
    }

    /**
     * out[i, :] += sum over column i's entries of v_e a[row_e, :] (a sparse^T x dense product:
     * the weight gradients); {@code a} [rows, d], {@code out} [n, d]; entries with v 0 skipped.
     */
    public void transposeTimes(float[] v, float[] a, int d, float[] out) {
        byColumns();
        int chunks = chunks(n);
        IntStream.range(0, chunks).parallel().forEach(c -> {
            for (int i = c * n / chunks; i < (c + 1) * n / chunks; i++) {
                int o = i * d;
                for (int k = colStart[i]; k < colStart[i + 1]; k++) {
                    int e = byColumn[k];
                    float s = v[e];
                    if (s == 0) {
                        continue;
                    }
                    int ao = row[e] * d;
                    for (int j = 0; j < d; j++) {
                        out[o + j] += s * a[ao + j];
                    }
                }
            }
        });
    }

    /** out[i] += sum over column i's entries of v_e. */
    public void columnSums(float[] v, double[] out) {
        for (int e = 0; e < size; e++) {
            out[col[e]] += v[e];
        }
    }

    // ---- host copies of ND4J arrays ----

    /** A float view of a whole or contiguous (c-order) fp32 array's memory, no copy; null if not contiguous. */
    static FloatBuffer floats(INDArray a) {
        if (a.dataType() != DataType.FLOAT || a.length() > Integer.MAX_VALUE || a.ordering() != 'c'
                || !Shape.hasDefaultStridesForShape(a)) {
            return null;
        }
        FloatBuffer all = a.data().asNio().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        return all.slice((int) a.offset(), (int) a.length());
    }

    /** dst[0..length) := a's elements in c order (an fp32 array). */
    public static float[] read(INDArray a, float[] dst) {
        int length = (int) a.length();
        if (dst == null || dst.length < length) {
            dst = new float[length];
        }
        FloatBuffer buffer = floats(a);
        if (buffer == null) {
            buffer = floats(a.dup('c'));
        }
        buffer.get(0, dst, 0, length);
        return dst;
    }

    /** a := src[0..length) in c order (an fp32 array). */
    public static void write(float[] src, INDArray a) {
        FloatBuffer buffer = floats(a);
        if (buffer == null) {
            a.assign(org.nd4j.linalg.factory.Nd4j.createFromArray(java.util.Arrays.copyOf(src, (int) a.length())).reshape('c', a.shape()));
            return;
        }
        buffer.put(0, src, 0, (int) a.length());
    }

    /** dst [cols, rows] := src [rows, cols] transposed, in cache-sized tiles, parallel over tile rows. */
    public static void transpose(float[] src, int rows, int cols, float[] dst) {
        int tile = 64;
        int tiles = (rows + tile - 1) / tile;
        IntStream.range(0, tiles).parallel().forEach(t -> {
            int r0 = t * tile;
            int r1 = Math.min(rows, r0 + tile);
            for (int c0 = 0; c0 < cols; c0 += tile) {
                int c1 = Math.min(cols, c0 + tile);
                for (int r = r0; r < r1; r++) {
                    int so = r * cols;
                    for (int c = c0; c < c1; c++) {
                        dst[c * rows + r] = src[so + c];
                    }
                }
            }
        });
    }
}
