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
 * {@code Nd4j.gemm} at the step's own shapes, measured in the same run. Dense-equivalent FLOPs per
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
        CltConfig config = CltConfig.builder(layers, d, features).batchSize(batch).totalTokens((long) batch * (steps + 2))
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
        for (int i = 0; i < 2; i++) {
            stepper.run(batches, i); // warm-up
        }
        long start = System.nanoTime();
        for (int i = 0; i < steps; i++) {
            l0 = stepper.run(batches, i + 2).l0();
        }
        double stepSeconds = (System.nanoTime() - start) / 1e9 / steps;
        double flopsPerToken = 3 * (2.0 * d * features * layers + 2.0 * features * d * layers * (layers + 1) / 2.0);
        double cltGflops = flopsPerToken * batch / stepSeconds / 1e9;
        double gemmGflops = gemmReference(batch, d, features);
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

    /** Mean GFLOP/s of the four product shapes a step uses, gemm into preallocated outputs. */
    private static double gemmReference(int batch, int d, int features) {
        INDArray bd = Nd4j.rand(DataType.FLOAT, batch, d);
        INDArray df = Nd4j.rand(DataType.FLOAT, d, features);
        INDArray bf = Nd4j.rand(DataType.FLOAT, batch, features);
        INDArray fd = Nd4j.rand(DataType.FLOAT, features, d);
        double flops = 2.0 * batch * d * features;
        double seconds = 0;
        int reps = 3;
        for (int pass = 0; pass < 2; pass++) { // the first pass warms up
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
