package jobs.features;

import activations.model.ComputeThreads;
import activations.model.TransformerModel;
import activations.table.ActivationManifest;
import activations.table.ActivationTableReader;
import activations.table.TokenTableManifest;
import activations.tokenizer.TextTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import jobs.output.OutputDirectory;
import jobs.output.StagedOutput;
import jobs.spark.ExecutorDictionaries;
import jobs.spark.ExecutorResources;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.util.SerializableConfiguration;
import org.nd4j.linalg.factory.Nd4j;
import training.dashboard.DashboardWriter;
import training.evaluation.FeatureDictionary;
import training.features.Example;
import training.features.FeatureAccumulator;
import training.features.FeatureReport;
import training.features.FeatureTables;
import training.features.LogitTables;
import training.features.NeuronpediaExport;

import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.IntStream;

import static org.apache.spark.sql.functions.col;

/**
 * {@code spindle features}: per-feature statistics, top-k and quantile examples with context
 * windows, logit tables, Parquet tables, a Neuronpedia-style JSON export and a static dashboard.
 *
 * <p>Pass 1 reads the activation cache once, split into {@code partitions} disjoint row ranges
 * ({@link ActivationTableReader.Options#replica}), one Spark task each; each task encodes its rows
 * and fills a {@link FeatureAccumulator} (memory bounded by d_sae x (k + quantile samples), not by
 * tokens); the driver merges them. Then the sequences of the chosen examples (only those) are read
 * from the token table, and window activations are READ BACK FROM THE CACHE: a second pass in which
 * each task encodes only the rows of those sequences, so window values are exactly the values the
 * statistics saw (recomputing with the model would differ by the cache's storage rounding).
 */
public final class FeaturesJob {

    /** {@code evaluation}: the dictionary's evaluation.json shown on the dashboard's index page, or null. */
    public record Options(String dictionary, String activations, String tokens, String model, int topK, int context,
                          int partitions, String output, boolean overwrite, String evaluation) implements Serializable {
        public Options(String dictionary, String activations, String tokens, String model, int topK, int context,
                       int partitions, String output, boolean overwrite) {
            this(dictionary, activations, tokens, model, topK, context, partitions, output, overwrite, null);
        }
    }

    public record Result(List<FeatureReport> features, String hook, boolean logitsComputed) {
    }

    /**
     * Window activations found by one task: growable primitive columns, no object per value (a class:
     * Kryo cannot serialize records).
     */
    static final class WindowValues implements Serializable {
        long[] seqs = new long[256];
        int[] positions = new int[256];
        int[] features = new int[256];
        float[] values = new float[256];
        int size;

        void add(long seq, int pos, int feature, float value) {
            if (size == values.length) {
                int n = 2 * size;
                seqs = java.util.Arrays.copyOf(seqs, n);
                positions = java.util.Arrays.copyOf(positions, n);
                features = java.util.Arrays.copyOf(features, n);
                values = java.util.Arrays.copyOf(values, n);
            }
            seqs[size] = seq;
            positions[size] = pos;
            features[size] = feature;
            values[size] = value;
            size++;
        }
    }

    static final int BATCH_ROWS = 512;
    static final int LOGIT_TOKENS = 10;
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private FeaturesJob() {
    }

