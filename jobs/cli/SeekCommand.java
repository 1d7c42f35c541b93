package jobs.cli;

import activations.model.TransformerModel;
import activations.tokenizer.TextTokenizer;
import analysis.seek.CachedTopExamples;
import analysis.seek.FeatureSeeker;
import analysis.seek.SeekReport;
import jobs.output.OutputDirectory;
import jobs.output.StagedOutput;
import jobs.spark.ExecutorResources;
import org.apache.hadoop.conf.Configuration;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import training.evaluation.FeatureDictionary;

import java.nio.file.Files;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.IntStream;

/** {@code spindle seek}: an evolutionary search for token sequences that drive one feature (no Spark: one small model). */
@Command(name = "seek", mixinStandardHelpOptions = true,
        description = "Evolutionary search (mutation, crossover, tournament selection, elitism) for token sequences that activate "
                + "a dictionary feature, seeded with the feature's cached top examples when --features is given. Writes seek.json "
                + "(best sequences, activations, the cache's maximum, the curve over generations) and seek.png.")
public final class SeekCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, description = "Model directory.")
    String model;

    @Option(names = "--dictionary", required = true, description = "SAELens dictionary directory.")
    String dictionary;

    @Option(names = "--feature", required = true, description = "Feature index.")
    int feature;

    @Option(names = "--features", description = "Feature tables of `spindle features` for this dictionary: seeds and the cache's maximum.")
    String features;

    @Option(names = "--population", defaultValue = "64", description = "Sequences per generation (default: ${DEFAULT-VALUE}).")
    int population;

    @Option(names = "--generations", defaultValue = "40", description = "Generations (default: ${DEFAULT-VALUE}).")
    int generations;

    @Option(names = "--seed", defaultValue = "0", description = "Random seed (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--max-length", defaultValue = "16", description = "Longest sequence in tokens, BOS included (default: ${DEFAULT-VALUE}).")
    int maxLength;

    @Option(names = "--keep", defaultValue = "10", description = "Best sequences to report (default: ${DEFAULT-VALUE}).")
    int keep;

    @Option(names = "--no-bos", description = "Search sequences without the beginning-of-sequence token.")
    boolean noBos;

    @Option(names = "--out", required = true, description = "Output directory (seek.json, seek.png).")
    String out;

    @Option(names = "--overwrite", description = "Replace an existing result in --out.")
    boolean overwrite;

    @Override
    public Integer call() {
        java.nio.file.Path modelDir = ExecutorResources.localDirectory(model);
        if (!Files.isDirectory(modelDir)) {
            throw new IllegalArgumentException("--model " + model + ": no such directory");
        }
        java.nio.file.Path dictionaryDir = ExecutorResources.localDirectory(dictionary);
        if (!Files.isDirectory(dictionaryDir)) {
            throw new IllegalArgumentException("--dictionary " + dictionary + ": no such directory");
        }
        TransformerModel transformer = TransformerModel.load(modelDir);
        FeatureDictionary dict = FeatureDictionary.load(dictionaryDir);
        Configuration hadoop = new Configuration();
        // Refuses a complete output before searching (StagedOutput checks again when it writes).
        OutputDirectory.begin(hadoop, out, "seek.json", overwrite);
        try (TextTokenizer tokenizer = TextTokenizer.load(modelDir)) {
            int bos = noBos ? -1 : tokenizer.bosId().orElseThrow(() -> new IllegalArgumentException(
                    "the tokenizer has no BOS token; pass --no-bos"));
            int[] vocabulary = IntStream.range(0, transformer.config().vocabSize()).filter(id -> !tokenizer.isSpecial(id)).toArray();
            FeatureSeeker seeker = new FeatureSeeker(transformer, dict, feature, vocabulary);
            CachedTopExamples cached = features == null ? null
                    : CachedTopExamples.read(ExecutorResources.localDirectory(features), feature);
            List<int[]> seeds = cached == null ? new ArrayList<>() : cached.contexts();
            FeatureSeeker.Result result = seeker.search(new FeatureSeeker.Settings(population, generations, maxLength, seed, bos),
                    seeds, keep);
            Map<String, Object> context = new LinkedHashMap<>();
            context.put("model", model);
            context.put("dictionary", dictionary);
            context.put("hook", dict.hookName());
            context.put("feature", feature);
            context.put("population", population);
            context.put("generations", generations);
            context.put("seed", seed);
            context.put("max_length", maxLength);
            context.put("bos", !noBos);
            context.put("features", features);
            context.put("seeds", seeds.size());
            StagedOutput.directory(hadoop, out, "seek.json", overwrite,
                    dir -> SeekReport.write(dir, context, result, cached == null ? null : cached.max(), tokenizer));
            FeatureSeeker.Candidate best = result.best().get(0);
            System.out.printf(Locale.ROOT, "%s: feature %d  best activation %.4f%s  %s%n", out, feature, best.activation(),
                    cached == null ? "" : String.format(Locale.ROOT, " (cache max %.4f%s)", cached.max(),
                            best.activation() > cached.max() ? ", beaten" : ", not beaten"),
                    com.fasterxml.jackson.databind.node.TextNode.valueOf(tokenizer.decode(best.tokens())).toString());
            return 0;
        }
    }
}
