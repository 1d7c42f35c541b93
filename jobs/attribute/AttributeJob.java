package jobs.attribute;

import activations.model.ComputeThreads;
import activations.model.ModelConfig;
import attribution.Attribution;
import attribution.LocalReplacementModel;
import attribution.PromptGraph;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import jobs.output.OutputDirectory;
import jobs.spark.ExecutorDictionaries;
import jobs.spark.ExecutorResources;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import training.export.CircuitTracerDictionary;

import scala.Tuple2;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code spindle attribute}: attribution graphs for a prompt set, one Spark task per batch of
 * prompts, the model, tokenizer and transcoders loaded once per executor JVM. Writes, atomically
 * (see {@link OutputDirectory}): {@code graphs/SLUG.json} in circuit-tracer's frontend format with
 * its {@code graph-metadata.json}, {@code pages/SLUG.html}, {@code graphs.parquet} (one row per
 * node and per link of every pruned graph, for Spark SQL across prompts) and {@code summary.json}
 * (per prompt and mean replacement/completeness scores, pruned and unpruned), written last.
 */
public final class AttributeJob {

    public static final String SUMMARY = "summary.json";

    public record Options(String model, String transcoders, String text, String prompts, String out, double nodeThreshold,
                          double edgeThreshold, int maxLogits, double logitMass, int batchSize, int promptsPerTask,
                          String features, boolean overwrite) implements Serializable {
    }

    /** One prompt of the set: its slug (file name and id) and text. */
    public record Prompt(String slug, String text) implements Serializable {
    }

    public record Result(List<Map<String, Object>> prompts, Map<String, Double> means) {
    }

    static final StructType SCHEMA = new StructType()
            .add("prompt_id", DataTypes.StringType, false)
            .add("row_type", DataTypes.StringType, false)
            .add("node_id", DataTypes.StringType, true)
            .add("feature_type", DataTypes.StringType, true)
            .add("layer", DataTypes.StringType, true)
            .add("ctx_idx", DataTypes.IntegerType, true)
            .add("feature", DataTypes.IntegerType, true)
            .add("activation", DataTypes.DoubleType, true)
            .add("influence", DataTypes.DoubleType, true)
            .add("node_influence", DataTypes.DoubleType, true)
            .add("token_prob", DataTypes.DoubleType, true)
            .add("source", DataTypes.StringType, true)
            .add("target", DataTypes.StringType, true)
            .add("weight", DataTypes.DoubleType, true);

    private static final ObjectMapper JSON = new ObjectMapper();

    private AttributeJob() {
    }

    /** What a run needs, checked before any Spark work: the prompts and the dashboard link. */
    public record Plan(List<Prompt> prompts, String dashboard, Attribution.Options attribution) {
    }

    /**
     * Checks everything that can be checked on the driver, so bad input fails in one line before a
     * task starts: options, the prompt file, transcoders against the model, each prompt's length.
     */
    public static Plan prepare(Configuration hadoop, Options o) {
        if ((o.text() == null) == (o.prompts() == null)) {
            throw new IllegalArgumentException("give exactly one of --text or --prompts");
        }
        if (o.promptsPerTask() < 1) {
            throw new IllegalArgumentException("--prompts-per-task must be at least 1");
        }
        Attribution.Options attribution = new Attribution.Options(o.maxLogits(), o.logitMass(), o.batchSize());
        checkThreshold("--node-threshold", o.nodeThreshold());
        checkThreshold("--edge-threshold", o.edgeThreshold());
        List<Prompt> prompts;
        if (o.text() != null) {
            if (o.text().isBlank()) {
                throw new IllegalArgumentException("--text is empty; give the prompt some text");
            }
            prompts = List.of(new Prompt("prompt", o.text()));
        } else {
            prompts = readPrompts(hadoop, o.prompts());
        }
        java.nio.file.Path modelDir = ExecutorResources.localDirectory(o.model());
        if (!Files.isRegularFile(modelDir.resolve("config.json"))) {
            throw new IllegalArgumentException("--model " + o.model() + " has no config.json; point at a Hugging Face model directory");
        }
        ModelConfig config = ModelConfig.load(modelDir);
        LocalReplacementModel.checkCompatible(config, ExecutorDictionaries.transcoder(o.transcoders()));
        var tokenizer = ExecutorResources.tokenizer(o.model());
        for (Prompt p : prompts) {
            int n = tokenizer.encode(p.text(), true).length;
            if (n > config.maxPositions()) {
                throw new IllegalArgumentException("prompt '" + p.slug() + "' has " + n + " tokens but the model's context is "
                        + config.maxPositions() + "; shorten it");
            }
        }
        return new Plan(prompts, dashboardLink(o.features(), o.out()), attribution);
    }

