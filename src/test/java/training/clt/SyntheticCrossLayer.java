package training.clt;

import activations.table.InMemoryActivationSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Activations from a known sparse cross-layer map: layer l has {@code perLayer} true features;
 * feature (l, i) fires independently with probability {@code p} at magnitude U(1, 2), its input
 * x_l carries it along a fixed direction (orthonormal within the layer) (plus small noise), and it writes a fixed
 * random direction into the target of every layer t >= l (norms differ per target, so the
 * concatenated direction is not just a copy). Targets are the sums; each layer's scale differs so
 * per-layer normalization matters.
 */
public final class SyntheticCrossLayer {

    final int layers;
    final int d;
    final int perLayer;
    /** True decoder of feature (l, i) into target t: decoders[l][i][t - l][d]. */
    final double[][][][] decoders;
    final double[][][] encoders; // [l][i][d]
    public final float[][] data; // interleaved in_0, out_0, ...
    final int rows;

    public SyntheticCrossLayer(int layers, int d, int perLayer, double p, int rows, long seed) {
        this.layers = layers;
        this.d = d;
        this.perLayer = perLayer;
        this.rows = rows;
        Random r = new Random(seed);
        encoders = new double[layers][perLayer][];
        decoders = new double[layers][perLayer][][];
        if (perLayer > d) {
            throw new IllegalArgumentException("orthonormal input directions need perLayer <= d");
        }
        for (int l = 0; l < layers; l++) {
            for (int i = 0; i < perLayer; i++) {
                // Orthonormal input directions (Gram-Schmidt), so the inputs encode the active set exactly.
                double[] v = unit(r, d, 1);
                for (int k = 0; k < i; k++) {
                    double dot = 0;
                    for (int j = 0; j < d; j++) {
                        dot += v[j] * encoders[l][k][j];
                    }
                    for (int j = 0; j < d; j++) {
                        v[j] -= dot * encoders[l][k][j];
                    }
                }
                double n = 0;
                for (double e : v) {
                    n += e * e;
                }
                for (int j = 0; j < d; j++) {
                    v[j] /= Math.sqrt(n);
                }
                encoders[l][i] = v;
                decoders[l][i] = new double[layers - l][];
                for (int t = l; t < layers; t++) {
                    decoders[l][i][t - l] = unit(r, d, 0.5 + r.nextDouble());
                }
            }
        }
        double[] inputScale = new double[layers];
        double[] outputScale = new double[layers];
        for (int l = 0; l < layers; l++) {
            inputScale[l] = Math.pow(3, l - 1);
            outputScale[l] = Math.pow(0.5, l);
        }
        data = new float[2 * layers][rows * d];
        double[][] a = new double[layers][perLayer];
        for (int row = 0; row < rows; row++) {
            for (int l = 0; l < layers; l++) {
                for (int i = 0; i < perLayer; i++) {
                    a[l][i] = r.nextDouble() < p ? 1 + r.nextDouble() : 0;
                }
            }
            for (int l = 0; l < layers; l++) {
                for (int j = 0; j < d; j++) {
                    double x = 0.02 * r.nextGaussian();
                    for (int i = 0; i < perLayer; i++) {
                        x += a[l][i] * encoders[l][i][j];
                    }
                    data[2 * l][row * d + j] = (float) (inputScale[l] * x);
                }
            }
            for (int t = 0; t < layers; t++) {
                for (int j = 0; j < d; j++) {
                    double y = 0;
                    for (int l = 0; l <= t; l++) {
                        for (int i = 0; i < perLayer; i++) {
                            y += a[l][i] * decoders[l][i][t - l][j];
                        }
                    }
                    data[2 * t + 1][row * d + j] = (float) (outputScale[t] * y);
                }
            }
        }
        // Fold the target scale into the true decoders so they are in raw units.
        for (int l = 0; l < layers; l++) {
            for (int i = 0; i < perLayer; i++) {
                for (int t = l; t < layers; t++) {
                    for (int j = 0; j < d; j++) {
                        decoders[l][i][t - l][j] *= outputScale[t];
                    }
                }
            }
        }
    }

    private static double[] unit(Random r, int d, double norm) {
        double[] v = new double[d];
        double s = 0;
        for (int j = 0; j < d; j++) {
            v[j] = r.nextGaussian();
            s += v[j] * v[j];
        }
        for (int j = 0; j < d; j++) {
            v[j] *= norm / Math.sqrt(s);
        }
        return v;
    }

    List<String> hooks() {
        List<String> hooks = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            hooks.add("blocks." + l + ".ln2.hook_normalized");
            hooks.add("blocks." + l + ".hook_mlp_out");
        }
        return hooks;
    }

    InMemoryActivationSource source(int useRows, int epochs) {
        float[][] cut = new float[data.length][];
        for (int h = 0; h < data.length; h++) {
            cut[h] = java.util.Arrays.copyOf(data[h], useRows * d);
        }
        int[] dims = new int[data.length];
        java.util.Arrays.fill(dims, d);
        return new InMemoryActivationSource(hooks(), cut, dims, epochs);
    }
}
