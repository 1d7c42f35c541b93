package training.sae;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.optim.AdamOptimizer;
import training.optim.GradientClipping;
import training.optim.Schedules;

import java.util.Locale;

/**
 * JumpReLU training-step throughput (forward, backward, clipping, Adam) as dense-equivalent GFLOP/s
 * (10 d_in d_sae batch FLOPs a step: five products of 2 d_in d_sae batch each), divided by the
 * GFLOP/s of the same five {@code Nd4j.gemm} calls into preallocated outputs, measured in the same
 * run. Not a test: run with
 * {@code java -Xmx4g -cp target/classes:target/test-classes:<classpath> training.sae.SaeStepBenchmark [d_in d_sae batch steps]}.
 */
public final class SaeStepBenchmark {

    public static void main(String[] args) {
        int dIn = args.length > 0 ? Integer.parseInt(args[0]) : 768;
        int dSae = args.length > 1 ? Integer.parseInt(args[1]) : 16384;
        int batch = args.length > 2 ? Integer.parseInt(args[2]) : 4096;
        int steps = args.length > 3 ? Integer.parseInt(args[3]) : 5;
        double flopsPerStep = 10.0 * dIn * dSae * batch;

        INDArray x = Nd4j.randn(DataType.FLOAT, batch, dIn);
        INDArray wEnc = Nd4j.randn(DataType.FLOAT, dIn, dSae).muli(0.03);
        INDArray wDec = Nd4j.randn(DataType.FLOAT, dSae, dIn).muli(0.03);
        INDArray z = Nd4j.create(DataType.FLOAT, batch, dSae);
        INDArray f = Nd4j.create(DataType.FLOAT, batch, dSae);
        INDArray xHat = Nd4j.create(DataType.FLOAT, batch, dIn);
        INDArray gWDec = Nd4j.create(DataType.FLOAT, dSae, dIn);
        INDArray gWEnc = Nd4j.create(DataType.FLOAT, dIn, dSae);
        Runnable fiveProducts = () -> {
            Nd4j.gemm(x, wEnc, z, false, false, 1.0, 0.0);
            Nd4j.gemm(z, wDec, xHat, false, false, 1.0, 0.0);
            Nd4j.gemm(z, xHat, gWDec, true, false, 1.0, 0.0);
            Nd4j.gemm(xHat, wDec, f, false, true, 1.0, 0.0);
            Nd4j.gemm(x, f, gWEnc, true, false, 1.0, 0.0);
        };

        SaeConfig config = SaeConfig.builder(SaeConfig.Architecture.JUMPRELU, dIn, dSae).batchSize(batch)
                .totalTokens((long) batch * 1000).thresholdInit(0.5).build();
        SparseAutoencoder sae = SparseAutoencoder.create(config, DataType.FLOAT);
        sae.initialize(x, 1);
        AdamOptimizer adam = new AdamOptimizer(sae.parameters().length(),
                Schedules.learningRate(config.learningRate(), 0, 1000, 0.2), 0.9, 0.999, 1e-8, DataType.FLOAT);
        int[] iteration = {0};
        Runnable trainingStep = () -> {
            sae.forwardBackward(x);
            GradientClipping.clipGlobalNorm(sae.gradients(), 1.0);
            adam.step(sae.parameters(), sae.gradients(), iteration[0]++);
        };

        fiveProducts.run();
        trainingStep.run();
        double gemmSeconds = 0;
        double stepSeconds = 0;
        // Interleaved so load from other processes affects both alike.
        for (int i = 0; i < steps; i++) {
            long t0 = System.nanoTime();
            fiveProducts.run();
            long t1 = System.nanoTime();
            trainingStep.run();
            long t2 = System.nanoTime();
            gemmSeconds += (t1 - t0) / 1e9;
            stepSeconds += (t2 - t1) / 1e9;
        }
        double gemmGflops = flopsPerStep * steps / gemmSeconds / 1e9;
        double stepGflops = flopsPerStep * steps / stepSeconds / 1e9;
        System.out.printf(Locale.ROOT, "d_in %d, d_sae %d, batch %d, %d steps%n", dIn, dSae, batch, steps);
        System.out.printf(Locale.ROOT, "gemm (5 products, preallocated): %.1f GFLOP/s, %.3f s per set%n", gemmGflops, gemmSeconds / steps);
        System.out.printf(Locale.ROOT, "JumpReLU training step: %.1f GFLOP/s dense-equivalent, %.3f s per step, %.0f tokens/s%n",
                stepGflops, stepSeconds / steps, batch * steps / stepSeconds);
        System.out.printf(Locale.ROOT, "ratio step/gemm: %.3f (target >= 0.75)%n", stepGflops / gemmGflops);
    }
}
