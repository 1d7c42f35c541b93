package jobs.evaluate;

import activations.model.ComputeThreads;
import activations.model.ModelChecksums;
import activations.model.TransformerModel;
import activations.table.TokenTableManifest;
import jobs.output.OutputDirectory;
import jobs.output.StagedOutput;
import jobs.spark.ExecutorDictionaries;
import jobs.spark.ExecutorResources;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import scala.Tuple2;
import training.evaluation.DictionaryEvaluator;
import training.evaluation.EvaluationReport;
import training.evaluation.FeatureDictionary;
import training.evaluation.NextTokenLoss;
import training.evaluation.ReconstructionStatistics;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.apache.spark.sql.functions.col;

/**
 * {@code spindle evaluate}: reconstruction and downstream (spliced cross-entropy) metrics of a
 * dictionary on held-out sequences of a token table: by default the LAST {@code sequences}
 * sequences by seq_id (training usually reads a cache made from the first ones). Sequences are
 * spread over Spark tasks; each task runs the model and dictionary (loaded once per executor JVM)
 * and returns sums the driver merges, so the result does not depend on the partitioning beyond
 * floating-point summation order.
 */
public final class EvaluateJob {

    public record Options(String dictionary, String model, String tokens, int sequences, int batchSequences,
                          String output, boolean overwrite) implements Serializable {
    }

    public record Result(Map<String, Object> report, ReconstructionStatistics statistics, NextTokenLoss loss) {
    }

    /** One task's sums (a class: Spark's Kryo cannot serialize records). */
    static final class Partial implements Serializable {
        final ReconstructionStatistics statistics;
        final NextTokenLoss loss;

        Partial(ReconstructionStatistics statistics, NextTokenLoss loss) {
            this.statistics = statistics;
            this.loss = loss;
        }
    }

    private EvaluateJob() {
    }

