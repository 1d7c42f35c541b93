package analysis.ablation;

import java.io.Serializable;

/** Running sums for mean ablation, mergeable across Spark tasks. */
public final class AblationMeans implements Serializable {

    private static final long serialVersionUID = 1L;

    public final double[] sum;
    public long count;

    public AblationMeans(int width) {
        this.sum = new double[width];
    }

    public AblationMeans merge(AblationMeans other) {
        for (int i = 0; i < sum.length; i++) {
            sum[i] += other.sum[i];
        }
        count += other.count;
        return this;
    }

    public float[] means() {
        if (count == 0) {
            throw new IllegalArgumentException("no positions to take the mean over; give a non-empty token table");
        }
        float[] m = new float[sum.length];
        for (int i = 0; i < m.length; i++) {
            m[i] = (float) (sum[i] / count);
        }
        return m;
    }
}
