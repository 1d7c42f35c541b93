package jobs.pipeline;

import activations.safetensors.DType;
import activations.table.ActivationManifest;
import activations.table.PackedVectors;
import activations.table.TokenTableManifest;
import activations.tokenizer.JsonFiles;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import jobs.cache.CacheJob;
import jobs.config.ConfigKeys;
import jobs.drift.DriftJob;
import jobs.evaluate.EvaluateJob;
import jobs.evaluate.TranscoderEvaluateJob;
import jobs.features.FeaturesJob;
import jobs.tokenize.TokenizeJob;
import jobs.train.CltSettings;
import jobs.train.SaeSettings;
import jobs.train.TrainCltJob;
import jobs.train.TrainSaeJob;
import jobs.output.StagedOutput;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.SparkSession;
import training.drift.DriftReport;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.time.LocalDate;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Every stage from one configuration (section {@code spindle.pipeline} of conf/reference.conf):
 * tokenize, cache, train the listed SAEs and CLTs, evaluate them, build feature tables and, for
 * nightly runs, the drift against the previous night. A stage whose complete output already exists
 * (by its manifest or final file) is skipped, and training resumes from its checkpoints, so
 * re-running after a failure continues where it stopped.
 *
 * <p>Layout under {@code out}: without a run date, everything directly there. With one, the night's
 * dictionaries, evaluations, feature tables, drift reports and summary go to {@code runs/DATE/};
 * the cache goes there too, or, in incremental mode, to {@code cache/}, shared by all nights and
 * grown by the corpus files not cached yet ({@link IncrementalCache}). Runs beyond
 * {@code keep-runs} are deleted, oldest first.
 */
public final class PipelineJob {

    static final String SECTION = "spindle.pipeline";

    /** One dictionary to train: an SAE on a hook, or a CLT over layers 0..N-1. */
    public record Dictionary(String name, SaeSettings sae, String hook, CltSettings clt, int layers) {
        boolean isClt() {
            return clt != null;
        }
    }

    /**
     * The checked plan: everything validated before any Spark work. {@code out} is the output root,
     * {@code run} this run's directory ({@code out} or {@code out/runs/DATE}), {@code cache} where
     * the token table and activation cache live; {@code runDate} is null for an undated run.
     */
    public record Plan(Config settings, List<Dictionary> dictionaries, Path out, String runDate, Path run, Path cache,
                       boolean incremental) {
    }

    static final String RUNS = "runs";

    private PipelineJob() {
    }

    /** Reads and checks a pipeline configuration (keys, types, paths) without touching Spark. */
    public static Plan plan(Config overrides, String where) {
        Config defaults = ConfigFactory.defaultReference().getConfig(SECTION);
        ConfigKeys.check(overrides, defaults.root().keySet(), where);
        Config c = overrides.withFallback(defaults).resolve();
        try {
            java.nio.file.Path model = java.nio.file.Path.of(c.getString("model"));
            if (!c.getString("model").contains("://") && !Files.isDirectory(model)) {
                throw new IllegalArgumentException(where + ": model " + model + " is not a directory; set `model`");
            }
            if (!c.getString("corpus").contains("://") && !Files.exists(java.nio.file.Path.of(c.getString("corpus")))) {
                throw new IllegalArgumentException(where + ": corpus " + c.getString("corpus") + " does not exist; set `corpus`");
            }
            try {
                format(c);
                TokenizeJob.TextSplit.parse(c.getString("split"));
                PackedVectors.checkFloat(DType.parse(c.getString("dtype")));
                CacheJob.Shuffle.parse(c.getString("shuffle"));
                c.getLong("shuffle-seed");
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(where + ": " + e.getMessage());
            }
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
            if (c.getString("out").isBlank()) {
                throw new IllegalArgumentException(where + ": out is empty; set `out` to a local path or a filesystem URI (hdfs://, s3a://)");
            }
            Path out = new Path(c.getString("out"));
            String runDate = runDate(c.getString("run-date"), where);
            boolean incremental = c.getBoolean("incremental");
            if (incremental && runDate == null) {
                throw new IllegalArgumentException(where + ": incremental = true needs a run date (its dictionaries are "
                        + "retrained each night on the grown cache); pass --date or set `run-date`");
            }
            if (c.getInt("keep-runs") < 0) {
                throw new IllegalArgumentException(where + ": keep-runs = " + c.getInt("keep-runs") + "; use 0 (keep all) or more");
            }
            double threshold = c.getDouble("drift-threshold");
            if (!(threshold > 0 && threshold <= 1)) {
                throw new IllegalArgumentException(where + ": drift-threshold = " + threshold + "; use a cosine in (0, 1]");
            }
            Path run = runDate == null ? out : child(out, RUNS, runDate);
            return new Plan(c, dictionaries, out, runDate, run, incremental ? child(out, "cache") : run, incremental);
        } catch (ConfigException.WrongType e) {
            throw new IllegalArgumentException(where + ": wrong type: " + e.getMessage());
        }
    }

