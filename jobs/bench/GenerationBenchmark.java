package jobs.bench;

import analysis.steering.CachedGeneration;
import activations.model.TransformerModel;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Greedy generation on the key/value cache against recomputing the whole prefix at every step
 * ({@link TransformerModel#greedy}, the runtime's uncached path), same model, prompt and token
 * count, in the same run: the ratio of their times. Whether both produced the same tokens is
 * recorded (random weights can have near-ties that float rounding flips; KvCacheTest checks the
 * equality on trained and tiny models).
 */
final class GenerationBenchmark {

    private GenerationBenchmark() {
    }

    static Figure run(Path modelDir, int promptLength, int newTokens) {
        TransformerModel model = TransformerModel.load(modelDir);
        int[] prompt = new int[promptLength];
        SplittableRandom random = new SplittableRandom(2);
        for (int t = 0; t < promptLength; t++) {
            prompt[t] = random.nextInt(model.config().vocabSize());
        }
        CachedGeneration.Settings settings = new CachedGeneration.Settings(newTokens, 0, 0, -1);
        // warm-up of both paths (JIT, buffers)
        model.greedy(Arrays.copyOf(prompt, 4), 4, -1);
        CachedGeneration.generate(model, Arrays.copyOf(prompt, 4), CachedGeneration.request(null, null),
                new CachedGeneration.Settings(4, 0, 0, -1), false);

        long start = System.nanoTime();
        int[] recomputed = model.greedy(prompt, newTokens, -1);
        double recomputeSeconds = (System.nanoTime() - start) / 1e9;
        start = System.nanoTime();
        int[] cached = CachedGeneration.generate(model, prompt, CachedGeneration.request(null, null), settings, false).ids();
        double cachedSeconds = (System.nanoTime() - start) / 1e9;

        Map<String, Object> details = new LinkedHashMap<>();
        details.put("model", model.config().nLayers() + " layers, d " + model.config().dModel() + ", vocab " + model.config().vocabSize());
        details.put("prompt_tokens", promptLength);
        details.put("new_tokens", newTokens);
        details.put("recompute_seconds", recomputeSeconds);
        details.put("cached_seconds", cachedSeconds);
        details.put("cached_tokens_per_second", newTokens / cachedSeconds);
        details.put("same_tokens", Arrays.equals(recomputed, cached));
        return Figure.atLeast("generation_kv_cache", recomputeSeconds / cachedSeconds, 4.0, details);
    }
}
