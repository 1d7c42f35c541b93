package jobs.evaluate;

import activations.model.TransformerModel;
import activations.table.TokenTableManifest;
import activations.tokenizer.JsonFiles;
import jobs.output.OutputDirectory;
import jobs.output.StagedOutput;
import jobs.spark.ExecutorDictionaries;
import jobs.spark.ExecutorResources;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import training.clt.ReplacementEvaluation;
import training.export.CircuitTracerDictionary;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;


/**
 * Evaluates a transcoder directory in circuit-tracer's layout (a CLT or a per-layer set) on the last
 * N sequences of a token table: the replacement model (every MLP replaced, and one layer at a time)
 * against the original by next-token top-1 agreement and KL, plus per-layer NMSE and L0.
 */
public final class TranscoderEvaluateJob {

    public record Options(String dictionary, String model, String tokens, int sequences, String out, boolean overwrite) {
    }

    private TranscoderEvaluateJob() {
    }

    /** True when {@code dir} holds a circuit-tracer transcoder (config.yaml) rather than a SAELens SAE. */
    public static boolean isTranscoderDirectory(String dir) {
        org.apache.hadoop.fs.Path file = new org.apache.hadoop.fs.Path(dir, "config.yaml");
        try {
            return file.getFileSystem(new org.apache.hadoop.conf.Configuration()).exists(file);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + dir + ": " + e.getMessage(), e);
        }
    }

    public static ReplacementEvaluation.Report run(SparkSession spark, Options o) {
        if (o.sequences() < 1) {
            throw new IllegalArgumentException("--sequences must be at least 1");
        }
        TokenTableManifest tokens = TokenTableManifest.readChecked(spark.sparkContext().hadoopConfiguration(),
                new org.apache.hadoop.fs.Path(o.tokens()));
        OutputDirectory out = OutputDirectory.begin(spark.sparkContext().hadoopConfiguration(), o.out(), "evaluation.json",
                o.overwrite());
        CircuitTracerDictionary transcoder = ExecutorDictionaries.transcoder(o.dictionary());
        TransformerModel model = ExecutorResources.model(o.model());
        List<Row> rows = EvaluateJob.lastSequences(spark, tokens, o.tokens(), o.sequences());
        int length = rows.get(0).getList(1).size();
        int[][] sequences = rows.stream().map(r -> r.getList(1)).filter(l -> l.size() == length)
                .map(l -> l.stream().mapToInt(v -> (Integer) v).toArray()).toArray(int[][]::new);
        ReplacementEvaluation.Report report = ReplacementEvaluation.evaluate(model, transcoder, sequences);

        Map<String, Object> json = new LinkedHashMap<>();
        json.put("dictionary", o.dictionary());
        json.put("model", o.model());
        json.put("tokens_table", o.tokens());
        json.put("selection", "the last " + sequences.length + " sequences of the token table by seq_id");
        json.put("positions", report.positions());
        Map<String, Object> all = new LinkedHashMap<>();
        all.put("top1_agreement", report.allLayersAgreement());
        all.put("kl", report.allLayersKl());
        json.put("all_layers_replaced", all);
        Map<String, Object> single = new LinkedHashMap<>();
        single.put("top1_agreement", report.singleLayerAgreement());
        single.put("kl", report.singleLayerKl());
        json.put("one_layer_replaced", single);
        json.put("nmse_by_layer", report.nmseByLayer());
        double[] explained = new double[report.nmseByLayer().length];
        for (int i = 0; i < explained.length; i++) {
            explained[i] = 1 - report.nmseByLayer()[i];
        }
        json.put("explained_variance_by_layer", explained);
        json.put("l0_by_layer", report.l0ByLayer());
        json.put("dead_features_by_layer", report.deadByLayer());
        json.put("dead_features_note", "features that never fired on the evaluated positions");
        try {
            StagedOutput.publish(spark.sparkContext().hadoopConfiguration(), out,
                    staging -> JsonFiles.write(staging.resolve("evaluation.json"), json));
        } catch (IOException e) {
            out.abandon();
            throw new UncheckedIOException("cannot write " + o.out() + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            out.abandon();
            throw e;
        }
        return report;
    }
}
