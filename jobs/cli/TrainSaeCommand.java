package jobs.cli;

import com.typesafe.config.ConfigFactory;
import jobs.spark.SparkSessions;
import jobs.train.DataParallelSae;
import jobs.train.SaeSettings;
import jobs.train.SweepPlan;
import jobs.train.TrainSaeJob;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import training.trainer.SaeTrainer;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code spindle train-sae}: one SAE from the command line, or a sweep from a configuration file. */
@Command(name = "train-sae", mixinStandardHelpOptions = true,
        description = "Train a sparse autoencoder on a hook of an activation cache (or a sweep of them, one Spark task each). "
                + "Defaults for every setting are in conf/reference.conf (spindle.sae).")
public final class TrainSaeCommand implements Callable<Integer> {

    @Option(names = "--activations", description = "Activation cache directory.")
    String activations;

    @Option(names = {"--hook", "--hook-in"}, description = "Hook to train on (a transcoder's input hook with --hook-out).")
    String hook;

    @Option(names = "--hook-out", description = "Train a per-layer transcoder predicting this hook (e.g. blocks.L.hook_mlp_out) from --hook-in (e.g. blocks.L.ln2.hook_normalized).")
    String hookOut;

    @Option(names = "--arch", description = "jumprelu | relu | topk | batchtopk.")
    String arch;

    @Option(names = "--d-sae", description = "Dictionary width.")
    Integer dSae;

    @Option(names = "--k", description = "Active latents per token (topk, batchtopk).")
    Integer k;

    @Option(names = "--sparsity-coeff", description = "Sparsity penalty coefficient.")
    Double sparsityCoeff;

    @Option(names = "--lr", description = "Learning rate.")
    Double lr;

    @Option(names = "--batch-tokens", description = "Tokens per optimizer step.")
    Integer batchTokens;

    @Option(names = "--tokens", description = "Training budget in tokens.")
    Long tokens;

    @Option(names = "--seed", description = "Random seed (initialization and data mixing).")
    Long seed;

    @Option(names = "--set", description = "Any other setting of conf/reference.conf spindle.sae, as key=value (repeatable).")
    Map<String, String> extra = new LinkedHashMap<>();

    @Option(names = "--out", description = "Output directory (a sweep: one subdirectory per run).")
    String out;

    @Option(names = "--conf", description = "Sweep configuration file (HOCON): runs as Spark tasks.")
    Path conf;

    @Option(names = "--replicas", defaultValue = "1", description = "Data-parallel replicas (Spark tasks) training one SAE on disjoint parts of the cache (default: ${DEFAULT-VALUE}: train in this JVM).")
    int replicas;

    @Option(names = "--sync-every", defaultValue = "1", description = "With --replicas: average parameters and Adam moments every K local steps; 1 = synchronous gradient averaging (default: ${DEFAULT-VALUE}).")
    int syncEvery;

    @Option(names = "--resume", description = "Continue from the newest checkpoint in the output directory.")
    boolean resume;

    @Option(names = "--master", description = "Spark master for sweeps (default: spark-submit's, else local[*]).")
    String master;

    @Override
    public Integer call() {
        if (conf != null) {
            return sweep();
        }
        if (activations == null || hook == null || out == null) {
            throw new IllegalArgumentException("give --activations, --hook and --out (or --conf FILE for a sweep)");
        }
        TrainSaeJob.Run run = new TrainSaeJob.Run(hookOut == null ? hook : hook + "->" + hookOut, hook, hookOut,
                SaeSettings.of(ConfigFactory.parseMap(overrides()), "the command line"), out);
        if (hookOut != null && replicas > 1) {
            throw new IllegalArgumentException("--replicas trains SAEs; train transcoders with one replica (omit --replicas)");
        }
        TrainSaeJob.Outcome outcome;
        if (replicas > 1) {
            SparkSession spark = SparkSessions.create("spindle train-sae (data-parallel)", master);
            try {
                outcome = DataParallelSae.train(spark, activations, run, replicas, syncEvery, resume, System.out);
            } finally {
                spark.stop();
            }
        } else {
            outcome = TrainSaeJob.train(new Configuration(), activations, run, resume, SaeTrainer.consoleProgress(System.out));
        }
        System.out.printf(Locale.ROOT, "SAE written to %s: %d steps, %,d tokens, FVU %.4f, L0 %.1f, dead %.1f%%%n",
                outcome.out, outcome.steps, outcome.tokens, outcome.fvu, outcome.l0, 100 * outcome.deadFraction);
        return 0;
    }

    private Map<String, Object> overrides() {
        Map<String, Object> values = new LinkedHashMap<>();
        putIf(values, "architecture", arch);
        putIf(values, "d-sae", dSae);
        putIf(values, "k", k);
        putIf(values, "sparsity-coeff", sparsityCoeff);
        putIf(values, "lr", lr);
        putIf(values, "batch-tokens", batchTokens);
        putIf(values, "tokens", tokens);
        putIf(values, "seed", seed);
        // A value that reads as a HOCON list (matryoshka-widths=[128,512]) is a list; anything else stays as given.
        extra.forEach((key, value) -> {
            String v = value.trim();
            values.put(key, v.startsWith("[") ? ConfigFactory.parseString("v = " + v).getList("v").unwrapped()
                    : ConfigFactory.parseMap(Map.of(key, value)).root().unwrapped().get(key));
        });
        return values;
    }

    private static void putIf(Map<String, Object> values, String key, Object value) {
        if (value != null) {
            values.put(key, value);
        }
    }

    private int sweep() {
        SweepPlan plan = SweepPlan.read(conf, activations, out);
        SparkSession spark = SparkSessions.create("spindle train-sae sweep", master);
        try {
            List<TrainSaeJob.Outcome> outcomes = TrainSaeJob.sweep(spark, plan.activations(), plan.runs(), resume);
            System.out.printf(Locale.ROOT, "%-60s %8s %8s %8s%n", "run", "FVU", "L0", "dead");
            for (TrainSaeJob.Outcome o : outcomes) {
                System.out.printf(Locale.ROOT, "%-60s %8.4f %8.1f %7.1f%%%n", o.name, o.fvu, o.l0, 100 * o.deadFraction);
            }
            List<training.evaluation.SweepReport.Row> rows = new java.util.ArrayList<>();
            for (TrainSaeJob.Outcome o : outcomes) {
                rows.add(training.evaluation.SweepReport.row(o.name, jobs.spark.ExecutorResources.localDirectory(o.out), null));
            }
            jobs.output.StagedOutput.files(spark.sparkContext().hadoopConfiguration(), plan.out(),
                    dir -> training.evaluation.SweepReport.write(dir, rows));
            System.out.println("sweep report: " + new org.apache.hadoop.fs.Path(plan.out(), "sweep.md")
                    + " (training figures; `spindle evaluate --dictionary"
                    + " DIR1,DIR2,...` adds held-out FVU and CE scores)");
            return 0;
        } finally {
            spark.stop();
        }
    }
}
