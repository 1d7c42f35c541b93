package analysis.probe;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LogisticRegressionTest {

    static float[][] gaussian(Random random, int n, int d) {
        float[][] x = new float[n][d];
        for (float[] row : x) {
            for (int j = 0; j < d; j++) {
                row[j] = (float) random.nextGaussian();
            }
        }
        return x;
    }

    /** Labels argmax_c (x . a_c + noise): linear with some overlap, so the data are not separable. */
    static int[] plantedLabels(Random random, float[][] x, float[][] a, double noise) {
        int[] y = new int[x.length];
        for (int i = 0; i < x.length; i++) {
            double best = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < a.length; c++) {
                double s = random.nextGaussian() * noise;
                for (int j = 0; j < x[i].length; j++) {
                    s += a[c][j] * x[i][j];
                }
                if (s > best) {
                    best = s;
                    y[i] = c;
                }
            }
        }
        return y;
    }

    /** Coordinates shifted and scaled over four orders of magnitude, as residual streams are (the solver standardizes). */
    static void badlyScaled(float[][] x) {
        for (float[] row : x) {
            for (int j = 0; j < row.length; j++) {
                row[j] = (float) (row[j] * Math.pow(10, j % 4 - 2) + (j % 3) * 0.5);
            }
        }
    }

    @Test
    void gradientMatchesFiniteDifferences() {
        Random random = new Random(1);
        float[][] x = gaussian(random, 40, 5);
        int[] y = plantedLabels(random, x, gaussian(random, 3, 5), 1.0);
        badlyScaled(x);
        LogisticRegression lr = new LogisticRegression(x, y, 3, 0.3);
        double[] theta = new double[lr.parameterCount()];
        for (int i = 0; i < theta.length; i++) {
            theta[i] = random.nextGaussian() * 0.5;
        }
        double[] grad = new double[theta.length];
        lr.objective(theta, grad);
        double h = 1e-6;
        for (int i = 0; i < theta.length; i++) {
            double[] plus = theta.clone();
            double[] minus = theta.clone();
            plus[i] += h;
            minus[i] -= h;
            double numeric = (lr.objective(plus, new double[theta.length]) - lr.objective(minus, new double[theta.length])) / (2 * h);
            assertEquals(numeric, grad[i], 1e-6 * Math.max(1, Math.abs(numeric)), "parameter " + i);
        }
    }

    @Test
    void oneDimensionalOptimumMatchesTheHandDerivedCondition() {
        // x = -1 (class 0), +1 (class 1). By symmetry W = [-a, a], equal biases; every example has margin 2a, so
        // J(a) = log(1 + exp(-2a)) + lambda a^2 and J'(a) = 0 gives sigmoid(-2a) = lambda a. Solved here by bisection.
        double lambda = 0.1;
        double lo = 0;
        double hi = 10;
        for (int i = 0; i < 200; i++) {
            double mid = (lo + hi) / 2;
            if (1 / (1 + Math.exp(2 * mid)) > lambda * mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        LogisticRegression.Fit fit = LogisticRegression.fit(new float[][]{{-1}, {1}}, new int[]{0, 1}, 2, lambda, 200, 1e-10);
        assertEquals(lo, fit.weights()[1][0], 1e-6);
        assertEquals(-lo, fit.weights()[0][0], 1e-6);
        assertEquals(fit.biases()[0], fit.biases()[1], 1e-6);
        assertEquals(Math.log1p(Math.exp(-2 * lo)) + lambda * lo * lo, fit.objective(), 1e-9);
    }

    @Test
    void theSolutionIsStationaryAndRecoversAPlantedLinearLabel() {
        Random random = new Random(2);
        int d = 16;
        float[][] a = gaussian(random, 3, d);
        float[][] x = gaussian(random, 600, d);
        int[] y = plantedLabels(random, x, a, 0.5);
        badlyScaled(x);
        float[][] xTrain = java.util.Arrays.copyOfRange(x, 0, 500);
        int[] yTrain = java.util.Arrays.copyOfRange(y, 0, 500);
        LogisticRegression.Fit fit = LogisticRegression.fit(xTrain, yTrain, 3, 1e-3, 1000, 1e-8);
        assertTrue(fit.gradientNorm() < 1e-6, "stationary: gradient " + fit.gradientNorm() + " after " + fit.iterations());
        // Recompute the gradient independently at the returned (float) solution: the optimality condition.
        double[] theta = new double[3 * d + 3];
        for (int c = 0; c < 3; c++) {
            for (int j = 0; j < d; j++) {
                theta[c * d + j] = fit.weights()[c][j];
            }
            theta[3 * d + c] = fit.biases()[c];
        }
        double[] grad = new double[theta.length];
        new LogisticRegression(xTrain, yTrain, 3, 1e-3).objective(theta, grad);
        for (double g : grad) {
            assertEquals(0, g, 1e-4);
        }

        // On the same label with well-scaled coordinates the probe recovers it on held-out data.
        float[][] plain = gaussian(new Random(2), 600, d);
        int[] labels = plantedLabels(new Random(3), plain, a, 0.5);
        LogisticRegression.Fit good = LogisticRegression.fit(java.util.Arrays.copyOfRange(plain, 0, 500),
                java.util.Arrays.copyOfRange(labels, 0, 500), 3, 1e-3, 1000, 1e-8);
        double held = good.accuracy(java.util.Arrays.copyOfRange(plain, 500, 600), java.util.Arrays.copyOfRange(labels, 500, 600));
        assertTrue(held > 0.85, "held-out accuracy " + held);
    }

    @Test
    void differenceOfMeansThresholdsAtTheMidpointOfTheProjectedMeans() {
        float[][] x = {{0, 0}, {2, 0}, {4, 2}, {6, 2}};
        DifferenceOfMeans p = DifferenceOfMeans.fit(x, new int[]{0, 0, 1, 1});
        // Means (1, 0) and (5, 2): direction (4, 2); projections 4 and 24; threshold 14.
        assertEquals(4, p.direction()[0]);
        assertEquals(2, p.direction()[1]);
        assertEquals(14, p.threshold(), 1e-9);
        assertEquals(1.0, p.accuracy(x, new int[]{0, 0, 1, 1}));
        assertEquals(0, p.predict(new float[]{3.4f, 0}));
        assertEquals(1, p.predict(new float[]{3.6f, 0}));
    }

    @Test
    void badLabelsAreOneLineErrors() {
        assertEquals("every example has the label 'yes'; a probe needs at least two classes", assertThrows(IllegalArgumentException.class,
                () -> LinearProbes.fit(List.of("h"), new long[]{0, 1}, List.of("yes", "yes"), new float[][][]{{{1}, {2}}}, 0.1, 10))
                .getMessage());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> LinearProbes.fit(List.of("h"), new long[0], List.of(),
                new float[][][]{{}}, 0.1, 10)).getMessage().startsWith("the data has no examples"));
        assertEquals(List.of("10", "2", "x"), LinearProbes.classes(List.of("10", "x", "2")),
                "strings sort as strings when not all are numbers");
        assertEquals(List.of("2", "10"), LinearProbes.classes(List.of("10", "2", "10")), "numbers sort numerically");
    }
}
