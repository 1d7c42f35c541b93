package training.evaluation;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Turns merged evaluation sums into {@code evaluation.json} (every key and its formula: docs/EVALUATION.md) and PNG plots: the log10
 * feature-density histogram and, when the dictionary directory has the trainer's
 * {@code metrics.jsonl}, L0 and FVU against training steps.
 */
public final class EvaluationReport {

    /** Density above which a feature counts as dense. */
    public static final double DENSE_THRESHOLD = 0.1;
    /** log10-density histogram: bins of this width from {@link #DENSITY_LOG10_MIN} to 0; lower densities go to the first bin. */
    public static final double DENSITY_LOG10_MIN = -8;
    public static final double DENSITY_BIN_WIDTH = 0.25;

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private EvaluationReport() {
    }

    /** Counts of live features per log10-density bin (dead features are not in it: log10 0 is undefined). */
    public static long[] densityHistogram(ReconstructionStatistics stats) {
        int bins = (int) Math.round(-DENSITY_LOG10_MIN / DENSITY_BIN_WIDTH);
        long[] counts = new long[bins];
        for (int f = 0; f < stats.dSae; f++) {
            if (stats.firings[f] == 0) {
                continue;
            }
            double log10 = Math.log10(stats.density(f));
            int bin = (int) Math.floor((log10 - DENSITY_LOG10_MIN) / DENSITY_BIN_WIDTH);
            counts[Math.max(0, Math.min(bins - 1, bin))]++;
        }
        return counts;
    }

    /** The report as a JSON-ready map; {@code context} holds the inputs (paths, hook, sequences). */
    public static Map<String, Object> toMap(Map<String, Object> context, ReconstructionStatistics stats, NextTokenLoss loss) {
        Map<String, Object> out = new LinkedHashMap<>(context);
        out.put("tokens", stats.tokens);
        Map<String, Object> reconstruction = new LinkedHashMap<>();
        reconstruction.put("mse", stats.mse());
        reconstruction.put("fvu", stats.fvu());
        reconstruction.put("explained_variance", stats.explainedVariance());
        reconstruction.put("l2_ratio", stats.l2Ratio());
        reconstruction.put("relative_reconstruction_bias", stats.relativeReconstructionBias());
        reconstruction.put("cosine_similarity", stats.cosineSimilarity());
        reconstruction.put("l0", stats.l0());
        reconstruction.put("d_sae", stats.dSae);
        reconstruction.put("dead_features", stats.deadFeatures());
        reconstruction.put("frac_alive", stats.fracAlive());
        reconstruction.put("dense_features", stats.denseFeatures(DENSE_THRESHOLD));
        reconstruction.put("dense_threshold", DENSE_THRESHOLD);
        Map<String, Object> histogram = new LinkedHashMap<>();
        histogram.put("log10_min", DENSITY_LOG10_MIN);
        histogram.put("bin_width", DENSITY_BIN_WIDTH);
        histogram.put("counts", densityHistogram(stats));
        histogram.put("note", "live features only; densities below 10^" + (int) DENSITY_LOG10_MIN + " are in the first bin");
        reconstruction.put("log10_density_histogram", histogram);
        out.put("reconstruction", reconstruction);
        Map<String, Object> downstream = new LinkedHashMap<>();
        downstream.put("predicted_positions", loss.positions);
        downstream.put("ce_clean", loss.clean());
        downstream.put("ce_spliced", loss.spliced());
        downstream.put("ce_zero_ablation", loss.zeroAblated());
        downstream.put("ce_score", loss.ceScore());
        downstream.put("ce_loss_score", loss.ceScore());
        downstream.put("kl_clean_spliced", loss.kl());
        downstream.put("kl_clean_zero_ablation", loss.klZeroAblated());
        downstream.put("kl_div_score", loss.klDivScore());
        out.put("downstream", downstream);
        return out;
    }

    /** Writes evaluation.json and the plots into {@code dir}; returns the plot file names written. */
    public static List<String> write(Path dir, Map<String, Object> report, ReconstructionStatistics stats, Path dictionaryDir) {
        List<String> plots = new ArrayList<>();
        try {
            Charts.bars(dir.resolve("feature_density.png"), "Feature density (" + stats.deadFeatures() + " dead of " + stats.dSae + ")",
                    "log10(firing frequency)", "features", DENSITY_LOG10_MIN, DENSITY_BIN_WIDTH, densityHistogram(stats));
            plots.add("feature_density.png");
            Path metrics = dictionaryDir == null ? null : dictionaryDir.resolve("metrics.jsonl");
            if (metrics != null && Files.isRegularFile(metrics)) {
                double[][] curves = trainingCurves(metrics);
                if (curves[0].length > 0) {
                    Charts.line(dir.resolve("training_l0.png"), "L0 during training", "step", "L0", curves[0], curves[1]);
                    Charts.line(dir.resolve("training_fvu.png"), "FVU during training", "step", "FVU", curves[0], curves[2]);
                    plots.add("training_l0.png");
                    plots.add("training_fvu.png");
                }
            }
            Map<String, Object> withPlots = new LinkedHashMap<>(report);
            withPlots.put("plots", plots);
            JSON.writeValue(dir.resolve("evaluation.json").toFile(), withPlots);
            return plots;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the evaluation report in " + dir + ": " + e.getMessage(), e);
        }
    }

    /** step, l0, fvu columns of a metrics.jsonl; lines without a step are skipped, a malformed line fails by number. */
    static double[][] trainingCurves(Path metrics) throws IOException {
        List<String> lines = Files.readAllLines(metrics, StandardCharsets.UTF_8);
        List<double[]> rows = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i).trim();
            if (line.isEmpty()) {
                continue;
            }
            JsonNode node;
            try {
                node = JSON.readTree(line);
            } catch (IOException e) {
                throw new IllegalArgumentException(metrics + " line " + (i + 1) + " is not JSON; fix or remove the file");
            }
            if (!node.has("step")) {
                continue;
            }
            rows.add(new double[] {node.get("step").asDouble(), node.path("l0").asDouble(Double.NaN),
                    node.path("fvu").asDouble(Double.NaN)});
        }
        double[][] curves = new double[3][rows.size()];
        for (int r = 0; r < rows.size(); r++) {
            for (int c = 0; c < 3; c++) {
                curves[c][r] = rows.get(r)[c];
            }
        }
        return curves;
    }
}
