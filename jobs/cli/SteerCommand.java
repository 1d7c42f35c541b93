package jobs.cli;

import analysis.steering.CachedGeneration;
import analysis.steering.SteeringVectors;
import activations.hooks.ForwardRequest;
import activations.hooks.HookPoint;
import activations.hooks.Intervention;
import activations.model.TransformerModel;
import activations.tokenizer.JsonFiles;
import activations.tokenizer.TextTokenizer;
import jobs.output.StagedOutput;
import org.apache.hadoop.conf.Configuration;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code spindle steer}: generation with a steering vector added at one hook, next to the unsteered baseline. */
@Command(name = "steer", mixinStandardHelpOptions = true,
        description = "Generate from a prompt with S x a vector added to one hook at every position (prompt and generated), "
                + "and without it (baseline), on a key/value cache; writes prompt_ids, baseline and steered ({ids, text}) as JSON.")
public final class SteerCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, description = "Hugging Face model directory.")
    Path model;

    @Option(names = "--text", required = true, description = "Prompt text.")
    String text;

    @Option(names = "--hook", required = true, description = "Hook the vector is added to, e.g. blocks.1.hook_resid_post.")
    String hook;

    static final class Source {
        @Option(names = "--vector", description = "FILE.safetensors[:NAME]: a [d] tensor (default name: the hook's), e.g. spindle contrast's vectors.safetensors.")
        String vector;

        @Option(names = "--feature", description = "SAE_DIR:INDEX: the SAELens dictionary feature's decoder row W_dec[INDEX].")
        String feature;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    Source source;

    @Option(names = "--scale", required = true, description = "S: the multiple of the vector added.")
    double scale;

    @Option(names = "--max-new-tokens", defaultValue = "40", description = "Tokens to generate (default: ${DEFAULT-VALUE}); stops early at EOS.")
    int maxNewTokens;

    @Option(names = "--temperature", defaultValue = "0", description = "0: greedy (default); else sampling from softmax(logits / T).")
    double temperature;

    @Option(names = "--seed", defaultValue = "0", description = "Sampling seed, the same for baseline and steered (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--no-bos", description = "Do not add the beginning-of-sequence token.")
    boolean noBos;

    @Option(names = "--out", required = true, description = "Output FILE.json; local or any Hadoop filesystem.")
    String out;

    @Option(names = "--overwrite", description = "Replace an existing --out file.")
    boolean overwrite;

    @Override
    public Integer call() {
        TransformerModel transformer = AnalysisInputs.model(model);
        TextTokenizer tokenizer = AnalysisInputs.tokenizer(model);
        HookPoint point = HookPoint.parse(hook, transformer.config());
        if (!Double.isFinite(scale)) {
            throw new IllegalArgumentException("--scale must be a finite number, not " + scale);
        }
        int d = point.dim(transformer.config());
        float[] vector;
        if (source.vector != null) {
            vector = SteeringVectors.fromFile(source.vector, point.name(), d);
        } else {
            vector = SteeringVectors.fromFeature(source.feature, d);
            String trained = SteeringVectors.dictionaryHook(source.feature);
            if (trained != null && !trained.equals(point.name())) {
                System.err.println("note: the dictionary was trained on " + trained + "; steering at " + point.name());
            }
        }
        float[] scaled = new float[d];
        for (int i = 0; i < d; i++) {
            scaled[i] = (float) (scale * vector[i]);
        }
        int[] prompt = AnalysisInputs.encode(tokenizer, text, noBos, "--text");
        CachedGeneration.Settings settings = new CachedGeneration.Settings(maxNewTokens, temperature, seed,
                transformer.config().eosTokenId());
        int[] baseline = CachedGeneration.generate(transformer, prompt, CachedGeneration.request(point, null), settings, false).ids();
        ForwardRequest steering = CachedGeneration.request(point, Intervention.addVector(scaled));
        int[] steered = CachedGeneration.generate(transformer, prompt, steering, settings, false).ids();

        Map<String, Object> json = new LinkedHashMap<>();
        json.put("prompt_ids", prompt);
        json.put("baseline", continuation(tokenizer, prompt, baseline));
        json.put("steered", continuation(tokenizer, prompt, steered));
        json.put("hook", point.name());
        json.put("scale", scale);
        json.put("vector", source.vector != null ? source.vector : source.feature);
        json.put("vector_norm", norm(vector));
        json.put("temperature", temperature);
        json.put("seed", seed);
        StagedOutput.file(new Configuration(), out, overwrite, file -> JsonFiles.write(file, json));
        System.out.println("prompt:   " + text);
        System.out.println("baseline: " + continuation(tokenizer, prompt, baseline).get("text"));
        System.out.println("steered:  " + continuation(tokenizer, prompt, steered).get("text") + "   (" + point.name() + " + " + scale + " x vector)");
        System.out.println("wrote " + out);
        return 0;
    }

    /** The continuation's ids and its text as it reads after the prompt (a leading space kept). */
    static Map<String, Object> continuation(TextTokenizer tokenizer, int[] prompt, int[] ids) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("ids", ids);
        String text = "";
        if (ids.length > 0) {
            int[] all = java.util.Arrays.copyOf(prompt, prompt.length + ids.length);
            System.arraycopy(ids, 0, all, prompt.length, ids.length);
            String whole = tokenizer.decode(all, true);
            String before = tokenizer.decode(prompt, true);
            text = whole.startsWith(before) ? whole.substring(before.length()) : tokenizer.decode(ids, true);
        }
        m.put("text", text);
        return m;
    }

    private static double norm(float[] v) {
        double s = 0;
        for (float x : v) {
            s += (double) x * x;
        }
        return Math.sqrt(s);
    }
}
