package training.optim;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.schedule.ISchedule;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class OptimTest {

    @Test
    void learningRateWarmsUpHoldsThenDecaysOverTheLastFifth() {
        ISchedule lr = Schedules.learningRate(1.0, 4, 100, 0.2);
        assertEquals(0.25, lr.valueAt(0, 0), 1e-12);
        assertEquals(0.75, lr.valueAt(2, 0), 1e-12);
        assertEquals(1.0, lr.valueAt(3, 0), 1e-12);
        assertEquals(1.0, lr.valueAt(79, 0), 1e-12);
        assertEquals(1.0, lr.valueAt(80, 0), 1e-12);
        assertEquals(0.5, lr.valueAt(90, 0), 1e-12);
        assertEquals(0.05, lr.valueAt(99, 0), 1e-12);
        ISchedule lambda = Schedules.sparsityCoefficient(2.0, 10);
        assertEquals(0.2, lambda.valueAt(0, 0), 1e-12);
        assertEquals(2.0, lambda.valueAt(500, 0), 1e-12);
    }

    @Test
    void adamMatchesTheTextbookUpdate() {
        double lr = 0.1;
        double b1 = 0.9;
        double b2 = 0.99;
        double eps = 1e-8;
        AdamOptimizer adam = new AdamOptimizer(3, Schedules.learningRate(lr, 0, 1000, 0), b1, b2, eps, DataType.DOUBLE);
        INDArray params = Nd4j.createFromArray(new double[][] {{1.0, -2.0, 0.5}});
        double[] p = {1.0, -2.0, 0.5};
        double[] m = new double[3];
        double[] v = new double[3];
        double[][] grads = {{0.3, -1.0, 2.0}, {0.1, 0.4, -0.5}, {-0.2, 0.0, 1.0}};
        for (int t = 0; t < grads.length; t++) {
            adam.step(params, Nd4j.createFromArray(new double[][] {grads[t]}), t);
            for (int i = 0; i < 3; i++) {
                m[i] = b1 * m[i] + (1 - b1) * grads[t][i];
                v[i] = b2 * v[i] + (1 - b2) * grads[t][i] * grads[t][i];
                double mHat = m[i] / (1 - Math.pow(b1, t + 1));
                double vHat = v[i] / (1 - Math.pow(b2, t + 1));
                p[i] -= lr * mHat / (Math.sqrt(vHat) + eps);
            }
        }
        assertArrayEquals(p, params.toDoubleVector(), 1e-6);
    }

    @Test
    void clippingScalesToTheGlobalNormOnlyWhenAbove() {
        INDArray g = Nd4j.createFromArray(new double[][] {{3.0, 4.0}});
        assertEquals(5.0, GradientClipping.clipGlobalNorm(g, 1.0), 1e-12);
        assertArrayEquals(new double[] {0.6, 0.8}, g.toDoubleVector(), 1e-12);
        INDArray small = Nd4j.createFromArray(new double[][] {{0.3, 0.4}});
        GradientClipping.clipGlobalNorm(small, 1.0);
        assertArrayEquals(new double[] {0.3, 0.4}, small.toDoubleVector(), 1e-12);
    }
}