    private static void checkThreshold(String option, double v) {
        if (!(v >= 0 && v <= 1)) {
            throw new IllegalArgumentException(option + " must be between 0 and 1, got " + v);
        }
    }

    public static Result run(SparkSession spark, Options o) {
        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        Plan plan = prepare(hadoop, o);
        List<Prompt> prompts = plan.prompts();
        String dashboard = plan.dashboard();
        Attribution.Options attribution = plan.attribution();
        OutputDirectory out = OutputDirectory.begin(hadoop, o.out(), SUMMARY, o.overwrite());
        try {
            String staging = out.staging().toString();
            String scan = new Path(o.transcoders()).getName();
            PromptGraph.Settings settings = new PromptGraph.Settings(attribution, o.nodeThreshold(), o.edgeThreshold(), scan, dashboard);
            int partitions = Math.max(1, (prompts.size() + o.promptsPerTask() - 1) / o.promptsPerTask());
            // Tuples, not records: Kryo cannot build serializers for Java records.
            List<Tuple2<String, String>> pairs = prompts.stream().map(p -> new Tuple2<>(p.slug(), p.text())).toList();
            JavaRDD<Tuple2<String, String>> rdd = JavaSparkContext.fromSparkContext(spark.sparkContext()).parallelize(pairs, partitions);
            String modelDir = o.model();
            String transcoderDir = o.transcoders();
            JavaRDD<Row> rows = rdd.mapPartitions(part -> {
                List<Prompt> batch = new ArrayList<>();
                part.forEachRemaining(t -> batch.add(new Prompt(t._1(), t._2())));
                return attributeBatch(batch, modelDir, transcoderDir, settings, staging).iterator();
            });
            rows.cache();
            spark.createDataFrame(rows.filter(r -> !r.getString(1).equals("summary")), SCHEMA).coalesce(Math.min(partitions, 8))
                    .write().parquet(new Path(out.staging(), "graphs.parquet").toString());
            List<Row> summaries = rows.filter(r -> r.getString(1).equals("summary")).collect();
            rows.unpersist();
            Result result = summarize(prompts, summaries);
            List<Object> graphs = new ArrayList<>();
            for (Map<String, Object> p : result.prompts()) {
                graphs.add(p.get("metadata"));
                p.remove("metadata");
            }
            FileSystem fs = out.staging().getFileSystem(hadoop);
            fs.setWriteChecksum(false);
            write(fs, new Path(out.staging(), "graphs/graph-metadata.json"), JSON.writerWithDefaultPrettyPrinter()
                    .writeValueAsString(Map.of("graphs", graphs)));
            Map<String, Object> summary = new LinkedHashMap<>();
            summary.put("model", o.model());
            summary.put("transcoders", o.transcoders());
            summary.put("node_threshold", o.nodeThreshold());
            summary.put("edge_threshold", o.edgeThreshold());
            summary.put("max_logits", o.maxLogits());
            summary.put("logit_mass", o.logitMass());
            summary.put("mean", result.means());
            summary.put("prompts", result.prompts());
            write(fs, new Path(out.staging(), SUMMARY), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(summary));
            out.publish();
            return result;
        } catch (IOException e) {
            out.abandon();
            throw new UncheckedIOException("cannot write " + o.out() + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            out.abandon();
            throw e;
        }
    }

    /** Executor side: one batch of prompts; files go straight to the staging directory, rows back to the driver. */
    static List<Row> attributeBatch(List<Prompt> batch, String modelDir, String transcoderDir, PromptGraph.Settings settings,
                                    String staging) throws IOException {
        TaskContext task = TaskContext.get();
        if (task != null) {
            ComputeThreads.limit(Math.max(1, task.cpus()));
        }
        var model = ExecutorResources.model(modelDir);
        var tokenizer = ExecutorResources.tokenizer(modelDir);
        CircuitTracerDictionary transcoder = ExecutorDictionaries.transcoder(transcoderDir);
        Path root = new Path(staging);
        FileSystem fs = root.getFileSystem(new Configuration());
        fs.setWriteChecksum(false); // no .crc files beside the pages on local disks
        List<Row> rows = new ArrayList<>();
        for (Prompt p : batch) {
            PromptGraph.Result r = PromptGraph.run(model, transcoder, tokenizer, p.slug(), p.text(), settings);
            write(fs, new Path(root, "graphs/" + p.slug() + ".json"), JSON.writeValueAsString(r.json()));
            write(fs, new Path(root, "pages/" + p.slug() + ".html"), r.html());
            rows.addAll(tableRows(p.slug(), r));
            Map<String, Object> s = new LinkedHashMap<>();
            s.put("slug", p.slug());
            s.put("tokens", r.tokens());
            s.put("active_features", r.activeFeatures());
            s.put("pruned_nodes", r.keptNodes());
            s.put("pruned_links", ((List<?>) r.json().get("links")).size());
            s.put("replacement_score", r.unpruned().replacement());
            s.put("completeness_score", r.unpruned().completeness());
            s.put("pruned_replacement_score", r.pruned().replacement());
            s.put("pruned_completeness_score", r.pruned().completeness());
            s.put("top_logit", r.logitTokens()[0]);
            s.put("top_logit_probability", r.logitProbabilities()[0]);
            s.put("metadata", r.json().get("metadata"));
            rows.add(RowFactory.create(p.slug(), "summary", JSON.writeValueAsString(s), null, null, null, null, null, null, null, null,
                    null, null, null));
        }
        return rows;
    }

    /** graphs.parquet rows of one prompt: its pruned graph's nodes (with their raw influence on the logits) and links. */
    @SuppressWarnings("unchecked")
    static List<Row> tableRows(String slug, PromptGraph.Result r) {
        List<Row> rows = new ArrayList<>();
        Map<String, Double> influence = rawInfluence(r);
        for (Map<String, Object> node : (List<Map<String, Object>>) r.json().get("nodes")) {
            String id = (String) node.get("node_id");
            rows.add(RowFactory.create(slug, "node", id, node.get("feature_type"), node.get("layer"), node.get("ctx_idx"),
                    node.get("feature"), node.get("activation"), node.get("influence"), influence.get(id), node.get("token_prob"),
                    null, null, null));
        }
        for (Map<String, Object> link : (List<Map<String, Object>>) r.json().get("links")) {
            rows.add(RowFactory.create(slug, "link", null, null, null, null, null, null, null, null, null, link.get("source"),
                    link.get("target"), link.get("weight")));
        }
        return rows;
    }

    private static Map<String, Double> rawInfluence(PromptGraph.Result r) {
        Map<String, Double> out = new LinkedHashMap<>();
        var g = r.graph();
        for (int i = 0; i < g.nodes(); i++) {
            if (r.pruning().nodes()[i]) {
                out.put(nodeId(g, i), r.pruning().influence()[i]);
            }
        }
        return out;
    }

    private static String nodeId(attribution.AttributionGraph g, int i) {
        int p = g.position(i);
        return switch (g.kind(i)) {
            case FEATURE -> g.features().get(i).layer() + "_" + g.features().get(i).feature() + "_" + p;
            case ERROR -> "0_" + g.errorLayer(i) + "_" + p;
            case TOKEN -> "E_" + g.tokens()[p] + "_" + p;
            case LOGIT -> (g.layers() + 1) + "_" + g.logitTokens()[i - g.logitStart()] + "_" + p;
        };
    }

    @SuppressWarnings("unchecked")
    private static Result summarize(List<Prompt> prompts, List<Row> summaries) throws IOException {
        Map<String, Map<String, Object>> bySlug = new LinkedHashMap<>();
        for (Row row : summaries) {
            bySlug.put(row.getString(0), JSON.readValue(row.getString(2), LinkedHashMap.class));
        }
        List<Map<String, Object>> ordered = new ArrayList<>();
        for (Prompt p : prompts) {
            ordered.add(bySlug.get(p.slug()));
        }
        Map<String, Double> means = new LinkedHashMap<>();
        for (String key : List.of("replacement_score", "completeness_score", "pruned_replacement_score", "pruned_completeness_score")) {
            means.put(key, ordered.stream().mapToDouble(m -> ((Number) m.get(key)).doubleValue()).average().orElse(Double.NaN));
        }
        return new Result(ordered, means);
    }

    /** JSONL prompts: one object per line with "prompt" and optionally "id" (file names; unique). */
    static List<Prompt> readPrompts(Configuration hadoop, String file) {
        Path path = new Path(file);
        List<Prompt> prompts = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        try (BufferedReader in = new BufferedReader(new InputStreamReader(path.getFileSystem(hadoop).open(path), StandardCharsets.UTF_8))) {
            String line;
            int number = 0;
            while ((line = in.readLine()) != null) {
                number++;
                if (line.isBlank()) {
                    continue;
                }
                JsonNode node;
                try {
                    node = JSON.readTree(line);
                } catch (IOException e) {
                    throw new IllegalArgumentException(file + " line " + number + " is not JSON; write one {\"prompt\": ...} object per line");
                }
                if (!node.isObject() || !node.path("prompt").isTextual()) {
                    throw new IllegalArgumentException(file + " line " + number + " has no \"prompt\" string; write one {\"prompt\": ...} object per line");
                }
                String text = node.get("prompt").asText();
                if (text.isBlank()) {
                    throw new IllegalArgumentException(file + " line " + number + ": the prompt is empty; give every prompt some text");
                }
                String slug = node.has("id") ? node.get("id").asText() : "prompt-" + number;
                slug = slug.replaceAll("[^A-Za-z0-9._-]", "_");
                if (!seen.add(slug)) {
                    throw new IllegalArgumentException(file + " line " + number + ": id '" + slug + "' repeats an earlier prompt's; ids name the graph files and must be unique");
                }
                prompts.add(new Prompt(slug, text));
            }
        } catch (java.io.FileNotFoundException e) {
            throw new IllegalArgumentException("--prompts " + file + " does not exist");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
        if (prompts.isEmpty()) {
            throw new IllegalArgumentException("--prompts " + file + " has no prompts");
        }
        return prompts;
    }

    /**
     * The link from pages/ to the feature dashboard of {@code features} (a `spindle features` output;
     * {@code {layer}} in it stands for the layer), or null without one.
     */
    static String dashboardLink(String features, String out) {
        if (features == null) {
            return null;
        }
        String index = features.replaceAll("/+$", "") + "/dashboard/index.html";
        if (features.contains("://") && !features.startsWith("file:")) {
            return index;
        }
        java.nio.file.Path local = java.nio.file.Path.of(index.startsWith("file:") ? index.substring(5) : index).toAbsolutePath();
        if (!index.contains("{layer}") && !Files.isRegularFile(local)) {
            throw new IllegalArgumentException("--features " + features + " has no dashboard/index.html; point at a `spindle features` output");
        }
        java.nio.file.Path pages = java.nio.file.Path.of(out).toAbsolutePath().resolve("pages");
        return pages.relativize(local).toString().replace('\\', '/');
    }

    private static void write(FileSystem fs, Path file, String text) throws IOException {
        try (FSDataOutputStream o = fs.create(file, true)) {
            o.write(text.getBytes(StandardCharsets.UTF_8));
        }
    }
}
