package jobs.analysis;

import activations.hooks.HookPoint;
import activations.model.ComputeThreads;
import activations.model.TransformerModel;
import activations.safetensors.SafeTensorsWriter;
import activations.tokenizer.JsonFiles;
import activations.tokenizer.TextTokenizer;
import analysis.probe.LinearProbes;
import analysis.probe.Pooling;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import jobs.output.OutputDirectory;
import jobs.output.StagedOutput;
import jobs.spark.ExecutorResources;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import scala.Tuple2;
import training.evaluation.Charts;

import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code spindle probe}: the model runs over a JSONL file of labelled texts on Spark (each executor
 * loads model and tokenizer once), pooled hook vectors come back to the driver, and the driver fits
 * per hook a logistic-regression probe and the difference-of-means direction. Lines whose 0-based
 * index (over the whole input, blank lines counted) is divisible by 5 are held out.
 */
public final class ProbeJob {

    public record Options(String model, String data, String textField, String labelField, List<String> hooks, String pool,
                          boolean noBos, double l2, int maxIterations, String output, boolean overwrite) implements Serializable {
    }

    /** One example's pooled vectors (a class: Kryo cannot serialize records). */
    static final class Pooled implements Serializable {
        final long line;
        final String label;
        final float[][] vectors;

        Pooled(long line, String label, float[][] vectors) {
            this.line = line;
            this.label = label;
            this.vectors = vectors;
        }
    }

    private ProbeJob() {
    }

    public static LinearProbes.Result run(SparkSession spark, Options o) {
        if (o.hooks() == null || o.hooks().isEmpty()) {
            throw new IllegalArgumentException("--hooks is empty; name at least one hook, e.g. blocks.0.hook_resid_post");
        }
        Pooling pooling = Pooling.parse(o.pool());
        java.nio.file.Path localModel = ExecutorResources.localDirectory(o.model());
        if (!java.nio.file.Files.isDirectory(localModel)) {
            throw new IllegalArgumentException("--model " + o.model() + ": no such directory");
        }
        TransformerModel model = ExecutorResources.model(o.model());
        List<HookPoint> hooks = HookPoint.parseAll(o.hooks(), model.config());
        List<String> hookNames = hooks.stream().map(HookPoint::name).toList();
        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        checkData(hadoop, o.data());
        // Refuses a complete output now, before any Spark work (StagedOutput checks again when it writes).
        OutputDirectory.begin(hadoop, o.output(), "probe.json", o.overwrite());
        JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        List<Pooled> pooled = new ArrayList<>(sc.textFile(o.data()).zipWithIndex().mapPartitions(it -> {
            TaskContext task = TaskContext.get();
            if (task != null) {
                ComputeThreads.limit(Math.max(1, task.cpus()));
            }
            TransformerModel m = ExecutorResources.model(o.model());
            TextTokenizer tokenizer = ExecutorResources.tokenizer(o.model());
            List<HookPoint> hs = HookPoint.parseAll(o.hooks(), m.config());
            ObjectMapper json = new ObjectMapper();
            List<Pooled> result = new ArrayList<>();
            while (it.hasNext()) {
                Tuple2<String, Long> line = it.next();
                if (line._1().isBlank()) {
                    continue;
                }
                String[] example = parse(json, line._1(), line._2(), o);
                int[] ids = tokenizer.encode(example[0], !o.noBos());
                int[] kept = Arrays.copyOf(ids, Math.min(ids.length, m.config().maxPositions()));
                result.add(new Pooled(line._2(), example[1], pooling.pool(m, hs, kept, !o.noBos())));
            }
            return result.iterator();
        }).collect());
        pooled.sort(Comparator.comparingLong(p -> p.line));
        long[] lines = pooled.stream().mapToLong(p -> p.line).toArray();
        List<String> labels = pooled.stream().map(p -> p.label).toList();
        float[][][] features = new float[hooks.size()][pooled.size()][];
        for (int i = 0; i < pooled.size(); i++) {
            for (int h = 0; h < hooks.size(); h++) {
                features[h][i] = pooled.get(i).vectors[h];
            }
        }
        if (pooled.isEmpty()) {
            throw new IllegalArgumentException("the data file " + o.data() + " has no examples; give one JSON object per line");
        }
        LinearProbes.Result result = LinearProbes.fit(hookNames, lines, labels, features, o.l2(), o.maxIterations());
        StagedOutput.directory(hadoop, o.output(), "probe.json", o.overwrite(), dir -> write(dir, o, pooling, hooks, result));
        return result;
    }

    private static void checkData(Configuration hadoop, String data) {
        try {
            Path path = new Path(data);
            FileSystem fs = path.getFileSystem(hadoop);
            if (!fs.exists(path)) {
                throw new IllegalArgumentException("--data " + data + ": no such file");
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + data + ": " + e.getMessage(), e);
        }
    }

