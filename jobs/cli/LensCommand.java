package jobs.cli;

import analysis.Heatmap;
import analysis.SingleTokens;
import analysis.lens.DirectLogitAttribution;
import analysis.lens.LogitLens;
import activations.model.TransformerModel;
import activations.safetensors.SafeTensorsWriter;
import activations.tokenizer.JsonFiles;
import activations.tokenizer.TextTokenizer;
import jobs.output.StagedOutput;
import org.apache.hadoop.conf.Configuration;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code spindle lens}: logit lens over every layer and direct logit attribution of one target token. */
@Command(name = "lens", mixinStandardHelpOptions = true,
        description = "Logit lens (every layer's resid_post through the final norm and unembedding: lens.safetensors, lens.png) "
                + "and direct logit attribution of a target token at the last position to embed, every attn and every mlp (dla.json).")
public final class LensCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, description = "Hugging Face model directory.")
    Path model;

    @ArgGroup(exclusive = true, multiplicity = "1")
    PromptInput input;

    static final class Target {
        @Option(names = "--target-id", description = "Target token id (default: the model's top prediction at the last position).")
        Integer id;

        @Option(names = "--target", description = "Target token as text; must be exactly one token.")
        String text;
    }

    @ArgGroup(exclusive = true)
    Target target;

    @Option(names = "--no-bos", description = "Do not add the beginning-of-sequence token.")
    boolean noBos;

    @Option(names = "--out", required = true, description = "Output directory (lens.safetensors, dla.json, lens.png); local or any Hadoop filesystem.")
    String out;

    @Option(names = "--overwrite", description = "Replace an existing result in --out.")
    boolean overwrite;

    @Override
    public Integer call() {
        TransformerModel transformer = AnalysisInputs.model(model);
        TextTokenizer tokenizer = input.text != null || (target != null && target.text != null)
                || Files.exists(model.resolve("tokenizer.json")) ? AnalysisInputs.tokenizer(model) : null;
        int[] ids = input.text != null ? AnalysisInputs.encode(tokenizer, input.text, noBos, "--text") : input.tokens;
        if (ids.length == 0) {
            throw new IllegalArgumentException("--tokens is empty; give at least one token id");
        }
        int vocab = transformer.config().vocabSize();
        int targetId = -1;
        if (target != null && target.id != null) {
            targetId = SingleTokens.checkId(target.id, vocab, "--target-id");
        } else if (target != null && target.text != null) {
            targetId = SingleTokens.of(tokenizer, target.text, "--target", "--target-id");
        }
        LogitLens.Result lens = LogitLens.run(transformer, ids);
        DirectLogitAttribution.Result dla = DirectLogitAttribution.run(transformer, ids, targetId);

        List<String> pieces = new ArrayList<>();
        for (int id : ids) {
            pieces.add(AnalysisInputs.piece(tokenizer, id));
        }
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("target_id", dla.targetId());
        json.put("target", AnalysisInputs.piece(tokenizer, dla.targetId()));
        json.put("position", dla.position());
        List<Map<String, Object>> components = new ArrayList<>();
        for (DirectLogitAttribution.Component c : dla.components()) {
            Map<String, Object> component = new LinkedHashMap<>();
            component.put("name", c.name());
            component.put("logit", c.logit());
            components.add(component);
        }
        json.put("components", components);
        json.put("logit", dla.logit());
        json.put("unembed_bias", dla.unembedBias());
        json.put("tokens", ids);
        json.put("pieces", pieces);
        double[][] probabilities = lens.probabilities(dla.targetId());
        StagedOutput.directory(new Configuration(), out, "dla.json", overwrite, dir -> {
            new SafeTensorsWriter().metadata("format", "spindle-lens")
                    .addF32("logit_lens", lens.logits(), lens.layers(), lens.seq(), lens.vocab())
                    .addI32("tokens", ids, ids.length)
                    .write(dir.resolve("lens.safetensors"));
            Heatmap.write(dir.resolve("lens.png"), List.of(new Heatmap.Panel(
                    "logit lens: P('" + AnalysisInputs.piece(tokenizer, dla.targetId()) + "') by layer and position", probabilities)),
                    pieces, 0, 1);
            JsonFiles.write(dir.resolve("dla.json"), json);
        });

        System.out.printf(Locale.ROOT, "%d tokens; target id %d '%s' at position %d: logit %.4f (components sum %.4f + bias %.4f)%n",
                ids.length, dla.targetId(), AnalysisInputs.piece(tokenizer, dla.targetId()), dla.position(), dla.logit(),
                dla.componentSum(), dla.unembedBias());
        for (DirectLogitAttribution.Component c : dla.components()) {
            System.out.printf(Locale.ROOT, "  %-16s %9.4f%n", c.name(), c.logit());
        }
        StringBuilder byLayer = new StringBuilder();
        for (int l = 0; l < lens.layers(); l++) {
            byLayer.append(String.format(Locale.ROOT, " layer %d %.4f", l, probabilities[l][ids.length - 1]));
        }
        System.out.println("P(target) at the last position by layer:" + byLayer + "; wrote " + out);
        return 0;
    }
}
