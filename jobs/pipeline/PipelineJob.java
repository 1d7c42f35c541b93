package jobs.pipeline;

import activations.safetensors.DType;
import activations.table.ActivationManifest;
import activations.table.TokenTableManifest;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import jobs.cache.CacheJob;
import jobs.config.ConfigKeys;
import jobs.evaluate.EvaluateJob;
import jobs.evaluate.TranscoderEvaluateJob;
import jobs.features.FeaturesJob;
import jobs.tokenize.TokenizeJob;
import jobs.train.CltSettings;
import jobs.train.SaeSettings;
import jobs.train.TrainCltJob;
import jobs.train.TrainSaeJob;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.SparkSession;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Every stage from one configuration (section {@code spindle.pipeline} of conf/reference.conf):
 * tokenize, cache, train the listed SAEs and CLTs, evaluate them, build feature tables. A stage
 * whose complete output already exists (by its manifest or final file) is skipped, and training
 * resumes from its checkpoints, so re-running after a failure continues where it stopped.
 */
public final class PipelineJob {

    static final String SECTION = "spindle.pipeline";

    /** One dictionary to train: an SAE on a hook, or a CLT over layers 0..N-1. */
    public record Dictionary(String name, SaeSettings sae, String hook, CltSettings clt, int layers) {
        boolean isClt() {
            return clt != null;
        }
    }

    /** The checked plan: everything validated before any Spark work. */
    public record Plan(Config settings, List<Dictionary> dictionaries, Path out) {
    }

    private PipelineJob() {
    }

    /** Reads and checks a pipeline configuration (keys, types, paths) without touching Spark. */
    public static Plan plan(Config overrides, String where) {
        Config defaults = ConfigFactory.defaultReference().getConfig(SECTION);
        ConfigKeys.check(overrides, defaults.root().keySet(), where);
        Config c = overrides.withFallback(defaults).resolve();
        try {
            Path model = Path.of(c.getString("model"));
            if (!Files.isDirectory(model)) {
                throw new IllegalArgumentException(where + ": model " + model + " is not a directory; set `model`");
            }
            if (!c.getString("corpus").contains("://") && !Files.exists(Path.of(c.getString("corpus")))) {
                throw new IllegalArgumentException(where + ": corpus " + c.getString("corpus") + " does not exist; set `corpus`");
            }
            DType.parse(c.getString("dtype"));
            c.getInt("context-size");
            c.getBoolean("skip-bos");
            List<Dictionary> dictionaries = new ArrayList<>();
            Set<String> names = new LinkedHashSet<>();
            for (Config sae : c.getConfigList("saes")) {
                String name = required(sae, "name", where);
                String hook = required(sae, "hook", where);
                SaeSettings settings = SaeSettings.of(sae.withoutPath("name").withoutPath("hook"), where + " (sae " + name + ")");
                dictionaries.add(new Dictionary(name, settings, hook, null, 0));
                addName(names, name, where);
            }
            for (Config clt : c.getConfigList("clts")) {
                String name = required(clt, "name", where);
                if (!clt.hasPath("layers")) {
                    throw new IllegalArgumentException(where + ": clt " + name + " needs `layers` (the CLT spans layers 0..layers-1)");
                }
                CltSettings settings = CltSettings.of(clt.withoutPath("name").withoutPath("layers"), where + " (clt " + name + ")");
                dictionaries.add(new Dictionary(name, null, null, settings, clt.getInt("layers")));
                addName(names, name, where);
            }
            if (dictionaries.isEmpty()) {
                throw new IllegalArgumentException(where + ": no dictionaries to train; list at least one in `saes` or `clts`");
            }
            return new Plan(c, dictionaries, Path.of(c.getString("out")));
        } catch (ConfigException.WrongType e) {
            throw new IllegalArgumentException(where + ": wrong type: " + e.getMessage());
        }
    }

    private static String required(Config c, String key, String where) {
        if (!c.hasPath(key)) {
            throw new IllegalArgumentException(where + ": every dictionary needs `" + key + "`");
        }
        return c.getString(key);
    }

    private static void addName(Set<String> names, String name, String where) {
        if (!names.add(name) || !name.matches("[A-Za-z0-9._-]+")) {
            throw new IllegalArgumentException(where + ": dictionary name '" + name
                    + "' is repeated or not a plain file name (letters, digits, . _ -)");
        }
    }

    /** Hooks the cache needs for the plan's dictionaries. */
    static List<String> hooks(Plan plan) {
        Set<String> hooks = new LinkedHashSet<>();
        for (Dictionary d : plan.dictionaries()) {
            if (d.isClt()) {
                for (int l = 0; l < d.layers(); l++) {
                    hooks.add("blocks." + l + "." + d.clt().hookIn());
                    hooks.add("blocks." + l + "." + d.clt().hookOut());
                }
            } else {
                hooks.add(d.hook());
            }
        }
        return new ArrayList<>(hooks);
    }

