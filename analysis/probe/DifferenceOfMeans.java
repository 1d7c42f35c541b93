package analysis.probe;

/**
 * The difference-of-means probe for binary labels: direction {@code mu_1 - mu_0} of the training
 * split's class means, and the threshold at the midpoint of the two projected class means,
 * {@code (mu_0 . dir + mu_1 . dir) / 2}; an example is class 1 when its projection exceeds it.
 */
public record DifferenceOfMeans(float[] direction, double threshold) {

    public static DifferenceOfMeans fit(float[][] x, int[] labels) {
        int d = x[0].length;
        double[][] sum = new double[2][d];
        long[] count = new long[2];
        for (int i = 0; i < x.length; i++) {
            if (labels[i] < 0 || labels[i] > 1) {
                throw new IllegalArgumentException("the difference-of-means probe needs binary labels (0 or 1), got " + labels[i]);
            }
            count[labels[i]]++;
            for (int j = 0; j < d; j++) {
                sum[labels[i]][j] += x[i][j];
            }
        }
        if (count[0] == 0 || count[1] == 0) {
            throw new IllegalArgumentException("the training split has examples of only one class; add examples of both");
        }
        float[] direction = new float[d];
        double mean0Projection = 0;
        double mean1Projection = 0;
        for (int j = 0; j < d; j++) {
            double m0 = sum[0][j] / count[0];
            double m1 = sum[1][j] / count[1];
            direction[j] = (float) (m1 - m0);
        }
        for (int j = 0; j < d; j++) {
            mean0Projection += sum[0][j] / count[0] * direction[j];
            mean1Projection += sum[1][j] / count[1] * direction[j];
        }
        return new DifferenceOfMeans(direction, (mean0Projection + mean1Projection) / 2);
    }

    public double project(float[] x) {
        double s = 0;
        for (int j = 0; j < x.length; j++) {
            s += direction[j] * (double) x[j];
        }
        return s;
    }

    public int predict(float[] x) {
        return project(x) > threshold ? 1 : 0;
    }

    public double accuracy(float[][] x, int[] labels) {
        int right = 0;
        for (int i = 0; i < x.length; i++) {
            right += predict(x[i]) == labels[i] ? 1 : 0;
        }
        return x.length == 0 ? Double.NaN : right / (double) x.length;
    }
}
