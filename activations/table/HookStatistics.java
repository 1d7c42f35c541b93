package activations.table;

import com.fasterxml.jackson.annotation.JsonCreator;
import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;

import java.util.Objects;

/**
 * Running statistics of one hook's activation rows: row count, sum of L2 norms, and per-dimension
 * sum and sum of squares, all in double so that millions of rows add up without fp32 drift.
 * Shards compute them while writing; {@link #merge} combines shards (sums are order-independent
 * up to double rounding), and trainers use {@link #meanNorm()} / {@link #mean()} for input
 * normalisation and decoder-bias initialisation without another pass over the data.
 */
@JsonPropertyOrder({"count", "sumNorm", "sum", "sumSquares"})
public final class HookStatistics {

    private long count;
    private double sumNorm;
    private final double[] sum;
    private final double[] sumSquares;

    public HookStatistics(int dim) {
        if (dim <= 0) {
            throw new IllegalArgumentException("hook width must be positive, got " + dim);
        }
        this.sum = new double[dim];
        this.sumSquares = new double[dim];
    }

    @JsonCreator
    public HookStatistics(@JsonProperty("count") long count, @JsonProperty("sumNorm") double sumNorm,
                          @JsonProperty("sum") double[] sum, @JsonProperty("sumSquares") double[] sumSquares) {
        Objects.requireNonNull(sum, "statistics need 'sum'");
        Objects.requireNonNull(sumSquares, "statistics need 'sumSquares'");
        if (sum.length != sumSquares.length || sum.length == 0) {
            throw new IllegalArgumentException("statistics 'sum' and 'sumSquares' must have the same positive length, got "
                    + sum.length + " and " + sumSquares.length);
        }
        this.count = count;
        this.sumNorm = sumNorm;
        this.sum = sum.clone();
        this.sumSquares = sumSquares.clone();
    }

    /**
     * Adds one row ({@code dim()} floats from {@code row[offset]}) and returns its squared L2 norm,
     * which is non-finite exactly when some element is (a double sum of squared floats cannot
     * overflow), so callers get their NaN/Inf check for free.
     */
    public double add(float[] row, int offset) {
        double squares = 0;
        for (int j = 0; j < sum.length; j++) {
            double v = row[offset + j];
            sum[j] += v;
            sumSquares[j] += v * v;
            squares += v * v;
        }
        count++;
        sumNorm += Math.sqrt(squares);
        return squares;
    }

    /** Adds another shard's statistics of the same hook into this one. */
    public HookStatistics merge(HookStatistics other) {
        if (other.sum.length != sum.length) {
            throw new IllegalArgumentException("cannot merge statistics of width " + other.sum.length + " into width " + sum.length);
        }
        count += other.count;
        sumNorm += other.sumNorm;
        for (int j = 0; j < sum.length; j++) {
            sum[j] += other.sum[j];
            sumSquares[j] += other.sumSquares[j];
        }
        return this;
    }

    public HookStatistics copy() {
        return new HookStatistics(count, sumNorm, sum, sumSquares);
    }

    @JsonIgnore
    public int dim() {
        return sum.length;
    }

    @JsonProperty("count")
    public long count() {
        return count;
    }

    @JsonProperty("sumNorm")
    public double sumNorm() {
        return sumNorm;
    }

    @JsonProperty("sum")
    public double[] sum() {
        return sum.clone();
    }

    @JsonProperty("sumSquares")
    public double[] sumSquares() {
        return sumSquares.clone();
    }

    /** Mean L2 norm of a row; NaN when empty. */
    public double meanNorm() {
        return count == 0 ? Double.NaN : sumNorm / count;
    }

    /** Per-dimension mean; NaN when empty. */
    public double[] mean() {
        double[] mean = new double[sum.length];
        for (int j = 0; j < mean.length; j++) {
            mean[j] = count == 0 ? Double.NaN : sum[j] / count;
        }
        return mean;
    }

    /** Per-dimension population variance (E[x^2] - E[x]^2, clamped at 0 against rounding); NaN when empty. */
    public double[] variance() {
        double[] variance = new double[sum.length];
        for (int j = 0; j < variance.length; j++) {
            if (count == 0) {
                variance[j] = Double.NaN;
            } else {
                double mean = sum[j] / count;
                variance[j] = Math.max(0, sumSquares[j] / count - mean * mean);
            }
        }
        return variance;
    }
}
