package training.clt;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.schedule.FixedSchedule;
import training.optim.AdamOptimizer;
import training.optim.GradientClipping;

import java.util.Locale;

/**
 * CLT training-step throughput against the machine's own gemm speed, measured in the same run.
 * Default shape: 4 layers, d 256, 4096 features per layer, batch 4096 (override with args
 * {@code layers d features batch steps thresholdInit}). Dense-equivalent FLOPs per token: forward
 * {@code 2 (d F L) + 2 (F d L (L + 1) / 2)}, times 3 for forward + backward. The reference is
 * {@code Nd4j.gemm} into preallocated outputs at the step's own shapes (encoder forward
 * [B,d]x[d,F], decoder forward [B,F]x[F,d], and the transposed gradient products). Target ratio >= 0.6.
 */
public final class CltStepBenchmark {

    public static void main(String[] args) {
        int layers = args.length > 0 ? Integer.parseInt(args[0]) : 4;
        int d = args.length > 1 ? Integer.parseInt(args[1]) : 256;
        int features = args.length > 2 ? Integer.parseInt(args[2]) : 4096;
        int batch = args.length > 3 ? Integer.parseInt(args[3]) : 4096;
        int steps = args.length > 4 ? Integer.parseInt(args[4]) : 6;
        // 0.3 puts about 2.5% of features above threshold on these random inputs (L0 ~100 per layer,
        // as in a trained CLT); a low threshold makes ~40% fire and costs more tanh work.
        double thresholdInit = args.length > 5 ? Double.parseDouble(args[5]) : 0.3;

        CltConfig config = CltConfig.builder(layers, d, features).batchSize(batch).totalTokens((long) batch * steps)
                .thresholdInit(thresholdInit).preActLossCoefficient(3e-6).build();
        CrossLayerTranscoder.MemoryEstimate memory = CrossLayerTranscoder.estimateMemory(config);
        System.out.printf(Locale.ROOT, "CLT L=%d d=%d F=%d batch=%d: %d parameters, needs %.2f GiB%n", layers, d, features, batch,
                memory.parameters(), memory.totalBytes() / (double) (1L << 30));
        CrossLayerTranscoder clt = new CrossLayerTranscoder(config, DataType.FLOAT);
        clt.initialize(1);
        boolean[] dead = new boolean[layers * features];
        for (int i = 0; i < dead.length; i += 7) {
            dead[i] = true; // exercise the pre-activation loss as a real run does
        }
        clt.setDeadFeatures(dead);
        AdamOptimizer adam = new AdamOptimizer(clt.parameters().length(), new FixedSchedule(1e-4), 0.9, 0.999, 1e-8, DataType.FLOAT);
        INDArray[] x = new INDArray[layers];
        INDArray[] y = new INDArray[layers];
        Nd4j.getRandom().setSeed(3);
        for (int l = 0; l < layers; l++) {
            x[l] = Nd4j.randn(DataType.FLOAT, batch, d);
            y[l] = Nd4j.randn(DataType.FLOAT, batch, d);
        }
        for (int i = 0; i < 2; i++) {
            step(clt, adam, x, y, i);
        }
        long start = System.nanoTime();
        double l0 = 0;
        for (int i = 0; i < steps; i++) {
            l0 = step(clt, adam, x, y, i + 2);
        }
        double stepSeconds = (System.nanoTime() - start) / 1e9 / steps;
        double flopsPerToken = 3 * (2.0 * d * features * layers + 2.0 * features * d * layers * (layers + 1) / 2.0);
        double cltGflops = flopsPerToken * batch / stepSeconds / 1e9;

        double gemmGflops = gemmReference(batch, d, features);
        System.out.printf(Locale.ROOT, "step %.3f s (%.0f tokens/s, L0 %.0f), dense-equivalent %.1f GFLOP/s; gemm at the same shapes %.1f GFLOP/s;"
                + " ratio %.2f%n", stepSeconds, batch / stepSeconds, l0, cltGflops, gemmGflops, cltGflops / gemmGflops);
    }

    private static double step(CrossLayerTranscoder clt, AdamOptimizer adam, INDArray[] x, INDArray[] y, int iteration) {
        CrossLayerTranscoder.LossParts parts = clt.forwardBackward(x, y);
        GradientClipping.clipGlobalNorm(clt.gradients(), 1.0);
        adam.step(clt.parameters(), clt.gradients(), iteration);
        return parts.l0();
    }

    /** Mean GFLOP/s of the four product shapes a step uses, gemm into preallocated outputs. */
    private static double gemmReference(int batch, int d, int features) {
        INDArray bd = Nd4j.rand(DataType.FLOAT, batch, d);
        INDArray df = Nd4j.rand(DataType.FLOAT, d, features);
        INDArray bf = Nd4j.rand(DataType.FLOAT, batch, features);
        INDArray fd = Nd4j.rand(DataType.FLOAT, features, d);
        double flops = 2.0 * batch * d * features;
        double seconds = 0;
        int reps = 3;
        for (int pass = 0; pass < 2; pass++) { // first pass warms up
            long start = System.nanoTime();
            for (int r = 0; r < reps; r++) {
                Nd4j.gemm(bd, df, bf, false, false, 1.0, 0.0);   // encoder forward
                Nd4j.gemm(bf, fd, bd, false, false, 1.0, 0.0);   // decoder forward
                Nd4j.gemm(bf, bd, fd, true, false, 1.0, 0.0);    // decoder gradient
                Nd4j.gemm(bd, fd, bf, false, true, 1.0, 0.0);    // dLoss/da
            }
            seconds = (System.nanoTime() - start) / 1e9;
        }
        return 4 * reps * flops / seconds / 1e9;
    }
}
