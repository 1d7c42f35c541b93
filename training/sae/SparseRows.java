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

    // Matrices are arrays of rows: with one index for both operands C2 vectorizes the axpy loops
    // (measured 10-15 GFLOP/s a core against 2-3 with offsets into flat arrays, which it cannot
    // prove independent).

    /** out[r] += sum over row r's active entries of f_e w[col_e]; {@code w} [n][d], {@code out} [rows][d]. */
    public void decode(float[][] w, float[][] out) {
        int chunks = chunks(rows);
        IntStream.range(0, chunks).parallel().forEach(c -> {
            for (int r = c * rows / chunks; r < (c + 1) * rows / chunks; r++) {
                float[] o = out[r];
                for (int e = rowStart[r]; e < rowStart[r + 1]; e++) {
                    float a = f[e];
                    if (a != 0) {
                        axpy(a, w[col[e]], o);
                    }
                }
            }
        });
    }

    private static void axpy(float a, float[] x, float[] y) {
        for (int j = 0; j < y.length; j++) {
            y[j] += a * x[j];
        }
    }

    /**
     * out[e] (+)= a[row_e] . w[col_e] at every active entry (inactive entries: left, or 0 if not
     * {@code add}); {@code a} [rows][d], {@code w} [n][d].
     */
    public void dots(float[][] a, float[][] w, float[] out, boolean add) {
        dots(a, w, out, add, true);
    }

    /** out[e] := a[row_e] . w[col_e] at every entry, active or not (AuxK's, whose value may be 0). */
    public void dotsAll(float[][] a, float[][] w, float[] out) {
        dots(a, w, out, false, false);
    }

    private void dots(float[][] a, float[][] w, float[] out, boolean add, boolean activeOnly) {
        int chunks = chunks(rows);
        IntStream.range(0, chunks).parallel().forEach(c -> {
            float[] scratch = new float[a.length == 0 ? 0 : a[0].length];
            for (int r = c * rows / chunks; r < (c + 1) * rows / chunks; r++) {
                float[] ar = a[r];
                for (int e = rowStart[r]; e < rowStart[r + 1]; e++) {
                    if (activeOnly && f[e] == 0) {
                        if (!add) {
                            out[e] = 0;
                        }
                        continue;
                    }
                    float v = dot(ar, w[col[e]], scratch);
                    out[e] = add ? out[e] + v : v;
                }
            }
        });
    }

    /** Products in a vectorized pass, then eight partial sums (a float sum does not vectorize). */
    private static float dot(float[] a, float[] b, float[] t) {
        int d = t.length;
        for (int j = 0; j < d; j++) {
            t[j] = a[j] * b[j];
        }
        float s0 = 0;
        float s1 = 0;
        float s2 = 0;
        float s3 = 0;
        float s4 = 0;
        float s5 = 0;
        float s6 = 0;
        float s7 = 0;
        int j = 0;
        for (; j + 7 < d; j += 8) {
            s0 += t[j];
            s1 += t[j + 1];
            s2 += t[j + 2];
            s3 += t[j + 3];
            s4 += t[j + 4];
            s5 += t[j + 5];
            s6 += t[j + 6];
            s7 += t[j + 7];
        }
        for (; j < d; j++) {
            s0 += t[j];
        }
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
    }

    /**
     * out[i] += (sum over column i's inactive entries of a[row_e]) . w[i]: the summed dLoss/df over
     * the entries kept for a threshold window, as one axpy per entry and one dot per latent
     * instead of a dot per entry.
     */
    public void inactiveDots(float[][] a, float[][] w, double[] out) {
        byColumns();
        int chunks = chunks(n);
        int d = a.length == 0 ? 0 : a[0].length;
        IntStream.range(0, chunks).parallel().forEach(c -> {
            float[] sum = new float[d];
            float[] scratch = new float[d];
            for (int i = c * n / chunks; i < (c + 1) * n / chunks; i++) {
                boolean any = false;
                for (int k = colStart[i]; k < colStart[i + 1]; k++) {
                    int e = byColumn[k];
                    if (f[e] == 0) {
                        if (!any) {
                            java.util.Arrays.fill(sum, 0f);
                            any = true;
                        }
                        axpy(1f, a[row[e]], sum);
                    }
                }
                if (any) {
                    out[i] += dot(sum, w[i], scratch);
                }
            }
        });
    }

    /**
     * out[i] += sum over column i's entries of v_e a[row_e] (a sparse^T x dense product: the
     * weight gradients); {@code a} [rows][d], {@code out} [n][d]; entries with v 0 skipped.
     */
    public void transposeTimes(float[] v, float[][] a, float[][] out) {
        byColumns();
        int chunks = chunks(n);
        IntStream.range(0, chunks).parallel().forEach(c -> {
            for (int i = c * n / chunks; i < (c + 1) * n / chunks; i++) {
                float[] o = out[i];
                for (int k = colStart[i]; k < colStart[i + 1]; k++) {
                    int e = byColumn[k];
                    float s = v[e];
                    if (s != 0) {
                        axpy(s, a[row[e]], o);
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

    /** Rows [rows][cols] of a zeroed matrix, reusing {@code m} if it has the shape. */
    public static float[][] zeroed(float[][] m, int rows, int cols) {
        if (m == null || m.length != rows || (rows > 0 && m[0].length != cols)) {
            return new float[rows][cols];
        }
        IntStream.range(0, chunks(rows)).parallel().forEach(c -> {
            int chunks = chunks(rows);
            for (int r = c * rows / chunks; r < (c + 1) * rows / chunks; r++) {
                java.util.Arrays.fill(m[r], 0f);
            }
        });
        return m;
    }

    /** dst := a [rows, cols] (fp32, c order) as rows, reusing {@code dst} if it has the shape. */
    public static float[][] readRows(INDArray a, float[][] dst) {
        int rows = (int) a.size(0);
        int cols = (int) a.size(1);
        if (dst == null || dst.length != rows || (rows > 0 && dst[0].length != cols)) {
            dst = new float[rows][cols];
        }
        FloatBuffer buffer = floats(a);
        if (buffer == null) {
            buffer = floats(a.dup('c'));
        }
        for (int r = 0; r < rows; r++) {
            buffer.get(r * cols, dst[r], 0, cols);
        }
        return dst;
    }

    /** a [rows, cols] := src rows (fp32, c order). */
    public static void writeRows(float[][] src, INDArray a) {
        FloatBuffer buffer = floats(a);
        int cols = (int) a.size(1);
        if (buffer == null) {
            a.assign(org.nd4j.linalg.factory.Nd4j.createFromArray(src));
            return;
        }
        for (int r = 0; r < src.length; r++) {
            buffer.put(r * cols, src[r], 0, cols);
        }
    }

    /** dst [cols * rows] := src [rows][cols] transposed (c order), in cache-sized tiles, parallel over column tiles. */
    public static void transpose(float[][] src, float[] dst) {
        int rows = src.length;
        int cols = rows == 0 ? 0 : src[0].length;
        int tile = 32;
        int tiles = (cols + tile - 1) / tile;
        IntStream.range(0, tiles).parallel().forEach(t -> {
            int c0 = t * tile;
            int c1 = Math.min(cols, c0 + tile);
            for (int r0 = 0; r0 < rows; r0 += tile) {
                int r1 = Math.min(rows, r0 + tile);
                for (int c = c0; c < c1; c++) {
                    int o = c * rows;
                    for (int r = r0; r < r1; r++) {
                        dst[o + r] = src[r][c];
                    }
                }
            }
        });
    }

    // ---- host copies of ND4J arrays ----

    /** Whether {@code bytes} more fit in half of the Java heap still free (the sparse path's host copies). */
    public static boolean fitsHeap(long bytes) {
        Runtime runtime = Runtime.getRuntime();
        long free = runtime.maxMemory() - (runtime.totalMemory() - runtime.freeMemory());
        return bytes < free / 2;
    }

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
}
