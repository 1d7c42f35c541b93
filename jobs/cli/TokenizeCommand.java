package jobs.cli;

import activations.table.TokenTableManifest;
import jobs.spark.SparkSessions;
import jobs.tokenize.TokenizeJob;
import jobs.tokenize.TokenizeJob.InputFormat;
import jobs.tokenize.TokenizeJob.TextSplit;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code spindle tokenize}: corpus to token table, on Spark. */
@Command(name = "tokenize", mixinStandardHelpOptions = true,
        description = "Tokenize a corpus on Spark and pack it into fixed-length sequences (a Parquet token table).")
public final class TokenizeCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, description = "Model directory whose tokenizer.json to use (local or any Hadoop filesystem).")
    String model;

    @Option(names = "--input", required = true, description = "Corpus path or glob on any Hadoop filesystem (file:, hdfs:, s3a:); directories are read recursively.")
    String input;

    @Option(names = "--format", description = "text, jsonl or parquet (default: from the file extension).")
    String format;

    @Option(names = "--split", defaultValue = "line", description = "Plain text: one document per 'line' or per 'blank-line'-separated block (default: ${DEFAULT-VALUE}).")
    String split;

    @Option(names = "--text-field", defaultValue = "text", description = "JSONL field or Parquet column holding the text (default: ${DEFAULT-VALUE}).")
    String textField;

    @Option(names = "--context-size", defaultValue = "128", description = "Tokens per sequence, BOS included (default: ${DEFAULT-VALUE}).")
    int contextSize;

    @Option(names = "--keep-partial", description = "Keep the last, shorter sequence instead of dropping it.")
    boolean keepPartial;

    @Option(names = "--separator-id", description = "Token placed between documents (default: the tokenizer's EOS, else BOS).")
    Integer separatorId;

    @Option(names = "--skip-malformed", description = "Skip JSONL lines that do not parse or lack the text field instead of failing.")
    boolean skipMalformed;

    @Option(names = "--out", required = true, description = "Output directory for the token table.")
    String out;

    @Option(names = "--overwrite", description = "Replace an existing complete token table at --out.")
    boolean overwrite;

    @Option(names = "--master", description = "Spark master (default: spark-submit's, else local[*]).")
    String master;

    @Override
    public Integer call() {
        InputFormat inputFormat = format != null ? InputFormat.parse(format) : InputFormat.guess(input);
        TextSplit textSplit = TextSplit.parse(split);
        TokenizeJob.Options options = new TokenizeJob.Options(model, input, inputFormat, textSplit, textField,
                contextSize, keepPartial, separatorId, skipMalformed, out, overwrite);
        SparkSession spark = SparkSessions.create("spindle tokenize", master);
        try {
            TokenTableManifest m = TokenizeJob.run(spark, options);
            System.out.printf(Locale.ROOT, "token table %s: %,d sequences of %d tokens (%,d tokens) from %,d documents%n",
                    out, m.sequences(), m.contextSize(), m.tokens(), m.documents());
            return 0;
        } finally {
            spark.stop();
        }
    }
}