    /** A run date as YYYY-MM-DD ("today" is the local date); null when empty. */
    static String runDate(String value, String where) {
        if (value.isEmpty()) {
            return null;
        }
        if (value.equals("today")) {
            return LocalDate.now().toString();
        }
        try {
            return LocalDate.parse(value).toString();
        } catch (DateTimeParseException e) {
            throw new IllegalArgumentException(where + ": run date '" + value + "' is not a date; use YYYY-MM-DD or today");
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

    /** Runs the plan; returns the summary that is also written to {@code run/summary.json}. */
    public static Map<String, Object> run(SparkSession spark, Plan plan, PrintStream progress) {
        Config c = plan.settings();
        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        Path run = plan.run();
        String model = c.getString("model");
        String tokens = child(plan.cache(), "tokens").toString();
        String activations = child(plan.cache(), "activations").toString();
        Map<String, Object> summary = new LinkedHashMap<>();
        Map<String, Double> stageSeconds = new LinkedHashMap<>();
        long started = System.nanoTime();
        if (plan.runDate() != null) {
            summary.put("run_date", plan.runDate());
        }

        TokenizeJob.Options tokenize = new TokenizeJob.Options(model, c.getString("corpus"), format(c),
                TokenizeJob.TextSplit.parse(c.getString("split")),
                c.getString("text-field"), c.getInt("context-size"), false, null, false, tokens, false);
        CacheJob.Options cache = new CacheJob.Options(model, tokens, hooks(plan), DType.parse(c.getString("dtype")),
                c.getInt("batch-sequences"), c.getInt("shard-sequences"), null, c.getBoolean("skip-bos"), false,
                activations, false, CacheJob.Fault.NONE, -1, c.getBoolean("hold-out") ? c.getInt("evaluate-sequences") : 0)
                .withShuffle(CacheJob.Shuffle.parse(c.getString("shuffle")), c.getString("shuffle").trim().equalsIgnoreCase("none")
                        ? null : c.getLong("shuffle-seed"));
        if (plan.incremental()) {
            Path root = plan.cache();
            List<org.apache.hadoop.fs.FileStatus> fresh = IncrementalCache.newFiles(hadoop, root, c.getString("corpus"));
            stage(progress, stageSeconds, "cache (incremental, " + fresh.size() + " new corpus files)", fresh.isEmpty(), () ->
                    IncrementalCache.add(spark, root, fresh, tokenize, cache, progress));
            List<TokenTableManifest.Part> parts = IncrementalCache.ledger(hadoop, root);
            summary.put("cache", Map.of("corpus_files", parts.size(), "new_corpus_files", fresh.size(),
                    "sequences", parts.stream().mapToLong(TokenTableManifest.Part::sequences).sum(),
                    "tokens", parts.stream().mapToLong(TokenTableManifest.Part::tokens).sum()));
        } else {
            stage(progress, stageSeconds, "tokenize", exists(hadoop, new Path(tokens, TokenTableManifest.FILE)), () ->
                    TokenizeJob.run(spark, tokenize));
            stage(progress, stageSeconds, "cache", exists(hadoop, new Path(activations, ActivationManifest.FILE_NAME)), () ->
                    CacheJob.run(spark, cache));
        }
        for (Dictionary d : plan.dictionaries()) {
            Path dir = child(run, "dictionaries", d.name());
            boolean resume = exists(hadoop, child(dir, "checkpoints"));
            stage(progress, stageSeconds, "train " + d.name(), isTrained(hadoop, dir, d), () -> {
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
            String dir = child(run, "dictionaries", d.name()).toString();
            Path evaluation = child(run, "evaluations", d.name());
            stage(progress, stageSeconds, "evaluate " + d.name(), exists(hadoop, child(evaluation, "evaluation.json")), () -> {
                if (d.isClt()) {
                    TranscoderEvaluateJob.run(spark, new TranscoderEvaluateJob.Options(dir, model, tokens,
                            c.getInt("evaluate-sequences"), evaluation.toString(), false));
                } else {
                    EvaluateJob.run(spark, new EvaluateJob.Options(dir, model, tokens, c.getInt("evaluate-sequences"),
                            c.getInt("batch-sequences"), evaluation.toString(), false));
                }
            });
            if (!d.isClt()) {
                Path features = child(run, "features", d.name());
                stage(progress, stageSeconds, "features " + d.name(), exists(hadoop, child(features, "summary.json")), () ->
                        FeaturesJob.run(spark, new FeaturesJob.Options(dir, activations, tokens, model,
                                c.getInt("feature-top-k"), c.getInt("feature-context"),
                                spark.sparkContext().defaultParallelism(), features.toString(), false,
                                child(evaluation, "evaluation.json").toString())));
            }
            summary.put(d.name(), readJson(hadoop, child(evaluation, "evaluation.json")));
        }
        if (plan.runDate() != null) {
            Map<String, Object> drifts = drift(hadoop, plan, progress, stageSeconds);
            if (!drifts.isEmpty()) {
                summary.put("drift", drifts);
            }
        }
        summary.put("evaluated_on", "the last " + c.getInt("evaluate-sequences") + " sequences of the token table"
                + (c.getBoolean("hold-out") ? ", held out of the activation cache" : " (also in the activation cache)"));
        double wall = (System.nanoTime() - started) / 1e9;
        double compute = stageSeconds.values().stream().mapToDouble(Double::doubleValue).sum();
        summary.put("stage_seconds", stageSeconds);
        summary.put("wall_seconds", wall);
        summary.put("pipeline_overhead", compute > 0 ? wall / compute : Double.NaN);
        summary.put("dashboards", plan.dictionaries().stream().filter(d -> !d.isClt())
                .map(d -> child(run, "features", d.name(), "dashboard", "index.html").toString()).toList());
        if (plan.runDate() != null) {
            summary.put("pruned_runs", RunRetention.prune(hadoop, child(plan.out(), RUNS), plan.runDate(), c.getInt("keep-runs"),
                    progress));
        }
        StagedOutput.file(hadoop, child(run, "summary.json").toString(), true, file -> JsonFiles.write(file, summary));
        return summary;
    }

    /**
     * Each SAE of a dated run against the same-named SAE of the newest earlier run that has it:
     * drift.json under {@code drift/NAME/} and drift.html in the new dashboard.
     */
    private static Map<String, Object> drift(Configuration hadoop, Plan plan, PrintStream progress, Map<String, Double> stageSeconds) {
        Map<String, Object> drifts = new LinkedHashMap<>();
        double threshold = plan.settings().getDouble("drift-threshold");
        for (Dictionary d : plan.dictionaries()) {
            if (d.isClt()) {
                continue; // decoder matching is defined for one dictionary per hook; CLT features span layers
            }
            String previous = previousRun(hadoop, plan, d);
            if (previous == null) {
                continue;
            }
            Path older = child(plan.out(), RUNS, previous);
            Path out = child(plan.run(), "drift", d.name());
            Path newFeatures = child(plan.run(), "features", d.name());
            boolean done = exists(hadoop, child(out, DriftReport.FILE_NAME))
                    && (!exists(hadoop, child(newFeatures, "dashboard", "index.html"))
                        || exists(hadoop, child(newFeatures, "dashboard", "drift.html")));
            stage(progress, stageSeconds, "drift " + d.name() + " since " + previous, done, () ->
                    DriftJob.run(hadoop, child(older, "dictionaries", d.name()).toString(),
                            child(plan.run(), "dictionaries", d.name()).toString(),
                            existing(hadoop, child(older, "features", d.name())), existing(hadoop, newFeatures), threshold,
                            out.toString()));
            DriftReport report = readJson(hadoop, child(out, DriftReport.FILE_NAME), DriftReport.class);
            Map<String, Object> entry = new LinkedHashMap<>();
            entry.put("since", previous);
            entry.put("threshold", threshold);
            entry.put("matched_share", report.matchedShare());
            entry.put("matched_share_live", report.matchedShareLive());
            entry.put("new_features", report.newFeatures().size());
            entry.put("vanished_features", report.vanishedFeatures().size());
            entry.put("report", child(out, DriftReport.FILE_NAME).toString());
            drifts.put(d.name(), entry);
        }
        return drifts;
    }

    /** The newest run before this one whose dictionary {@code d} is complete; null if none. */
    private static String previousRun(Configuration hadoop, Plan plan, Dictionary d) {
        List<String> runs = RunRetention.runs(hadoop, child(plan.out(), RUNS));
        String found = null;
        for (String run : runs) {
            if (run.compareTo(plan.runDate()) < 0 && isTrained(hadoop, child(plan.out(), RUNS, run, "dictionaries", d.name()), d)) {
                found = run;
            }
        }
        return found;
    }

    private static String existing(Configuration hadoop, Path dir) {
        try {
            return dir.getFileSystem(hadoop).isDirectory(dir) ? dir.toString() : null;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + dir + ": " + e.getMessage(), e);
        }
    }

    private static boolean isTrained(Configuration hadoop, Path dir, Dictionary d) {
        return exists(hadoop, child(dir, d.isClt() ? "config.yaml" : "cfg.json"));
    }

    /** {@code parent/a/b/...} on the parent's filesystem. */
    static Path child(Path parent, String... names) {
        Path p = parent;
        for (String name : names) {
            p = new Path(p, name);
        }
        return p;
    }

    static boolean exists(Configuration hadoop, Path path) {
        try {
            return path.getFileSystem(hadoop).exists(path);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + path + ": " + e.getMessage(), e);
        }
    }

    private static Object readJson(Configuration hadoop, Path file) {
        return readJson(hadoop, file, Object.class);
    }

    private static <T> T readJson(Configuration hadoop, Path file, Class<T> type) {
        try (InputStream in = file.getFileSystem(hadoop).open(file)) {
            return new com.fasterxml.jackson.databind.ObjectMapper().readValue(in, type);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    private static TokenizeJob.InputFormat format(Config c) {
        String format = c.getString("format");
        return format.isEmpty() ? TokenizeJob.InputFormat.guess(c.getString("corpus")) : TokenizeJob.InputFormat.parse(format);
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
}
