package jobs.cli;

import activations.model.Llama2cConverter;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code spindle convert-llama2c}: a llama2.c checkpoint + tokenizer.bin into a Hugging Face Llama directory. */
@Command(name = "convert-llama2c",
        mixinStandardHelpOptions = true,
        description = "Convert a llama2.c checkpoint (.bin, fp32 v0 or v1) and its tokenizer.bin into a Hugging Face "
                + "Llama directory (config.json, model.safetensors, tokenizer.json, tokenizer_config.json).")
public final class ConvertLlama2cCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, paramLabel = "FILE.bin", description = "llama2.c checkpoint")
    Path model;

    @Option(names = "--tokenizer", required = true, paramLabel = "TOKENIZER.bin",
            description = "llama2.c tokenizer the model was trained with (e.g. tok512.bin)")
    Path tokenizer;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "new (or empty) output directory")
    Path out;

    @Override
    public Integer call() {
        Llama2cConverter.Header h = Llama2cConverter.convert(model, tokenizer, out);
        System.out.printf("wrote %s: %d layers, d_model %d, %d heads (%d kv), d_ff %d, vocab %d, context %d, %s classifier%n",
                out.toAbsolutePath(), h.layers(), h.dim(), h.heads(), h.kvHeads(), h.hiddenDim(), h.vocabSize(), h.seqLen(),
                h.sharedClassifier() ? "tied" : "untied");
        return 0;
    }
}
