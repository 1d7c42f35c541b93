package jobs.cli;

import analysis.contrast.DecoderCosines;
import jobs.analysis.ContrastJob;
import jobs.spark.SparkSessions;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code spindle contrast}: contrastive mean-difference (steering) vectors from a pairs file, on Spark. */
@Command(name = "contrast", mixinStandardHelpOptions = true,
        description = "Contrastive activation addition: per hook, the mean over pairs of a(prompt + positive) - a(prompt + negative) "
                + "at the last token, as a Spark job over a JSONL pairs file; vectors.safetensors (one [d] tensor per hook) and "
                + "contrast.json (pair count, norms, with --dictionary the 20 features whose decoder rows align best).")
public final class ContrastCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, description = "Hugging Face model directory.")
    String model;

    @Option(names = "--pairs", required = true, description = "JSONL file, one {\"prompt\", \"positive\", \"negative\"} object a line; any Hadoop path.")
    String pairs;

    @Option(names = "--hooks", required = true, split = ",", description = "Hooks to compute vectors at, comma-separated.")
    List<String> hooks;

    @Option(names = "--dictionary", description = "SAELens SAE directory: list the features whose decoder rows have the highest cosine with its hook's vector.")
    String dictionary;

    @Option(names = "--no-bos", description = "Do not add the beginning-of-sequence token.")
    boolean noBos;

    @Option(names = "--out", required = true, description = "Output directory (vectors.safetensors, contrast.json).")
    String out;

    @Option(names = "--overwrite", description = "Replace an existing result in --out.")
    boolean overwrite;

    @Option(names = "--master", description = "Spark master (default: spark-submit's, else local[*]).")
    String master;

    @Override
    public Integer call() {
        SparkSession spark = SparkSessions.create("spindle contrast", master);
        try {
            ContrastJob.Result r = ContrastJob.run(spark, new ContrastJob.Options(model, pairs, hooks, dictionary, !noBos, out, overwrite));
            System.out.printf(Locale.ROOT, "%d pairs; wrote %s%n", r.pairs(), out);
            for (Map.Entry<String, float[]> e : r.vectors().entrySet()) {
                double s = 0;
                for (float x : e.getValue()) {
                    s += (double) x * x;
                }
                System.out.printf(Locale.ROOT, "  %-28s norm %.4f%n", e.getKey(), Math.sqrt(s));
            }
            if (!r.topFeatures().isEmpty()) {
                StringBuilder top = new StringBuilder();
                for (DecoderCosines.Feature f : r.topFeatures().subList(0, Math.min(5, r.topFeatures().size()))) {
                    top.append(String.format(Locale.ROOT, " %d (%.3f)", f.index(), f.cosine()));
                }
                System.out.println("  best-aligned features at " + r.dictionaryHook() + ":" + top);
            }
            return 0;
        } finally {
            spark.stop();
        }
    }
}
