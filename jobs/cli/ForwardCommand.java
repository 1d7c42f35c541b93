package jobs.cli;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.model.TransformerModel;
import activations.safetensors.SafeTensorsWriter;
import activations.tokenizer.TextTokenizer;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code spindle forward}: one prompt through the model, the requested hooks and the logits written
 * to a safetensors file (the Java counterpart of TransformerLens's run_with_cache).
 */
@Command(name = "forward",
        description = "Run one prompt through a model and write its hook activations and logits as safetensors.",
        mixinStandardHelpOptions = true)
public final class ForwardCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, description = "Hugging Face model directory (config.json, model.safetensors, tokenizer.json).")
    Path model;

    @ArgGroup(exclusive = true, multiplicity = "1")
    PromptInput input;

    @Option(names = "--hooks", split = ",", description = "Hook points to capture, comma-separated (default: every layer's hook_resid_post).")
    List<String> hooks;

    @Option(names = "--no-bos", description = "Do not add the beginning-of-sequence token.")
    boolean noBos;

    @Option(names = "--out", required = true, description = "Output .safetensors file.")
    Path out;

    @Option(names = "--top", defaultValue = "5", description = "How many next-token candidates to print (default: ${DEFAULT-VALUE}).")
    int top;

    @Override
    public Integer call() {
        if (!Files.isDirectory(model)) {
            throw new IllegalArgumentException("--model " + model + ": no such directory");
        }
        TransformerModel transformer = TransformerModel.load(model);
        TextTokenizer tokenizer = input.text != null || Files.exists(model.resolve("tokenizer.json"))
                ? TextTokenizer.load(model) : null;
        int[] ids;
        if (input.text != null) {
            if (input.text.isEmpty()) {
                throw new IllegalArgumentException("--text is empty; give a prompt or --tokens");
            }
            ids = tokenizer.encode(input.text, !noBos);
        } else {
            ids = input.tokens;
        }
        if (ids.length == 0) {
            throw new IllegalArgumentException("the prompt has no tokens; give a longer prompt");
        }

        List<String> hookNames = hooks;
        if (hookNames == null || hookNames.isEmpty()) {
            hookNames = new ArrayList<>();
            for (int l = 0; l < transformer.config().nLayers(); l++) {
                hookNames.add("blocks." + l + ".hook_resid_post");
            }
        }
        List<HookPoint> capture = HookPoint.parseAll(hookNames, transformer.config());
        HookPoint logits = HookPoint.parse("logits", transformer.config());
        List<HookPoint> all = new ArrayList<>(capture);
        if (!all.contains(logits)) {
            all.add(logits);
        }
        ForwardResult result = transformer.forward(new int[][] {ids}, ForwardRequest.capture(all));

        SafeTensorsWriter writer = new SafeTensorsWriter()
                .metadata("model", model.toAbsolutePath().normalize().toString())
                .metadata("format", "spindle-forward")
                .addI32("tokens", ids, ids.length);
        for (HookPoint hook : all) {
            writer.addF32(hook.name(), result.get(hook), ids.length, result.dim(hook));
        }
        writer.write(out);

        float[] last = result.row(logits, 0, ids.length - 1);
        Integer[] order = new Integer[last.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Float.compare(last[b], last[a]));
        System.out.printf(Locale.ROOT, "%d tokens; wrote %s (%d hooks + logits)%n", ids.length, out, capture.size());
        System.out.println("top next tokens:");
        for (int i = 0; i < Math.min(top, order.length); i++) {
            String piece = tokenizer == null ? "" : " " + quote(tokenizer.piece(order[i]));
            System.out.printf(Locale.ROOT, "  %d. id %d%s  logit %.4f%n", i + 1, order[i], piece, last[order[i]]);
        }
        return 0;
    }

    private static String quote(String piece) {
        return "'" + piece.replace("\n", "\\n") + "'";
    }
}