    /** Runs the plan; returns the summary that is also written to {@code out/summary.json}. */
    public static Map<String, Object> run(SparkSession spark, Plan plan, PrintStream progress) {
        Config c = plan.settings();
        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        Path out = plan.out();
        String model = c.getString("model");
        String tokens = out.resolve("tokens").toString();
        String activations = out.resolve("activations").toString();
        Map<String, Object> summary = new LinkedHashMap<>();
        Map<String, Double> stageSeconds = new LinkedHashMap<>();
        long started = System.nanoTime();

        stage(progress, stageSeconds, "tokenize", Files.exists(out.resolve("tokens").resolve(TokenTableManifest.FILE)), () -> {
            String format = c.getString("format");
            TokenizeJob.run(spark, new TokenizeJob.Options(model, c.getString("corpus"),
                    format.isEmpty() ? guessFormat(c.getString("corpus")) : TokenizeJob.InputFormat.valueOf(format.toUpperCase(Locale.ROOT)),
                    c.getString("split").equals("blank-line") ? TokenizeJob.TextSplit.BLANK_LINE : TokenizeJob.TextSplit.LINE,
                    c.getString("text-field"), c.getInt("context-size"), false, null, false, tokens, false));
        });
        stage(progress, stageSeconds, "cache", Files.exists(out.resolve("activations").resolve(ActivationManifest.FILE_NAME)), () ->
                CacheJob.run(spark, new CacheJob.Options(model, tokens, hooks(plan), DType.parse(c.getString("dtype")),
                        c.getInt("batch-sequences"), c.getInt("shard-sequences"), null, c.getBoolean("skip-bos"), false,
                        activations, false, CacheJob.Fault.NONE, -1)));
        for (Dictionary d : plan.dictionaries()) {
            Path dir = out.resolve("dictionaries").resolve(d.name());
            boolean done = Files.exists(dir.resolve(d.isClt() ? "config.yaml" : "cfg.json"));
            boolean resume = Files.isDirectory(dir.resolve("checkpoints"));
            stage(progress, stageSeconds, "train " + d.name(), done, () -> {
                if (d.isClt()) {
                    TrainCltJob.train(hadoop, activations, d.layers(), d.clt(), dir.toString(), resume,
                            training.clt.CltTrainer.consoleProgress(progress));
                } else {
                    TrainSaeJob.train(hadoop, activations, new TrainSaeJob.Run(d.name(), d.hook(), d.sae(), dir.toString()),
                            resume, training.trainer.SaeTrainer.consoleProgress(progress));
                }
            });
        }
        for (Dictionary d : plan.dictionaries()) {
            String dir = out.resolve("dictionaries").resolve(d.name()).toString();
            Path evaluation = out.resolve("evaluations").resolve(d.name());
            stage(progress, stageSeconds, "evaluate " + d.name(), Files.exists(evaluation.resolve("evaluation.json")), () -> {
                if (d.isClt()) {
                    TranscoderEvaluateJob.run(spark, new TranscoderEvaluateJob.Options(dir, model, tokens,
                            c.getInt("evaluate-sequences"), evaluation.toString(), false));
                } else {
                    EvaluateJob.run(spark, new EvaluateJob.Options(dir, model, tokens, c.getInt("evaluate-sequences"),
                            c.getInt("batch-sequences"), evaluation.toString(), false));
                }
            });
            if (!d.isClt()) {
                Path features = out.resolve("features").resolve(d.name());
                stage(progress, stageSeconds, "features " + d.name(), Files.exists(features.resolve("summary.json")), () ->
                        FeaturesJob.run(spark, new FeaturesJob.Options(dir, activations, tokens, model,
                                c.getInt("feature-top-k"), c.getInt("feature-context"),
                                spark.sparkContext().defaultParallelism(), features.toString(), false)));
            }
            summary.put(d.name(), readJson(evaluation.resolve("evaluation.json")));
        }
        double wall = (System.nanoTime() - started) / 1e9;
        double compute = stageSeconds.values().stream().mapToDouble(Double::doubleValue).sum();
        summary.put("stage_seconds", stageSeconds);
        summary.put("wall_seconds", wall);
        summary.put("pipeline_overhead", compute > 0 ? wall / compute : Double.NaN);
        summary.put("dashboards", plan.dictionaries().stream().filter(d -> !d.isClt())
                .map(d -> out.resolve("features").resolve(d.name()).resolve("dashboard/index.html").toString()).toList());
        writeJson(out.resolve("summary.json"), summary);
        return summary;
    }

    private interface Stage {
        void run();
    }

    private static void stage(PrintStream progress, Map<String, Double> seconds, String name, boolean done, Stage stage) {
        if (done) {
            progress.printf(Locale.ROOT, "== %s: complete output exists, skipped%n", name);
            return;
        }
        progress.printf(Locale.ROOT, "== %s%n", name);
        long start = System.nanoTime();
        stage.run();
        double elapsed = (System.nanoTime() - start) / 1e9;
        seconds.put(name, elapsed);
        progress.printf(Locale.ROOT, "== %s done in %.1f s%n", name, elapsed);
    }

    private static TokenizeJob.InputFormat guessFormat(String input) {
        String lower = input.toLowerCase(Locale.ROOT);
        if (lower.endsWith(".parquet")) {
            return TokenizeJob.InputFormat.PARQUET;
        }
        return lower.endsWith(".jsonl") || lower.endsWith(".json") ? TokenizeJob.InputFormat.JSONL : TokenizeJob.InputFormat.TEXT;
    }

    private static Object readJson(Path file) {
        try {
            return new ObjectMapper().readValue(file.toFile(), Object.class);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    private static void writeJson(Path file, Object value) {
        try {
            Files.createDirectories(file.getParent());
            Path temp = file.resolveSibling("." + file.getFileName() + ".tmp");
            new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(temp.toFile(), value);
            Files.move(temp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }
}
