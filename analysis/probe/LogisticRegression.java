package analysis.probe;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * L2-regularised multinomial logistic regression, fitted full-batch with L-BFGS. The objective is
 * {@code J(W, b) = mean_i CE(softmax(x_i W^T + b), y_i) + (l2 / 2) ||W||^2} (biases not penalised),
 * computed in double with ND4J matrix products.
 *
 * <p>Written here because no library on Maven Central fits: Smile is GPL-3 and brings its own
 * native BLAS (bytedeco) beside ND4J's; liblinear-java's logistic regression is one-vs-rest, not
 * multinomial; Spark MLlib would put Spark (and Breeze) into analysis code; DL4J's OutputLayer
 * trains a network by minibatch updaters, with no gradient-tolerance stopping rule to report.
 */
public final class LogisticRegression {

    /** A fitted probe: weights [classes, d], biases [classes], and how the solver ended. */
    public record Fit(float[][] weights, float[] biases, int iterations, double objective, double gradientNorm) {

        public int predict(float[] x) {
            int best = 0;
            double bestScore = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < biases.length; c++) {
                double s = biases[c];
                for (int i = 0; i < x.length; i++) {
                    s += weights[c][i] * (double) x[i];
                }
                if (s > bestScore) {
                    bestScore = s;
                    best = c;
                }
            }
            return best;
        }

