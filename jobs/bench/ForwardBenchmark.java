package jobs.bench;

import activations.hooks.ForwardRequest;
import activations.hooks.HookPoint;
import activations.model.ModelConfig;
import activations.model.TransformerModel;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Activation-caching forward throughput: batches of random tokens through the model up to its
 * last layer (no unembedding, as when caching), in useful GFLOP/s over the gemm peak. Useful
 * FLOPs per token and layer: 2 x the weights of the projections and MLP (24 d^2 for GPT-2), plus
 * 2 T qDim for causal attention (on average T/2 keys per query, two products).
 */
final class ForwardBenchmark {

    private ForwardBenchmark() {
    }

    static Figure run(Path modelDir, int batch, int context, double seconds, double gemmPeak) {
        return run("forward_ratio", "", modelDir, batch, context, seconds, gemmPeak, 0.75); // #17
    }

    /**
     * {@code shape} says what the model is shaped after and how it differs (e.g. fewer layers);
     * a null target reports the ratio without one.
     */
    static Figure run(String name, String shape, Path modelDir, int batch, int context, double seconds, double gemmPeak,
                      Double target) {
        TransformerModel model = TransformerModel.load(modelDir);
        ModelConfig c = model.config();
        int[][] tokens = new int[batch][context];
        SplittableRandom random = new SplittableRandom(1);
        for (int[] row : tokens) {
            for (int t = 0; t < context; t++) {
                row[t] = random.nextInt(c.vocabSize());
            }
        }
        ForwardRequest request = ForwardRequest.capture(new HookPoint(HookPoint.Kind.RESID_POST, c.nLayers() - 1));
        model.forward(tokens, request); // warm-up: buffers, JIT
        long start = System.nanoTime();
        int passes = 0;
        do {
            model.forward(tokens, request);
            passes++;
        } while (System.nanoTime() - start < seconds * 1e9);
        double elapsed = (System.nanoTime() - start) / 1e9;
        double d = c.dModel();
        double projections = d * (c.qDim() + 2.0 * c.kvDim()) + c.qDim() * d + (c.gatedMlp() ? 3.0 : 2.0) * d * c.dMlp();
        double flopsPerToken = c.nLayers() * (2 * projections + 2.0 * context * c.qDim());
        double tokensPerSecond = (double) passes * batch * context / elapsed;
        double gflops = tokensPerSecond * flopsPerToken / 1e9;
        Map<String, Object> details = new LinkedHashMap<>();
        details.put("model", (shape.isEmpty() ? "" : shape + ": ") + c.architecture() + ", " + c.nLayers() + " layers, d "
                + c.dModel() + ", heads " + c.nHeads() + "/" + c.nKvHeads() + " kv x " + c.headDim() + ", d_mlp " + c.dMlp()
                + ", context " + context + ", batch " + batch);
        details.put("tokens_per_second", tokensPerSecond);
        details.put("gflops", gflops);
        details.put("gemm_gflops", gemmPeak);
        return target == null ? Figure.measured(name, gflops / gemmPeak, "ratio", details)
                : Figure.atLeast(name, gflops / gemmPeak, target, details);
    }
}