    public static Result run(SparkSession spark, Options o) {
        if (o.topK() < 1 || o.context() < 0 || o.partitions() < 1) {
            throw new IllegalArgumentException("--top-k and --partitions must be at least 1 and --context at least 0");
        }
        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        FeatureDictionary dictionary = ExecutorDictionaries.get(o.dictionary());
        Path cacheDir = new Path(o.activations());
        ActivationManifest cache = ActivationManifest.read(hadoop, cacheDir);
        String hook = chooseHook(dictionary, cache, o.activations());
        if (cache.tokenCount() == 0) {
            throw new IllegalArgumentException("the activation cache " + o.activations() + " holds no rows; build it from a non-empty token table");
        }
        TokenTableManifest tokenTable = TokenTableManifest.readChecked(hadoop, new Path(o.tokens()));
        String modelDir = o.model() != null ? o.model() : tokenTable.modelDir();
        if (modelDir == null) {
            throw new IllegalArgumentException("the token table names no model directory; pass --model");
        }
        TextTokenizer tokenizer = ExecutorResources.tokenizer(modelDir);
        JsonNode evaluation = o.evaluation() == null ? null : readEvaluation(hadoop, o.evaluation());

        OutputDirectory out = OutputDirectory.begin(hadoop, o.output(), "summary.json", o.overwrite());
        try {
            Broadcast<SerializableConfiguration> conf = JavaSparkContext.fromSparkContext(spark.sparkContext())
                    .broadcast(new SerializableConfiguration(hadoop));
            JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
            List<Integer> parts = IntStream.range(0, o.partitions()).boxed().toList();
            String dictionaryDir = o.dictionary();
            String cachePath = cacheDir.toString();
            int parallelism = o.partitions();
            int k = o.topK();
            // reduce, not collect: the driver merges each task's accumulator as it arrives, so it holds
            // two O(d_sae x k) accumulators at a time, not one per partition.
            FeatureAccumulator merged = jsc.parallelize(parts, parts.size())
                    .map(part -> accumulate(conf.value().value(), cachePath, hook, dictionaryDir, part, parallelism, k))
                    .reduce(FeatureAccumulator::merge);
            if (merged.tokens > 0 && tokenIdsMissing(merged)) {
                throw new IllegalArgumentException("the activation cache " + o.activations()
                        + " has no token ids (imported activations); feature windows need a cache made by `spindle cache`");
            }

            List<Example> examples = new ArrayList<>();
            for (int f = 0; f < merged.dSae; f++) {
                examples.addAll(merged.top(f));
                examples.addAll(merged.quantileSamples(f));
            }
            Map<Long, int[]> sequences = fetchSequences(spark, tokenTable.dataPaths(new Path(o.tokens())), examples);
            checkTokensMatch(examples, sequences, o, cache);

            Map<Long, TreeSet<Integer>> wanted = new HashMap<>();
            for (Example e : examples) {
                wanted.computeIfAbsent(e.seqId(), s -> new TreeSet<>()).add(e.feature());
            }
            Map<Long, int[]> wantedFeatures = new HashMap<>();
            wanted.forEach((seq, features) -> wantedFeatures.put(seq, features.stream().mapToInt(Integer::intValue).toArray()));
            Broadcast<Map<Long, int[]>> wantedBroadcast = jsc.broadcast(wantedFeatures);
            Map<String, Float> windowValues = new HashMap<>();
            for (WindowValues part : jsc.parallelize(parts, parts.size())
                    .map(part -> windowActivations(conf.value().value(), cachePath, hook, dictionaryDir, part, parallelism,
                            wantedBroadcast.value()))
                    .collect()) {
                for (int i = 0; i < part.size; i++) {
                    windowValues.put(part.seqs[i] + ":" + part.positions[i] + ":" + part.features[i], part.values[i]);
                }
            }

            LogitTables.Table[] logits = null;
            TransformerModel model = ExecutorResources.model(modelDir);
            boolean residual = dictionary.dOut() == model.config().dModel();
            if (residual) {
                logits = LogitTables.compute(dictionary.decoderDirections(), model.finalNormGain(), model.unembedding(), LOGIT_TOKENS)
                        .toArray(new LogitTables.Table[0]);
            }
            List<FeatureReport> reports = assemble(merged, examples, sequences, windowValues, logits, tokenizer, o.context());

            Map<String, Object> summary = new LinkedHashMap<>();
            summary.put("dictionary", o.dictionary());
            summary.put("activations", o.activations());
            summary.put("tokens_table", o.tokens());
            summary.put("hook", hook);
            summary.put("d_sae", merged.dSae);
            summary.put("tokens", merged.tokens);
            summary.put("top_k", k);
            summary.put("context", o.context());
            summary.put("partitions", parallelism);
            summary.put("logit_tables", residual ? "computed through the final norm gain and the unembedding"
                    : "skipped: the dictionary's output width " + dictionary.dOut() + " is not d_model " + model.config().dModel());
            StagedOutput.publish(hadoop, out, staging -> {
                FeatureTables.write(staging, reports);
                NeuronpediaExport.write(staging.resolve("neuronpedia.json"), reports);
                DashboardWriter.write(staging.resolve("dashboard"), "Spindle features: " + hook + " (" + o.dictionary() + ")", reports,
                        evaluation, o.evaluation());
                JSON.writeValue(staging.resolve("summary.json").toFile(), summary);
            });
            return new Result(reports, hook, residual);
        } catch (IOException e) {
            out.abandon();
            throw new UncheckedIOException("cannot write " + o.output() + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            out.abandon();
            throw e;
        }
    }

    /** The evaluation.json to show on the dashboard, read through Hadoop's FileSystem (any filesystem). */
    static JsonNode readEvaluation(Configuration hadoop, String file) {
        Path path = new Path(file);
        try {
            org.apache.hadoop.fs.FileSystem fs = path.getFileSystem(hadoop);
            if (!fs.isFile(path)) {
                throw new IllegalArgumentException("--evaluation " + file + " is not a file; pass the evaluation.json"
                        + " that `spindle evaluate` wrote for this dictionary, or leave --evaluation out");
            }
            try (java.io.InputStream in = fs.open(path)) {
                JsonNode node = new ObjectMapper().readTree(in);
                if (node == null || !node.isObject()) {
                    throw new IllegalArgumentException("--evaluation " + file + " is not a JSON object; pass an evaluation.json"
                            + " written by `spindle evaluate`");
                }
                return node;
            }
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException("--evaluation " + file + " is not valid JSON (" + e.getOriginalMessage()
                    + "); pass an evaluation.json written by `spindle evaluate`");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read --evaluation " + file + ": " + e.getMessage(), e);
        }
    }

    static String chooseHook(FeatureDictionary dictionary, ActivationManifest cache, String dir) {
        String hook = dictionary.hookName();
        if (hook == null || cache.dim(hook) < 0) {
            if (cache.hooks().size() == 1 && hook == null) {
                hook = cache.hookNames().get(0);
            } else {
                throw new IllegalArgumentException("the activation cache " + dir + " has no hook " + hook
                        + " (the dictionary's hook); it has " + cache.hookNames() + ": cache the dictionary's hook");
            }
        }
        if (cache.dim(hook) != dictionary.dIn()) {
            throw new IllegalArgumentException("the dictionary's d_in is " + dictionary.dIn() + " but hook " + hook + " in "
                    + dir + " has width " + cache.dim(hook) + "; use a dictionary trained on this hook");
        }
        return hook;
    }

    /** Imported caches have no token ids at all, so the merged top examples show it. */
    private static boolean tokenIdsMissing(FeatureAccumulator a) {
        for (int f = 0; f < a.dSae; f++) {
            for (Example e : a.top(f)) {
                if (e.tokenId() < 0) {
                    return true;
                }
            }
        }
        return false;
    }

    /** Pass 1, one task: this part's rows of the cache encoded and accumulated. */
    static FeatureAccumulator accumulate(Configuration conf, String cache, String hook, String dictionaryDir, int part,
                                         int parts, int k) {
        limitThreads();
        FeatureDictionary dictionary = ExecutorDictionaries.get(dictionaryDir);
        FeatureAccumulator acc = new FeatureAccumulator(dictionary.dSae(), k, 0x5EEDL + part);
        try (ActivationTableReader reader = ActivationTableReader.open(conf, new Path(cache), List.of(hook),
                ActivationTableReader.Options.replica(part, parts).withRowMetadata())) {
            int d = dictionary.dIn();
            FloatBuffer buffer = FloatBuffer.allocate(BATCH_ROWS * d);
            ActivationTableReader.RowMetadata meta = new ActivationTableReader.RowMetadata(BATCH_ROWS);
            while (true) {
                buffer.clear();
                meta.offset = 0;
                int n = reader.read(new FloatBuffer[] {buffer}, BATCH_ROWS, meta);
                if (n == 0) {
                    break;
                }
                float[] features = encode(dictionary, buffer.array(), n, d);
                acc.add(features, meta.seqIds, meta.positions, meta.tokenIds, n);
            }
        }
        return acc;
    }

    /** Pass 2, one task: the wanted features' activations on every cached row of the wanted sequences. */
    static WindowValues windowActivations(Configuration conf, String cache, String hook, String dictionaryDir, int part,
                                          int parts, Map<Long, int[]> wanted) {
        limitThreads();
        FeatureDictionary dictionary = ExecutorDictionaries.get(dictionaryDir);
        WindowValues out = new WindowValues();
        int d = dictionary.dIn();
        try (ActivationTableReader reader = ActivationTableReader.open(conf, new Path(cache), List.of(hook),
                ActivationTableReader.Options.replica(part, parts).withRowMetadata())) {
            FloatBuffer buffer = FloatBuffer.allocate(BATCH_ROWS * d);
            float[] selected = new float[BATCH_ROWS * d];
            long[] seqs = new long[BATCH_ROWS];
            int[] positions = new int[BATCH_ROWS];
            ActivationTableReader.RowMetadata meta = new ActivationTableReader.RowMetadata(BATCH_ROWS);
            while (true) {
                buffer.clear();
                meta.offset = 0;
                int n = reader.read(new FloatBuffer[] {buffer}, BATCH_ROWS, meta);
                if (n == 0) {
                    break;
                }
                int kept = 0;
                for (int r = 0; r < n; r++) {
                    if (wanted.containsKey(meta.seqIds[r])) {
                        System.arraycopy(buffer.array(), r * d, selected, kept * d, d);
                        seqs[kept] = meta.seqIds[r];
                        positions[kept] = meta.positions[r];
                        kept++;
                    }
                }
                if (kept == 0) {
                    continue;
                }
                float[] features = encode(dictionary, selected, kept, d);
                int dSae = dictionary.dSae();
                for (int r = 0; r < kept; r++) {
                    for (int f : wanted.get(seqs[r])) {
                        out.add(seqs[r], positions[r], f, features[r * dSae + f]);
                    }
                }
            }
        }
        return out;
    }

    private static void limitThreads() {
        TaskContext task = TaskContext.get();
        if (task != null) {
            // All pools (ND4J, OpenMP, OpenBLAS, the model's loops), not ND4J's alone: tasks share the cores.
            ComputeThreads.limit(Math.max(1, task.cpus()));
        }
    }

    private static float[] encode(FeatureDictionary dictionary, float[] rows, int n, int d) {
        float[] input = rows.length == n * d ? rows : java.util.Arrays.copyOf(rows, n * d);
        var features = dictionary.encode(Nd4j.createFromArray(input).reshape(n, d));
        return features.dup('c').reshape(features.length()).toFloatVector();
    }

    /** Only the sequences the examples are in, from the token table. */
    static Map<Long, int[]> fetchSequences(SparkSession spark, String[] tokenPaths, List<Example> examples) {
        TreeSet<Long> ids = new TreeSet<>();
        examples.forEach(e -> ids.add(e.seqId()));
        Map<Long, int[]> out = new HashMap<>();
        if (ids.isEmpty()) {
            return out;
        }
        for (Row row : spark.read().parquet(tokenPaths).select(col("seq_id"), col("tokens"))
                .where(col("seq_id").isin(ids.toArray())).collectAsList()) {
            List<Integer> list = row.getList(1);
            out.put(row.getLong(0), list.stream().mapToInt(Integer::intValue).toArray());
        }
        return out;
    }

    static void checkTokensMatch(List<Example> examples, Map<Long, int[]> sequences, Options o, ActivationManifest cache) {
        for (Example e : examples) {
            int[] seq = sequences.get(e.seqId());
            int inTable = seq == null || e.pos() >= seq.length ? -1 : seq[e.pos()];
            if (inTable != e.tokenId()) {
                throw new IllegalArgumentException("the token table " + o.tokens() + " does not match the activation cache "
                        + o.activations() + " (seq " + e.seqId() + " pos " + e.pos() + ": cache token " + e.tokenId() + ", table "
                        + (seq == null ? "has no such sequence" : "token " + inTable) + "); pass the token table the cache was made from"
                        + (cache.sourceTokenTable() == null ? "" : " (" + cache.sourceTokenTable() + ")"));
            }
        }
    }

    static List<FeatureReport> assemble(FeatureAccumulator acc, List<Example> examples, Map<Long, int[]> sequences,
                                        Map<String, Float> windowValues, LogitTables.Table[] logits, TextTokenizer tokenizer,
                                        int context) {
        Map<Integer, List<FeatureReport.WindowedExample>> byFeature = new TreeMap<>();
        for (Example e : examples) {
            int[] seq = sequences.get(e.seqId());
            int start = Math.max(0, e.pos() - context);
            int end = Math.min(seq.length, e.pos() + context + 1);
            int[] window = java.util.Arrays.copyOfRange(seq, start, end);
            String[] pieces = new String[window.length];
            float[] values = new float[window.length];
            for (int i = 0; i < window.length; i++) {
                pieces[i] = displayPiece(tokenizer, window[i]);
                Float v = windowValues.get(e.seqId() + ":" + (start + i) + ":" + e.feature());
                values[i] = v == null ? 0f : v;
            }
            byFeature.computeIfAbsent(e.feature(), f -> new ArrayList<>())
                    .add(new FeatureReport.WindowedExample(e, start, window, pieces, values));
        }
        List<FeatureReport> reports = new ArrayList<>();
        for (int f = 0; f < acc.dSae; f++) {
            LogitTables.Table table = logits == null ? null : logits[f];
            String[] top = table == null ? null : pieces(tokenizer, table.topTokens());
            String[] bottom = table == null ? null : pieces(tokenizer, table.bottomTokens());
            double mean = acc.firings[f] == 0 ? 0 : acc.sums[f] / acc.firings[f];
            reports.add(new FeatureReport(f, acc.firings[f], acc.tokens, acc.maxes[f], mean, acc.range(f), acc.histogram(f),
                    byFeature.getOrDefault(f, List.of()), table, top, bottom));
        }
        return reports;
    }

    private static String[] pieces(TextTokenizer tokenizer, int[] ids) {
        String[] out = new String[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = displayPiece(tokenizer, ids[i]);
        }
        return out;
    }

    /** A token's vocabulary piece made readable: SentencePiece/GPT-2 space and newline markers and byte tokens as text. */
    public static String displayPiece(TextTokenizer tokenizer, int id) {
        String piece = tokenizer.piece(id);
        if (piece.length() == 6 && piece.startsWith("<0x") && piece.endsWith(">")) {
            try {
                return String.valueOf((char) Integer.parseInt(piece.substring(3, 5), 16));
            } catch (NumberFormatException ignored) {
                return piece;
            }
        }
        return piece.replace('\u2581', ' ').replace('\u0120', ' ').replace('\u010A', '\n');
    }
}
