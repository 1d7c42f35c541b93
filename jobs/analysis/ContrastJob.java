package jobs.analysis;

import analysis.contrast.ContrastPair;
import analysis.contrast.ContrastVectors;
import analysis.contrast.DecoderCosines;
import activations.hooks.HookPoint;
import activations.model.ComputeThreads;
import activations.model.ModelConfig;
import activations.model.TransformerModel;
import activations.safetensors.SafeTensorsWriter;
import activations.tokenizer.JsonFiles;
import activations.tokenizer.TextTokenizer;
import jobs.output.StagedOutput;
import jobs.spark.ExecutorResources;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.sql.SparkSession;
import scala.Tuple2;
import training.export.SaeLensDictionary;

import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code spindle contrast}: contrastive mean-difference vectors over a pairs file (JSONL on any
 * Hadoop filesystem). Lines are spread over Spark tasks; each task runs the model (once per
 * executor JVM) on both texts of its pairs and returns per-hook sums the driver merges, so a
 * million pairs scale out. The driver writes {@code vectors.safetensors} and {@code contrast.json}.
 */
public final class ContrastJob {

    public record Options(String model, String pairs, List<String> hooks, String dictionary, boolean bos,
                          String output, boolean overwrite) implements Serializable {
    }

    /** The mean difference per hook (in the order given), the pair count and, with a dictionary, its best-aligned features. */
    public record Result(Map<String, float[]> vectors, long pairs, String dictionaryHook, List<DecoderCosines.Feature> topFeatures) {
    }

    static final int TOP_FEATURES = 20;

    private ContrastJob() {
    }

    public static Result run(SparkSession spark, Options o) {
        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        TransformerModel model = ExecutorResources.model(o.model());
        ModelConfig config = model.config();
        List<HookPoint> hooks = HookPoint.parseAll(o.hooks(), config);
        if (hooks.isEmpty()) {
            throw new IllegalArgumentException("--hooks is empty; name at least one hook, e.g. blocks.1.hook_resid_post");
        }
        SaeLensDictionary sae = null;
        String saeHook = null;
        if (o.dictionary() != null) {
            sae = SaeLensDictionary.load(ExecutorResources.localDirectory(o.dictionary()));
            saeHook = sae.cfg().path("metadata").path("hook_name").asText(sae.cfg().path("hook_name").asText(""));
            String wanted = saeHook;
            if (hooks.stream().noneMatch(h -> h.name().equals(wanted))) {
                throw new IllegalArgumentException("--dictionary " + o.dictionary() + " reads hook '" + saeHook
                        + "', which is not among --hooks " + o.hooks() + "; add it");
            }
        }
        checkExists(hadoop, o.pairs());
        ExecutorResources.tokenizer(o.model()); // a missing tokenizer.json fails here, not in a task

        String pairsFile = o.pairs();
        JavaPairRDD<String, Long> lines = spark.read().textFile(pairsFile).javaRDD().zipWithIndex()
                .filter(t -> !t._1().isBlank());
        int parallelism = Math.max(lines.getNumPartitions(), spark.sparkContext().defaultParallelism());
        int[] widths = new int[hooks.size()];
        List<String> hookNames = new ArrayList<>();
        for (int h = 0; h < hooks.size(); h++) {
            widths[h] = hooks.get(h).dim(config);
            hookNames.add(hooks.get(h).name());
        }
        String modelDir = o.model();
        boolean bos = o.bos();
        List<ContrastVectors.Sums> partials = lines.repartition(parallelism).mapPartitions(it -> {
            TaskContext task = TaskContext.get();
            if (task != null) {
                ComputeThreads.limit(Math.max(1, task.cpus()));
            }
            TransformerModel m = ExecutorResources.model(modelDir);
            TextTokenizer tokenizer = ExecutorResources.tokenizer(modelDir);
            List<HookPoint> points = HookPoint.parseAll(hookNames, m.config());
            ContrastVectors.Sums sums = new ContrastVectors.Sums(widths);
            while (it.hasNext()) {
                Tuple2<String, Long> line = it.next();
                sums.add(m, tokenizer, points, bos, ContrastPair.parse(line._1(), line._2() + 1, pairsFile));
            }
            return List.of(sums).iterator();
        }).collect();
        ContrastVectors.Sums total = new ContrastVectors.Sums(widths);
        for (ContrastVectors.Sums s : partials) {
            total.merge(s);
        }
        if (total.pairs() == 0) {
            throw new IllegalArgumentException("the pairs file " + pairsFile + " has no pairs; give JSONL lines "
                    + "{\"prompt\": ..., \"positive\": ..., \"negative\": ...}");
        }
        Map<String, float[]> vectors = new LinkedHashMap<>();
        for (int h = 0; h < hooks.size(); h++) {
            vectors.put(hookNames.get(h), total.mean(h));
        }
        List<DecoderCosines.Feature> top = sae == null ? List.of()
                : DecoderCosines.top(sae.wDec(), vectors.get(saeHook), TOP_FEATURES);
        Result result = new Result(vectors, total.pairs(), saeHook, top);
        write(hadoop, o, result);
        return result;
    }

    private static void write(Configuration hadoop, Options o, Result r) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("pairs", r.pairs());
        json.put("model", o.model());
        json.put("pairs_file", o.pairs());
        List<Map<String, Object>> vectors = new ArrayList<>();
        for (Map.Entry<String, float[]> e : r.vectors().entrySet()) {
            vectors.add(ordered("hook", e.getKey(), "norm", norm(e.getValue())));
        }
        json.put("vectors", vectors);
        if (o.dictionary() != null) {
            Map<String, Object> dictionary = new LinkedHashMap<>();
            dictionary.put("path", o.dictionary());
            dictionary.put("hook", r.dictionaryHook());
            List<Map<String, Object>> features = new ArrayList<>();
            for (DecoderCosines.Feature f : r.topFeatures()) {
                features.add(ordered("index", f.index(), "cosine", f.cosine()));
            }
            dictionary.put("top_features", features);
            json.put("dictionary", dictionary);
        }
        StagedOutput.directory(hadoop, o.output(), "contrast.json", o.overwrite(), dir -> {
            SafeTensorsWriter writer = new SafeTensorsWriter().metadata("format", "spindle-contrast")
                    .metadata("pairs", Long.toString(r.pairs()));
            r.vectors().forEach((hook, v) -> writer.addF32(hook, v, v.length));
            writer.write(dir.resolve("vectors.safetensors"));
            JsonFiles.write(dir.resolve("contrast.json"), json);
        });
    }

    /** A two-field JSON object in this field order (Map.of has none). */
    static Map<String, Object> ordered(String k1, Object v1, String k2, Object v2) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put(k1, v1);
        m.put(k2, v2);
        return m;
    }

    static double norm(float[] v) {
        double s = 0;
        for (float x : v) {
            s += (double) x * x;
        }
        return Math.sqrt(s);
    }

    private static void checkExists(Configuration hadoop, String file) {
        try {
            Path path = new Path(file);
            FileSystem fs = path.getFileSystem(hadoop);
            if (!fs.exists(path)) {
                throw new IllegalArgumentException("--pairs " + file + ": no such file; give a JSONL file of "
                        + "{\"prompt\": ..., \"positive\": ..., \"negative\": ...} lines");
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read --pairs " + file + ": " + e.getMessage(), e);
        }
    }
}
