package jobs.analysis;

import activations.model.ComputeThreads;
import activations.model.TransformerModel;
import activations.table.TokenTableManifest;
import activations.tokenizer.JsonFiles;
import analysis.ablation.AblationLoss;
import analysis.ablation.AblationMeans;
import analysis.ablation.AblationMode;
import analysis.ablation.HookAblation;
import analysis.ablation.ResampleDonors;
import jobs.evaluate.EvaluateJob;
import jobs.output.OutputDirectory;
import jobs.output.StagedOutput;
import jobs.spark.ExecutorDictionaries;
import jobs.spark.ExecutorResources;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import training.evaluation.Charts;
import training.evaluation.FeatureDictionary;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code spindle ablate}: mean next-token CE over the last {@code sequences} sequences of a token
 * table, clean and with a hook (or listed SAE features) ablated. Sequences are spread over Spark
 * tasks; each task runs the model (and dictionary) loaded once per executor JVM and returns sums
 * the driver merges. Mean ablation first runs one pass for the data mean; resample ablation pairs
 * every sequence with a donor of the same length on the driver (seeded), so results do not depend
 * on the partitioning.
 */
public final class AblateJob {

    public record Options(String model, String tokens, String hook, String mode, String dictionary, int[] features,
                          int sequences, int batchSequences, long seed, double histogramRange, String output,
                          boolean overwrite) implements Serializable {
    }

    public record Result(Map<String, Object> report, AblationLoss loss) {
    }

    /** One sequence and its resample donor (null unless resampling); a class because Kryo cannot serialize records. */
    static final class Item implements Serializable {
        final long id;
        final int[] tokens;
        final int[] donor;

        Item(long id, int[] tokens, int[] donor) {
            this.id = id;
            this.tokens = tokens;
            this.donor = donor;
        }
    }

    private AblateJob() {
    }

    public static Result run(SparkSession spark, Options o) {
        if (o.sequences() < 1 || o.batchSequences() < 1) {
            throw new IllegalArgumentException("--sequences and --batch-sequences must be at least 1");
        }
        AblationMode mode = AblationMode.parse(o.mode());
        if (o.dictionary() == null && o.features() != null && o.features().length > 0) {
            throw new IllegalArgumentException("--features needs --dictionary (the SAE whose features to ablate)");
        }
        if (o.dictionary() != null && o.features() == null) {
            throw new IllegalArgumentException("--dictionary needs --features (the feature indices to ablate, e.g. --features 3,17)");
        }
        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        java.nio.file.Path localModel = ExecutorResources.localDirectory(o.model());
        if (!java.nio.file.Files.isDirectory(localModel)) {
            throw new IllegalArgumentException("--model " + o.model() + ": no such directory");
        }
        // Checks the hook, mode, dictionary and feature indices on the driver, before any task starts.
        HookAblation ablation = ablation(o);
        TokenTableManifest manifest = TokenTableManifest.readChecked(hadoop, new Path(o.tokens()));
        EvaluateJob.checkSameTokenizer(manifest, o.tokens(), localModel, o.model());
        // Refuses a complete output now, before any Spark work (StagedOutput checks again when it writes).
        OutputDirectory.begin(hadoop, o.output(), "ablation.json", o.overwrite());
        List<Row> rows = EvaluateJob.lastSequences(spark, manifest, o.tokens(), o.sequences());
        long[] ids = new long[rows.size()];
        int[][] tokens = new int[rows.size()][];
        for (int i = 0; i < rows.size(); i++) {
            ids[i] = rows.get(i).getLong(0);
            List<Integer> list = rows.get(i).getList(1);
            tokens[i] = list.stream().mapToInt(Integer::intValue).toArray();
        }
        int[] donors = mode == AblationMode.RESAMPLE ? ResampleDonors.assign(ids, lengths(tokens), o.seed()) : null;
        List<Item> items = new ArrayList<>();
        for (int i = 0; i < ids.length; i++) {
            if (donors == null) {
                items.add(new Item(ids[i], tokens[i], null));
            } else if (donors[i] >= 0) {
                items.add(new Item(ids[i], tokens[i], tokens[donors[i]]));
            }
        }
        if (items.isEmpty()) {
            throw new IllegalArgumentException("no two sequences of the token table have the same length, so none can be "
                    + "resampled; use more --sequences");
        }
        int partitions = Math.max(1, Math.min(items.size(), spark.sparkContext().defaultParallelism()));
        JavaRDD<Item> rdd = JavaSparkContext.fromSparkContext(spark.sparkContext()).parallelize(items, partitions);
        float[] means = null;
        if (mode == AblationMode.MEAN) {
            List<AblationMeans> sums = rdd.mapPartitions(it -> {
                List<Item> part = drain(it);
                HookAblation a = ablation(o);
                AblationMeans m = new AblationMeans(a.meanWidth());
                for (List<Item> batch : batches(part, o.batchSequences())) {
                    a.accumulateMeans(batch.stream().map(x -> x.tokens).toArray(int[][]::new), m);
                }
                return List.of(m).iterator();
            }).collect();
            AblationMeans total = sums.get(0);
            sums.subList(1, sums.size()).forEach(total::merge);
            means = total.means();
        }
        float[] dataMeans = means;
        List<AblationLoss> losses = rdd.mapPartitions(it -> {
            List<Item> part = drain(it);
            HookAblation a = ablation(o);
            if (dataMeans != null) {
                a.withMeans(dataMeans);
            }
            AblationLoss loss = new AblationLoss(o.histogramRange());
            for (List<Item> batch : batches(part, o.batchSequences())) {
                int[][] t = batch.stream().map(x -> x.tokens).toArray(int[][]::new);
                int[][] d = mode == AblationMode.RESAMPLE ? batch.stream().map(x -> x.donor).toArray(int[][]::new) : null;
                a.add(t, d, loss);
            }
            return List.of(loss).iterator();
        }).collect();
        AblationLoss loss = losses.get(0);
        losses.subList(1, losses.size()).forEach(loss::merge);

        Map<String, Object> report = report(o, mode, ablation, items.size(), ids.length - items.size(), loss);
        StagedOutput.directory(hadoop, o.output(), "ablation.json", o.overwrite(), dir -> {
            JsonFiles.write(dir.resolve("ablation.json"), report);
            Charts.bars(dir.resolve("ablation.png"), "Per-token loss change, " + mode.userName() + " ablation",
                    "CE ablated - CE clean (nats)", "tokens", -loss.range, loss.binWidth(), loss.counts);
        });
        return new Result(report, loss);
    }

