package jobs.cli;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import jobs.train.CltSettings;
import jobs.train.TrainCltJob;
import org.apache.hadoop.conf.Configuration;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import training.clt.CltTrainer;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code spindle train-clt}: a cross-layer transcoder over layers 0..N of a cache, exported for circuit-tracer. */
@Command(name = "train-clt", mixinStandardHelpOptions = true,
        description = "Train a cross-layer transcoder on each layer's MLP input and output in an activation cache; "
                + "export it in circuit-tracer's layout. Defaults for every setting are in conf/reference.conf (spindle.clt).")
public final class TrainCltCommand implements Callable<Integer> {

    @Option(names = "--activations", description = "Activation cache directory (with every layer's hook-in and hook-out).")
    String activations;

    @Option(names = "--layers", description = "Layers as 0-N (a CLT spans layers 0..N).")
    String layers;

    @Option(names = "--features-per-layer", description = "Features per layer.")
    Integer features;

    @Option(names = "--sparsity-coeff", description = "Tanh sparsity coefficient.")
    Double sparsityCoeff;

    @Option(names = "--lr", description = "Learning rate.")
    Double lr;

    @Option(names = "--batch-tokens", description = "Tokens per optimizer step.")
    Integer batchTokens;

    @Option(names = "--tokens", description = "Training budget in tokens.")
    Long tokens;

    @Option(names = "--set", description = "Any other setting of conf/reference.conf spindle.clt, as key=value (repeatable).")
    Map<String, String> extra = new LinkedHashMap<>();

    @Option(names = "--conf", description = "A HOCON file with `activations`, `out`, `layers` and a `clt { ... }` block.")
    Path conf;

    @Option(names = "--out", description = "Output directory.")
    String out;

    @Option(names = "--resume", description = "Continue from the newest checkpoint in the output directory.")
    boolean resume;

    @Option(names = "--replicas", defaultValue = "1", description = "Data-parallel replicas (Spark tasks) on disjoint parts of the cache (default: ${DEFAULT-VALUE}: train in this JVM).")
    int replicas;

    @Option(names = "--sync-every", defaultValue = "1", description = "With --replicas: average parameters and Adam moments every K local steps; 1 = synchronous gradient averaging (default: ${DEFAULT-VALUE}).")
    int syncEvery;

    @Option(names = "--master", description = "Spark master for --replicas (default: spark-submit's, else local[*]).")
    String master;

    @Override
    public Integer call() {
        Map<String, Object> values = new LinkedHashMap<>();
        Config file = ConfigFactory.empty();
        if (conf != null) {
            if (!Files.isRegularFile(conf)) {
                throw new IllegalArgumentException("--conf " + conf + ": no such file");
            }
            file = ConfigFactory.parseFile(conf.toFile()).resolve();
            jobs.config.ConfigKeys.check(file, java.util.Set.of("activations", "out", "layers", "clt"), conf.toString());
            activations = activations != null ? activations : file.hasPath("activations") ? file.getString("activations") : null;
            out = out != null ? out : file.hasPath("out") ? file.getString("out") : null;
            layers = layers != null ? layers : file.hasPath("layers") ? file.getString("layers") : null;
        }
        if (activations == null || layers == null || out == null) {
            throw new IllegalArgumentException("give --activations, --layers 0-N and --out (or set them in --conf)");
        }
        putIf(values, "features-per-layer", features);
        putIf(values, "sparsity-coeff", sparsityCoeff);
        putIf(values, "lr", lr);
        putIf(values, "batch-tokens", batchTokens);
        putIf(values, "tokens", tokens);
        values.putAll(ConfigFactory.parseMap(extra).root().unwrapped());
        Config fromFile = file.hasPath("clt") ? file.getConfig("clt") : ConfigFactory.empty();
        CltSettings settings = CltSettings.of(ConfigFactory.parseMap(values).withFallback(fromFile), "the CLT settings");
        TrainCltJob.Outcome outcome;
        if (replicas > 1) {
            org.apache.spark.sql.SparkSession spark = jobs.spark.SparkSessions.create("spindle train-clt (data-parallel)", master);
            try {
                outcome = jobs.train.DataParallelClt.train(spark, activations, layerCount(layers), settings, out, replicas,
                        syncEvery, resume, System.out);
            } finally {
                spark.stop();
            }
        } else {
            outcome = TrainCltJob.train(new Configuration(), activations, layerCount(layers), settings, out, resume,
                    CltTrainer.consoleProgress(System.out));
        }
        System.out.printf(Locale.ROOT, "CLT written to %s (circuit-tracer layout): %d steps, %,d tokens%n",
                outcome.out(), outcome.steps(), outcome.tokens());
        return 0;
    }

    static int layerCount(String spec) {
        String[] parts = spec.trim().split("-");
        try {
            if (parts.length == 2 && Integer.parseInt(parts[0].trim()) == 0) {
                return Integer.parseInt(parts[1].trim()) + 1;
            }
            if (parts.length == 1) {
                return Integer.parseInt(parts[0].trim()) + 1;
            }
        } catch (NumberFormatException e) {
            // falls through to the error below
        }
        throw new IllegalArgumentException("--layers " + spec + " must be 0-N (a CLT spans layers 0..N)");
    }

    private static void putIf(Map<String, Object> values, String key, Object value) {
        if (value != null) {
            values.put(key, value);
        }
    }
}
