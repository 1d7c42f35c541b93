package jobs.cli;

import picocli.CommandLine.Option;

/** One prompt given as text or as token ids: the exclusive {@code --text | --tokens} group of the one-prompt commands. */
final class PromptInput {
    @Option(names = "--text", description = "Prompt text, tokenized with the model's tokenizer.")
    String text;

    @Option(names = "--tokens", split = ",", description = "Token ids instead of text, comma-separated.")
    int[] tokens;
}