    public static Result run(SparkSession spark, Options o) {
        if (o.sequences() < 1 || o.batchSequences() < 1) {
            throw new IllegalArgumentException("--sequences and --batch-sequences must be at least 1");
        }
        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        java.nio.file.Path localModel = ExecutorResources.localDirectory(o.model());
        TransformerModel model = ExecutorResources.model(o.model());
        FeatureDictionary dictionary = ExecutorDictionaries.get(o.dictionary());
        // Checks hook names and widths on the driver, before any task starts.
        new DictionaryEvaluator(model, dictionary);
        TokenTableManifest tokens = TokenTableManifest.readChecked(hadoop, new Path(o.tokens()));
        checkSameTokenizer(tokens, o.tokens(), localModel, o.model());
        OutputDirectory out = OutputDirectory.begin(hadoop, o.output(), "evaluation.json", o.overwrite());
        try {
            List<Row> held = lastSequences(spark, tokens, o.tokens(), o.sequences());
            List<Tuple2<Long, int[]>> sequences = new ArrayList<>();
            for (Row row : held) {
                List<Integer> ids = row.getList(1);
                sequences.add(new Tuple2<>(row.getLong(0), ids.stream().mapToInt(Integer::intValue).toArray()));
            }
            int partitions = Math.max(1, Math.min(sequences.size(), spark.sparkContext().defaultParallelism()));
            JavaRDD<Tuple2<Long, int[]>> rdd = org.apache.spark.api.java.JavaSparkContext.fromSparkContext(spark.sparkContext())
                    .parallelize(sequences, partitions);
            String modelDir = o.model();
            String dictionaryDir = o.dictionary();
            int batchSequences = o.batchSequences();
            List<Partial> partials = rdd.mapPartitions(it -> {
                List<Tuple2<Long, int[]>> part = new ArrayList<>();
                it.forEachRemaining(part::add);
                List<Partial> result = new ArrayList<>();
                if (!part.isEmpty()) {
                    result.add(evaluatePart(part, modelDir, dictionaryDir, batchSequences));
                }
                return result.iterator();
            }).collect();
            Partial merged = partials.get(0);
            for (int i = 1; i < partials.size(); i++) {
                merged.statistics.merge(partials.get(i).statistics);
                merged.loss.merge(partials.get(i).loss);
            }
            Map<String, Object> context = new LinkedHashMap<>();
            context.put("dictionary", o.dictionary());
            context.put("model", o.model());
            context.put("tokens_table", o.tokens());
            context.put("hook", dictionary.hookName());
            context.put("sequences", sequences.size());
            context.put("selection", "the last " + sequences.size() + " sequences of the token table by seq_id");
            Map<String, Object> report = EvaluationReport.toMap(context, merged.statistics, merged.loss);
            java.nio.file.Path localDictionary = ExecutorResources.localDirectory(o.dictionary());
            StagedOutput.publish(hadoop, out, staging -> EvaluationReport.write(staging, report, merged.statistics, localDictionary));
            return new Result(report, merged.statistics, merged.loss);
        } catch (java.io.IOException e) {
            out.abandon();
            throw new java.io.UncheckedIOException("cannot write " + o.output() + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            out.abandon();
            throw e;
        }
    }

    /** Refuses a token table made with another tokenizer than the model's. */
    public static void checkSameTokenizer(TokenTableManifest tokens, String tokensPath, java.nio.file.Path localModel, String model) {
        String tokenizerSha = ModelChecksums.file(localModel.resolve("tokenizer.json"));
        if (tokens.tokenizerSha256() != null && !tokens.tokenizerSha256().equals(tokenizerSha)) {
            throw new IllegalArgumentException("the token table " + tokensPath + " was made with another tokenizer than "
                    + model + "'s; use a table tokenized for this model");
        }
    }

    /** The evaluation sequences: the last {@code n} of the token table by seq id, as rows (seq_id, tokens). */
    public static List<Row> lastSequences(SparkSession spark, TokenTableManifest manifest, String tokens, int n) {
        List<Row> rows = spark.read().parquet(manifest.dataPaths(new Path(tokens))).select(col("seq_id"), col("tokens"))
                .orderBy(col("seq_id").desc()).limit(n).collectAsList();
        if (rows.isEmpty()) {
            throw new IllegalArgumentException("the token table " + tokens + " has no sequences to evaluate on");
        }
        return rows;
    }

    static Partial evaluatePart(List<Tuple2<Long, int[]>> part, String modelDir, String dictionaryDir, int batchSequences) {
        TaskContext task = TaskContext.get();
        if (task != null) {
            // All pools (ND4J, OpenMP, OpenBLAS, the model's loops), not ND4J's alone: tasks share the cores.
            ComputeThreads.limit(Math.max(1, task.cpus()));
        }
        DictionaryEvaluator evaluator = new DictionaryEvaluator(ExecutorResources.model(modelDir),
                ExecutorDictionaries.get(dictionaryDir));
        part.sort((a, b) -> Long.compare(a._1(), b._1()));
        for (List<Tuple2<Long, int[]>> batch : equalLengthBatches(part, s -> s._2().length, batchSequences)) {
            evaluator.add(batch.stream().map(Tuple2::_2).toArray(int[][]::new));
        }
        return new Partial(evaluator.statistics(), evaluator.loss());
    }

    /** Batches of at most {@code batchSequences} of equal length (a kept partial last sequence runs alone), in order. */
    public static <T> List<List<T>> equalLengthBatches(List<T> items, java.util.function.ToIntFunction<T> length, int batchSequences) {
        Map<Integer, List<T>> byLength = new LinkedHashMap<>();
        for (T item : items) {
            byLength.computeIfAbsent(length.applyAsInt(item), k -> new ArrayList<>()).add(item);
        }
        List<List<T>> batches = new ArrayList<>();
        for (List<T> same : byLength.values()) {
            for (int from = 0; from < same.size(); from += batchSequences) {
                batches.add(same.subList(from, Math.min(same.size(), from + batchSequences)));
            }
        }
        return batches;
    }
}