        public double accuracy(float[][] x, int[] labels) {
            int right = 0;
            for (int i = 0; i < x.length; i++) {
                right += predict(x[i]) == labels[i] ? 1 : 0;
            }
            return x.length == 0 ? Double.NaN : right / (double) x.length;
        }
    }

    private static final int HISTORY = 10;

    private final INDArray x;
    private final INDArray y;
    private final int n;
    private final int d;
    private final int classes;
    private final double l2;
    private final double[] mean;
    private final double[] scale;
    private final INDArray penaltyWeights;

    LogisticRegression(float[][] features, int[] labels, int classes, double l2) {
        if (features.length == 0) {
            throw new IllegalArgumentException("no training examples to fit a probe on");
        }
        this.n = features.length;
        this.d = features[0].length;
        this.classes = classes;
        this.l2 = l2;
        // The solver works on standardized features (a change of variables W' = W diag(scale),
        // b' = b + W mean, with the penalty still on W): the same optimum, but residual-stream
        // coordinates of very different sizes no longer make L-BFGS crawl.
        this.mean = new double[d];
        this.scale = new double[d];
        for (float[] row : features) {
            for (int j = 0; j < d; j++) {
                mean[j] += row[j] / (double) n;
            }
        }
        for (float[] row : features) {
            for (int j = 0; j < d; j++) {
                scale[j] += (row[j] - mean[j]) * (row[j] - mean[j]) / n;
            }
        }
        double[] inverseSquares = new double[d];
        for (int j = 0; j < d; j++) {
            scale[j] = scale[j] > 1e-24 ? Math.sqrt(scale[j]) : 1;
            inverseSquares[j] = 1 / (scale[j] * scale[j]);
        }
        this.penaltyWeights = Nd4j.createFromArray(inverseSquares);
        double[][] rows = new double[n][d];
        double[][] oneHot = new double[n][classes];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < d; j++) {
                rows[i][j] = (features[i][j] - mean[j]) / scale[j];
            }
            oneHot[i][labels[i]] = 1;
        }
        this.x = Nd4j.createFromArray(rows);
        this.y = Nd4j.createFromArray(oneHot);
    }

    /** Raw parameters (W row-major [classes, d], then b) to the solver's standardized ones. */
    private double[] toScaled(double[] theta) {
        double[] t = new double[theta.length];
        for (int c = 0; c < classes; c++) {
            double shift = 0;
            for (int j = 0; j < d; j++) {
                t[c * d + j] = theta[c * d + j] * scale[j];
                shift += theta[c * d + j] * mean[j];
            }
            t[classes * d + c] = theta[classes * d + c] + shift;
        }
        return t;
    }

    private double[] fromScaled(double[] scaled) {
        double[] t = new double[scaled.length];
        for (int c = 0; c < classes; c++) {
            double shift = 0;
            for (int j = 0; j < d; j++) {
                t[c * d + j] = scaled[c * d + j] / scale[j];
                shift += t[c * d + j] * mean[j];
            }
            t[classes * d + c] = scaled[classes * d + c] - shift;
        }
        return t;
    }

    /** Fits to {@code maxIterations} L-BFGS steps or until the gradient's largest entry is below {@code tolerance}. */
    public static Fit fit(float[][] features, int[] labels, int classes, double l2, int maxIterations, double tolerance) {
        if (classes < 2) {
            throw new IllegalArgumentException("a probe needs at least two classes; the labels have " + classes);
        }
        if (!(l2 >= 0)) {
            throw new IllegalArgumentException("the L2 coefficient must be >= 0, got " + l2);
        }
        return new LogisticRegression(features, labels, classes, l2).minimize(maxIterations, tolerance);
    }

    int parameterCount() {
        return classes * d + classes;
    }

    /** Objective at raw {@code theta} (W row-major [classes, d], then b); writes the raw gradient into {@code gradient}. */
    double objective(double[] theta, double[] gradient) {
        double[] scaledGradient = new double[theta.length];
        double f = scaledObjective(toScaled(theta), scaledGradient);
        // Chain rule through W' = W diag(scale), b' = b + W mean.
        for (int c = 0; c < classes; c++) {
            double gb = scaledGradient[classes * d + c];
            for (int j = 0; j < d; j++) {
                gradient[c * d + j] = scaledGradient[c * d + j] * scale[j] + gb * mean[j];
            }
            gradient[classes * d + c] = gb;
        }
        return f;
    }

    /** The same objective in the solver's variables: logits z W'^T + b', penalty (l2 / 2) sum (W'_cj / scale_j)^2. */
    private double scaledObjective(double[] theta, double[] gradient) {
        INDArray w = Nd4j.createFromArray(java.util.Arrays.copyOfRange(theta, 0, classes * d)).reshape(classes, d);
        INDArray b = Nd4j.createFromArray(java.util.Arrays.copyOfRange(theta, classes * d, theta.length));
        INDArray logits = x.mmul(w.transpose()).addiRowVector(b);
        INDArray max = logits.max(1);
        logits.subiColumnVector(max);
        INDArray p = org.nd4j.linalg.ops.transforms.Transforms.exp(logits, true);
        INDArray z = p.sum(1);
        p.diviColumnVector(z);
        // CE_i = log z_i - (logit_i,y - max_i), from the shifted logits.
        double ce = org.nd4j.linalg.ops.transforms.Transforms.log(z, true).sumNumber().doubleValue()
                - logits.mul(y).sumNumber().doubleValue();
        INDArray weighted = w.mulRowVector(penaltyWeights);
        double penalty = 0.5 * l2 * w.mul(weighted).sumNumber().doubleValue();
        INDArray g = p.subi(y).divi(n);
        INDArray gradW = g.transpose().mmul(x).addi(weighted.muli(l2));
        INDArray gradB = g.sum(0);
        System.arraycopy(gradW.reshape(-1).toDoubleVector(), 0, gradient, 0, classes * d);
        System.arraycopy(gradB.toDoubleVector(), 0, gradient, classes * d, classes);
        return ce / n + penalty;
    }

    private Fit minimize(int maxIterations, double tolerance) {
        int m = parameterCount();
        double[] theta = new double[m];
        double[] grad = new double[m];
        double f = scaledObjective(theta, grad);
        double[][] s = new double[HISTORY][];
        double[][] yk = new double[HISTORY][];
        double[] rho = new double[HISTORY];
        int stored = 0;
        int iteration = 0;
        double[] nextGrad = new double[m];
        while (iteration < maxIterations && maxAbs(grad) > tolerance) {
            // Two-loop recursion: direction = -H grad.
            double[] q = grad.clone();
            double[] alpha = new double[HISTORY];
            for (int k = stored - 1; k >= Math.max(0, stored - HISTORY); k--) {
                int at = k % HISTORY;
                alpha[at] = rho[at] * dot(s[at], q);
                axpy(-alpha[at], yk[at], q);
            }
            double gamma = stored == 0 ? 1.0 / Math.max(1e-12, Math.sqrt(dot(grad, grad)))
                    : dot(s[(stored - 1) % HISTORY], yk[(stored - 1) % HISTORY]) / dot(yk[(stored - 1) % HISTORY], yk[(stored - 1) % HISTORY]);
            for (int i = 0; i < m; i++) {
                q[i] *= gamma;
            }
            for (int k = Math.max(0, stored - HISTORY); k < stored; k++) {
                int at = k % HISTORY;
                double beta = rho[at] * dot(yk[at], q);
                axpy(alpha[at] - beta, s[at], q);
            }
            double[] direction = q;
            for (int i = 0; i < m; i++) {
                direction[i] = -direction[i];
            }
            double slope = dot(grad, direction);
            if (slope >= 0) {
                // Not a descent direction (lost curvature): restart from steepest descent.
                stored = 0;
                for (int i = 0; i < m; i++) {
                    direction[i] = -grad[i];
                }
                slope = dot(grad, direction);
            }
            // Backtracking line search (Armijo).
            double step = 1;
            double[] candidate = new double[m];
            double fNew;
            int halvings = 0;
            while (true) {
                for (int i = 0; i < m; i++) {
                    candidate[i] = theta[i] + step * direction[i];
                }
                fNew = scaledObjective(candidate, nextGrad);
                if (fNew <= f + 1e-4 * step * slope || halvings > 50) {
                    break;
                }
                step *= 0.5;
                halvings++;
            }
            double[] sk = new double[m];
            double[] ykNew = new double[m];
            for (int i = 0; i < m; i++) {
                sk[i] = candidate[i] - theta[i];
                ykNew[i] = nextGrad[i] - grad[i];
            }
            double sy = dot(sk, ykNew);
            double previous = f;
            theta = candidate;
            System.arraycopy(nextGrad, 0, grad, 0, m);
            f = fNew;
            iteration++;
            if (sy > 1e-16) {
                int at = stored % HISTORY;
                s[at] = sk;
                yk[at] = ykNew;
                rho[at] = 1 / sy;
                stored++;
            }
            if (Math.abs(previous - f) <= 1e-15 * Math.max(1, Math.abs(f))) {
                break;
            }
        }
        double[] raw = fromScaled(theta);
        double[] rawGradient = new double[m];
        objective(raw, rawGradient);
        float[][] weights = new float[classes][d];
        float[] biases = new float[classes];
        for (int c = 0; c < classes; c++) {
            for (int j = 0; j < d; j++) {
                weights[c][j] = (float) raw[c * d + j];
            }
            biases[c] = (float) raw[classes * d + c];
        }
        return new Fit(weights, biases, iteration, f, maxAbs(rawGradient));
    }

    private static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += a[i] * b[i];
        }
        return s;
    }

    private static void axpy(double a, double[] x, double[] y) {
        for (int i = 0; i < x.length; i++) {
            y[i] += a * x[i];
        }
    }

    private static double maxAbs(double[] v) {
        double m = 0;
        for (double e : v) {
            m = Math.max(m, Math.abs(e));
        }
        return m;
    }
}
