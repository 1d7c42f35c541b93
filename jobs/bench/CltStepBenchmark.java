package jobs.bench;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.clt.CltConfig;
import training.clt.CltStep;
import training.sae.SparseAutoencoder;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * CLT training-step throughput (the trainer's own {@link CltStep}) in dense-equivalent GFLOP/s over
 * {@code Nd4j.gemm} at the step's own shapes, interleaved with the steps in the same run. Dense-equivalent FLOPs per
 * token: forward {@code 2 d F L + 2 F d L (L + 1) / 2}, times 3 for forward and backward. The
 * threshold starts where about 2.5% of features fire on these random inputs (L0 near 100 per
 * layer, as in a trained CLT). {@code clt_step_ratio} forces the dense pass;
 * {@code clt_step_sparse_ratio} is the default path, which decodes sparsely at this L0.
 */
final class CltStepBenchmark {

    private CltStepBenchmark() {
    }

    /** {@code clt_step_ratio}: the dense pass, forced, so the figure keeps its meaning. */
    static Figure run(int layers, int d, int features, int batch, int steps) {
        return run(layers, d, features, batch, steps, SparseAutoencoder.Decoding.DENSE, "clt_step_ratio", 0.6);
    }

    /** {@code clt_step_sparse_ratio}: the default path, which decodes sparsely at this L0, with the same FLOP accounting. */
    static Figure runSparse(int layers, int d, int features, int batch, int steps) {
        return run(layers, d, features, batch, steps, SparseAutoencoder.Decoding.AUTO, "clt_step_sparse_ratio", 1.0);
    }

    private static Figure run(int layers, int d, int features, int batch, int steps, SparseAutoencoder.Decoding decoding,
                              String name, double target) {
        CltConfig config = CltConfig.builder(layers, d, features).batchSize(batch).totalTokens((long) batch * (steps + 4))
                .thresholdInit(0.3).build();
        CltStep stepper = new CltStep(config);
        stepper.clt().initialize(1);
        stepper.clt().setDecoding(decoding);
        INDArray[] batches = new INDArray[2 * layers];
        Nd4j.getRandom().setSeed(3);
        for (int h = 0; h < batches.length; h++) {
            batches[h] = Nd4j.randn(DataType.FLOAT, batch, d);
        }
        double l0 = 0;
        Runnable products = gemmProducts(batch, d, features);
        // Two warm-up steps as before; the sparse path's host loops get four (C2 compiles them meanwhile).
        int warmups = decoding == SparseAutoencoder.Decoding.DENSE ? 2 : 4;
        for (int i = 0; i < warmups; i++) {
            stepper.run(batches, i); // warm-up
            products.run();
        }
        // Each step is followed by the four products once, so load from other processes hits both alike.
        double stepSeconds = 0;
        double gemmSeconds = 0;
        for (int i = 0; i < steps; i++) {
            long t0 = System.nanoTime();
            l0 = stepper.run(batches, i + warmups).l0();
            long t1 = System.nanoTime();
            products.run();
            long t2 = System.nanoTime();
            stepSeconds += (t1 - t0) / 1e9;
            gemmSeconds += (t2 - t1) / 1e9;
        }
        stepSeconds /= steps;
        double flopsPerToken = 3 * (2.0 * d * features * layers + 2.0 * features * d * layers * (layers + 1) / 2.0);
        double cltGflops = flopsPerToken * batch / stepSeconds / 1e9;
        double gemmGflops = 4 * 2.0 * batch * d * features * steps / gemmSeconds / 1e9;
        Map<String, Object> details = new LinkedHashMap<>();
        details.put("shape", layers + " layers, d " + d + ", " + features + " features per layer, batch " + batch);
        details.put("step_seconds", stepSeconds);
        details.put("tokens_per_second", batch / stepSeconds);
        details.put("l0_all_layers", l0);
        details.put("sparse_path", stepper.clt().lastPassSparse());
        details.put("step_gflops", cltGflops);
        details.put("gemm_same_shapes_gflops", gemmGflops);
        return Figure.atLeast(name, cltGflops / gemmGflops, target, details);
    }

    /** The four product shapes a step uses, gemm into preallocated outputs (2 batch d features flops each). */
    private static Runnable gemmProducts(int batch, int d, int features) {
        INDArray bd = Nd4j.rand(DataType.FLOAT, batch, d);
        INDArray df = Nd4j.rand(DataType.FLOAT, d, features);
        INDArray bf = Nd4j.rand(DataType.FLOAT, batch, features);
        INDArray fd = Nd4j.rand(DataType.FLOAT, features, d);
        return () -> {
            Nd4j.gemm(bd, df, bf, false, false, 1.0, 0.0);   // encoder forward
            Nd4j.gemm(bf, fd, bd, false, false, 1.0, 0.0);   // decoder forward
            Nd4j.gemm(bf, bd, fd, true, false, 1.0, 0.0);    // decoder gradient
            Nd4j.gemm(bd, fd, bf, false, true, 1.0, 0.0);    // dLoss/da
        };
    }
}
