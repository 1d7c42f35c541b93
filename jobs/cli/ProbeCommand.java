package jobs.cli;

import analysis.probe.LinearProbes;
import jobs.analysis.ProbeJob;
import jobs.spark.SparkSessions;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code spindle probe}: linear probes of hooks for a label, the model run on Spark. */
@Command(name = "probe", mixinStandardHelpOptions = true,
        description = "Linear probes: the model runs over a JSONL file of labelled texts on Spark; per hook an L2-regularised "
                + "multinomial logistic regression and (binary labels) the difference-of-means direction, trained on the lines "
                + "whose 0-based index is not divisible by 5 and tested on the rest. Writes probe.json (accuracies), "
                + "probes.safetensors (HOOK.weights [classes, d], HOOK.biases, HOOK.difference_of_means) and probe.png.")
public final class ProbeCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, description = "Model directory.")
    String model;

    @Option(names = "--data", required = true, description = "JSONL file (any Hadoop filesystem), one example per line.")
    String data;

    @Option(names = "--text-field", defaultValue = "text", description = "Field holding the text (default: ${DEFAULT-VALUE}).")
    String textField;

    @Option(names = "--label-field", required = true, description = "Field holding the label (string, number or boolean).")
    String labelField;

    @Option(names = "--hooks", required = true, split = ",", description = "Hooks to probe, comma-separated.")
    List<String> hooks;

    @Option(names = "--pool", defaultValue = "last", description = "last (the last token) or mean (over tokens, BOS excluded) (default: ${DEFAULT-VALUE}).")
    String pool;

    @Option(names = "--no-bos", description = "Do not add the beginning-of-sequence token.")
    boolean noBos;

    @Option(names = "--l2", defaultValue = "1e-3", description = "L2 coefficient: objective = mean CE + l2/2 ||W||^2 (default: ${DEFAULT-VALUE}).")
    double l2;

    @Option(names = "--max-iterations", defaultValue = "500", description = "L-BFGS iterations at most (default: ${DEFAULT-VALUE}).")
    int maxIterations;

    @Option(names = "--out", required = true, description = "Output directory (probe.json, probes.safetensors, probe.png); any Hadoop filesystem.")
    String out;

    @Option(names = "--overwrite", description = "Replace an existing result in --out.")
    boolean overwrite;

    @Option(names = "--master", description = "Spark master (default: spark-submit's, else local[*]).")
    String master;

    @Override
    public Integer call() {
        SparkSession spark = SparkSessions.create("spindle probe", master);
        try {
            LinearProbes.Result r = ProbeJob.run(spark, new ProbeJob.Options(model, data, textField, labelField, hooks, pool, noBos,
                    l2, maxIterations, out, overwrite));
            System.out.printf(Locale.ROOT, "%s: %d classes, %d train / %d held-out examples%n", out, r.classes().size(),
                    r.trainExamples(), r.heldoutExamples());
            for (LinearProbes.HookProbe p : r.probes()) {
                System.out.printf(Locale.ROOT, "  %s: logistic train %.3f held-out %.3f%s%n", p.hook(), p.trainAccuracy(),
                        p.heldoutAccuracy(), p.differenceOfMeans() == null ? ""
                                : String.format(Locale.ROOT, "  difference of means train %.3f held-out %.3f",
                                p.meansTrainAccuracy(), p.meansHeldoutAccuracy()));
            }
            return 0;
        } finally {
            spark.stop();
        }
    }
}