    private static HookAblation ablation(Options o) {
        TransformerModel model = ExecutorResources.model(o.model());
        FeatureDictionary dictionary = o.dictionary() == null ? null : ExecutorDictionaries.get(o.dictionary());
        return new HookAblation(model, o.hook(), AblationMode.parse(o.mode()), dictionary, o.features());
    }

    private static List<Item> drain(java.util.Iterator<Item> it) {
        TaskContext task = TaskContext.get();
        if (task != null) {
            // All pools (ND4J, OpenMP, OpenBLAS, the model's loops): tasks share the cores.
            ComputeThreads.limit(Math.max(1, task.cpus()));
        }
        List<Item> part = new ArrayList<>();
        it.forEachRemaining(part::add);
        part.sort((a, b) -> Long.compare(a.id, b.id));
        return part;
    }

    private static List<List<Item>> batches(List<Item> part, int batchSequences) {
        return EvaluateJob.equalLengthBatches(part, x -> x.tokens.length, batchSequences);
    }

    private static int[] lengths(int[][] tokens) {
        return Arrays.stream(tokens).mapToInt(t -> t.length).toArray();
    }

    private static Map<String, Object> report(Options o, AblationMode mode, HookAblation ablation, int sequences, int skipped,
                                              AblationLoss loss) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("model", o.model());
        r.put("tokens_table", o.tokens());
        r.put("hook", ablation.hook().name());
        r.put("mode", mode.userName());
        r.put("dictionary", o.dictionary());
        r.put("features", o.dictionary() == null ? null : o.features());
        if (mode == AblationMode.RESAMPLE) {
            r.put("seed", o.seed());
            r.put("sequences_without_donor", skipped);
        }
        r.put("sequences", sequences);
        r.put("selection", "the last " + sequences + " sequences of the token table by seq_id");
        r.put("positions", loss.positions);
        r.put("ce_clean", loss.clean());
        r.put("ce_ablated", loss.ablated());
        r.put("ce_delta", loss.ablated() - loss.clean());
        r.put("kl_clean_ablated", loss.kl());
        Map<String, Object> h = new LinkedHashMap<>();
        h.put("what", "per-token CE ablated minus clean (nats), " + AblationLoss.BINS + " equal bins over [-range, range)");
        h.put("range", loss.range);
        h.put("bin_start", -loss.range);
        h.put("bin_width", loss.binWidth());
        h.put("counts", loss.counts);
        h.put("below", loss.below);
        h.put("above", loss.above);
        r.put("delta_histogram", h);
        return r;
    }
}