    /** {text, label} of one JSONL line; one-line errors naming the line and the fix. */
    static String[] parse(ObjectMapper json, String line, long index, Options o) {
        JsonNode node;
        try {
            node = json.readTree(line);
        } catch (IOException e) {
            throw new IllegalArgumentException(o.data() + " line " + (index + 1) + " is not valid JSON; give one JSON object per line");
        }
        JsonNode text = node.get(o.textField());
        if (text == null || !text.isTextual() || text.asText().isEmpty()) {
            throw new IllegalArgumentException(o.data() + " line " + (index + 1) + " has no non-empty string field '" + o.textField()
                    + "'; set --text-field to the field holding the text");
        }
        JsonNode label = node.get(o.labelField());
        if (label == null || label.isNull() || label.isContainerNode()) {
            throw new IllegalArgumentException(o.data() + " line " + (index + 1) + " has no label field '" + o.labelField()
                    + "' (a string, number or boolean); set --label-field");
        }
        return new String[]{text.asText(), label.isTextual() ? label.asText() : label.toString()};
    }

    private static void write(java.nio.file.Path dir, Options o, Pooling pooling, List<HookPoint> hooks, LinearProbes.Result r) {
        Map<String, Object> report = new LinkedHashMap<>();
        report.put("model", o.model());
        report.put("data", o.data());
        report.put("text_field", o.textField());
        report.put("label_field", o.labelField());
        report.put("pool", pooling.userName());
        report.put("bos", !o.noBos());
        report.put("l2", o.l2());
        report.put("objective", "mean softmax cross-entropy + l2/2 * ||W||^2 (biases not penalised), full-batch L-BFGS");
        report.put("split", "held out: examples whose 0-based line index is divisible by 5");
        report.put("classes", r.classes());
        report.put("train_examples", r.trainExamples());
        report.put("heldout_examples", r.heldoutExamples());
        Map<String, Object> perHook = new LinkedHashMap<>();
        SafeTensorsWriter tensors = new SafeTensorsWriter().metadata("format", "pt")
                .metadata("classes", String.join("\n", r.classes()));
        for (LinearProbes.HookProbe p : r.probes()) {
            Map<String, Object> h = new LinkedHashMap<>();
            h.put("train_accuracy", p.trainAccuracy());
            h.put("heldout_accuracy", p.heldoutAccuracy());
            h.put("iterations", p.regression().iterations());
            h.put("objective", p.regression().objective());
            h.put("gradient_max_abs", p.regression().gradientNorm());
            if (p.differenceOfMeans() != null) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("train_accuracy", p.meansTrainAccuracy());
                m.put("heldout_accuracy", p.meansHeldoutAccuracy());
                m.put("threshold", p.differenceOfMeans().threshold());
                m.put("rule", "class '" + r.classes().get(1) + "' when x . (mean_1 - mean_0) > threshold, the midpoint of the "
                        + "projected class means of the training split");
                h.put("difference_of_means", m);
            }
            perHook.put(p.hook(), h);
            float[][] w = p.regression().weights();
            float[] flat = new float[w.length * w[0].length];
            for (int c = 0; c < w.length; c++) {
                System.arraycopy(w[c], 0, flat, c * w[0].length, w[0].length);
            }
            tensors.addF32(p.hook() + ".weights", flat, w.length, w[0].length);
            tensors.addF32(p.hook() + ".biases", p.regression().biases(), w.length);
            if (p.differenceOfMeans() != null) {
                tensors.addF32(p.hook() + ".difference_of_means", p.differenceOfMeans().direction(), w[0].length);
            }
        }
        report.put("hooks", perHook);
        JsonFiles.write(dir.resolve("probe.json"), report);
        tensors.write(dir.resolve("probes.safetensors"));
        // Layer of each hook: embeddings before layer 0, the final norm and logits after the last layer.
        int layers = ExecutorResources.model(o.model()).config().nLayers();
        double[] x = hooks.stream().mapToDouble(h -> h.kind().perLayer ? h.layer()
                : h.kind().ordinal() < HookPoint.Kind.RESID_PRE.ordinal() ? -1 : layers).toArray();
        boolean byLayer = java.util.Arrays.stream(x).distinct().count() == x.length;
        double[] y = new double[hooks.size()];
        for (int i = 0; i < hooks.size(); i++) {
            x[i] = byLayer ? x[i] : i;
            y[i] = r.probes().get(i).heldoutAccuracy();
        }
        Charts.line(dir.resolve("probe.png"), "Held-out probe accuracy", byLayer ? "layer (-1: embeddings)" : "hook (in --hooks order)",
                "held-out accuracy", x, y);
    }
}
