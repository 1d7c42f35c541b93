package jobs.bench;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.sae.SaeConfig;
import training.trainer.SaeStep;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * JumpReLU training-step throughput (the trainer's own step: forward, backward, clipping, Adam,
 * feature statistics) in dense-equivalent GFLOP/s (10 d_in d_sae per token: encoder and decoder
 * forward, decoder weight and input gradients, encoder weight gradient), over the GFLOP/s of the
 * same five {@code Nd4j.gemm} products into preallocated outputs, interleaved in the same run so
 * load from other processes hits both alike.
 */
final class SaeStepBenchmark {

    record Result(Figure figure, double trainerRowsPerSecond) {
    }

    private SaeStepBenchmark() {
    }

    static Result run(int dIn, int dSae, int batch, int steps) {
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
        SaeStep stepper = new SaeStep(config);
        stepper.sae().initialize(x, 1);
        long[] step = {0};
        Runnable trainingStep = () -> stepper.run(x, step[0]++);

        fiveProducts.run();
        trainingStep.run();
        double gemmSeconds = 0;
        double stepSeconds = 0;
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
        Map<String, Object> details = new LinkedHashMap<>();
        details.put("shape", "d_in " + dIn + ", d_sae " + dSae + ", batch " + batch + ", " + steps + " steps");
        details.put("step_gflops", stepGflops);
        details.put("gemm_five_products_gflops", gemmGflops);
        details.put("step_seconds", stepSeconds / steps);
        double rows = batch * steps / stepSeconds;
        details.put("trainer_rows_per_second", rows);
        return new Result(Figure.atLeast("sae_step_ratio", stepGflops / gemmGflops, 0.75, details), rows);
    }
}
