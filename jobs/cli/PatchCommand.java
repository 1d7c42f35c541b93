package jobs.cli;

import analysis.Heatmap;
import analysis.SingleTokens;
import analysis.patching.ActivationPatching;
import activations.model.TransformerModel;
import activations.safetensors.SafeTensorsWriter;
import activations.tokenizer.JsonFiles;
import activations.tokenizer.TextTokenizer;
import jobs.output.StagedOutput;
import org.apache.hadoop.conf.Configuration;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code spindle patch}: activation patching from a clean into a corrupted prompt, every layer and position. */
@Command(name = "patch", mixinStandardHelpOptions = true,
        description = "Activation patching: the corrupted prompt with the clean run's value of one hook at one (layer, position) "
                + "patched in, for every layer and position; metric logit(A) - logit(B) at the last position, normalized to "
                + "(m_patched - m_corrupt) / (m_clean - m_corrupt). Writes patch.safetensors ([n_layers, seq] per hook kind), patch.json, patch.png.")
public final class PatchCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, description = "Hugging Face model directory.")
    Path model;

    @Option(names = "--clean", required = true, description = "Clean prompt.")
    String clean;

    @Option(names = "--corrupt", required = true, description = "Corrupted prompt, the same number of tokens as --clean.")
    String corrupt;

    static final class AnswerText {
        @Option(names = "--answer", required = true, description = "A: the clean answer, one token.")
        String answer;

        @Option(names = "--wrong", required = true, description = "B: the corrupted answer, one token.")
        String wrong;
    }

    static final class AnswerIds {
        @Option(names = "--answer-id", required = true, description = "A as a token id.")
        int answer;

        @Option(names = "--wrong-id", required = true, description = "B as a token id.")
        int wrong;
    }

    static final class Answers {
        @ArgGroup(exclusive = false)
        AnswerText text;

        @ArgGroup(exclusive = false)
        AnswerIds ids;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    Answers answers;

    @Option(names = "--hooks", split = ",", defaultValue = "resid_pre,attn_out,mlp_out",
            description = "Hook kinds to patch (default: ${DEFAULT-VALUE}).")
    List<String> hooks;

    @Option(names = "--no-bos", description = "Do not add the beginning-of-sequence token.")
    boolean noBos;

    @Option(names = "--out", required = true, description = "Output directory; local or any Hadoop filesystem.")
    String out;

    @Option(names = "--overwrite", description = "Replace an existing result in --out.")
    boolean overwrite;

    @Override
    public Integer call() {
        List<String> kinds = ActivationPatching.kinds(hooks);
        TransformerModel transformer = AnalysisInputs.model(model);
        TextTokenizer tokenizer = AnalysisInputs.tokenizer(model);
        int[] cleanIds = AnalysisInputs.encode(tokenizer, clean, noBos, "--clean");
        int[] corruptIds = AnalysisInputs.encode(tokenizer, corrupt, noBos, "--corrupt");
        int vocab = transformer.config().vocabSize();
        int answer;
        int wrong;
        if (answers.text != null) {
            answer = SingleTokens.of(tokenizer, answers.text.answer, "--answer", "--answer-id");
            wrong = SingleTokens.of(tokenizer, answers.text.wrong, "--wrong", "--wrong-id");
        } else {
            answer = SingleTokens.checkId(answers.ids.answer, vocab, "--answer-id");
            wrong = SingleTokens.checkId(answers.ids.wrong, vocab, "--wrong-id");
        }
        if (answer == wrong) {
            throw new IllegalArgumentException("A and B are the same token (id " + answer + "); the metric logit(A) - logit(B) would be 0");
        }
        ActivationPatching.Result result = ActivationPatching.run(transformer, cleanIds, corruptIds, answer, wrong, kinds);

        List<String> pieces = new ArrayList<>();
        for (int t = 0; t < cleanIds.length; t++) {
            String c = tokenizer.piece(cleanIds[t]);
            String k = tokenizer.piece(corruptIds[t]);
            pieces.add(c.equals(k) ? c : c + "/" + k);
        }
        int layers = transformer.config().nLayers();
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("answer_id", answer);
        json.put("wrong_id", wrong);
        json.put("metric", "logit(A) - logit(B) at the last position");
        json.put("m_clean", result.cleanMetric());
        json.put("m_corrupt", result.corruptMetric());
        json.put("clean_ids", cleanIds);
        json.put("corrupt_ids", corruptIds);
        json.put("hooks", kinds);
        StagedOutput.directory(new Configuration(), out, "patch.safetensors", overwrite, dir -> {
            SafeTensorsWriter writer = new SafeTensorsWriter().metadata("format", "spindle-patch");
            List<Heatmap.Panel> panels = new ArrayList<>();
            double low = 0;
            double high = 1;
            for (Map.Entry<String, double[][]> e : result.normalized().entrySet()) {
                double[][] grid = e.getValue();
                float[] flat = new float[layers * cleanIds.length];
                for (int l = 0; l < layers; l++) {
                    for (int t = 0; t < cleanIds.length; t++) {
                        flat[l * cleanIds.length + t] = (float) grid[l][t];
                        low = Math.min(low, grid[l][t]);
                        high = Math.max(high, grid[l][t]);
                    }
                }
                writer.addF32(e.getKey(), flat, layers, cleanIds.length);
                panels.add(new Heatmap.Panel("patching " + e.getKey() + ": normalized logit difference", grid));
            }
            JsonFiles.write(dir.resolve("patch.json"), json);
            Heatmap.write(dir.resolve("patch.png"), panels, pieces, Math.min(low, -1e-9), high);
            writer.write(dir.resolve("patch.safetensors"));
        });

        System.out.printf(Locale.ROOT, "%d tokens; m = logit('%s') - logit('%s'): clean %.4f, corrupt %.4f%n", cleanIds.length,
                tokenizer.piece(answer), tokenizer.piece(wrong), result.cleanMetric(), result.corruptMetric());
        for (Map.Entry<String, double[][]> e : result.normalized().entrySet()) {
            for (int l = 0; l < layers; l++) {
                StringBuilder row = new StringBuilder();
                for (double v : e.getValue()[l]) {
                    row.append(String.format(Locale.ROOT, " %6.3f", Math.abs(v) < 5e-4 ? 0.0 : v)); // no "-0.000"
                }
                System.out.printf(Locale.ROOT, "  %-9s layer %d:%s%n", e.getKey(), l, row);
            }
        }
        System.out.println("wrote " + out);
        return 0;
    }
}
