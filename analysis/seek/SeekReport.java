package analysis.seek;

import activations.tokenizer.JsonFiles;
import activations.tokenizer.TextTokenizer;
import training.evaluation.Charts;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Writes {@code seek.json} (best sequences, their activations, the curve) and {@code seek.png} (the curve). */
public final class SeekReport {

    private SeekReport() {
    }

    public static Map<String, Object> write(Path dir, Map<String, Object> context, FeatureSeeker.Result result, Float cacheMax,
                                            TextTokenizer tokenizer) {
        Map<String, Object> r = new LinkedHashMap<>(context);
        r.put("what", "activation: the feature's value at the sequence's last token (each sequence is cut after its best position)");
        r.put("cache_max", cacheMax);
        r.put("best_activation", result.best().get(0).activation());
        r.put("beats_cache", cacheMax == null ? null : result.best().get(0).activation() > cacheMax);
        r.put("best_seed", result.bestSeed() == null ? null : sequence(result.bestSeed(), tokenizer));
        r.put("sequences_evaluated", result.evaluated());
        List<Object> best = new ArrayList<>();
        for (FeatureSeeker.Candidate c : result.best()) {
            best.add(sequence(c, tokenizer));
        }
        r.put("best", best);
        Map<String, Object> curve = new LinkedHashMap<>();
        curve.put("generation", java.util.stream.IntStream.range(0, result.bestByGeneration().length).toArray());
        curve.put("best", result.bestByGeneration());
        curve.put("mean", result.meanByGeneration());
        r.put("curve", curve);
        JsonFiles.write(dir.resolve("seek.json"), r);
        double[] x = Arrays.stream((int[]) curve.get("generation")).asDoubleStream().toArray();
        Charts.line(dir.resolve("seek.png"), "Feature " + context.get("feature") + ": best activation by generation"
                        + (cacheMax == null ? "" : String.format(java.util.Locale.ROOT, " (cache max %.3f)", cacheMax)),
                "generation", "best activation", x, result.bestByGeneration());
        return r;
    }

    private static Map<String, Object> sequence(FeatureSeeker.Candidate c, TextTokenizer tokenizer) {
        Map<String, Object> s = new LinkedHashMap<>();
        s.put("activation", c.activation());
        s.put("ids", c.tokens());
        s.put("text", tokenizer.decode(c.tokens()));
        s.put("pieces", Arrays.stream(c.tokens()).mapToObj(tokenizer::piece).toList());
        return s;
    }
}
