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
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * The report researchers pick a dictionary from: one row per dictionary of a sweep (architecture,
 * width, L0, FVU, CE score, ...) as {@code sweep.md} (a table) and {@code sweep.json}, and two
 * plots, {@code fvu_vs_l0.png} and {@code ce_score_vs_l0.png}, one series per architecture. A row's
 * figures come from the dictionary's {@code evaluation.json} when there is one (held-out text), else
 * from the last line of its training {@code metrics.jsonl} (no CE score then; {@code source} says
 * which).
 */
public final class SweepReport {

    /** One dictionary's line. NaN where a figure is unknown (CE score without an evaluation). */
    public record Row(String name, String architecture, int dSae, double l0, double fvu, double ceScore, double klDivScore,
                      double fracAlive, String source) {
    }

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private SweepReport() {
    }

    /**
     * The row of a SAELens dictionary directory; {@code evaluation} is its evaluation directory (or
     * null: then {@code dictionary/evaluation.json} if present, else training metrics).
     */
    public static Row row(String name, Path dictionary, Path evaluation) {
        JsonNode cfg = read(dictionary.resolve("cfg.json"));
        String architecture = cfg.path("metadata").path("trained_architecture").asText(cfg.path("architecture").asText("?"));
        int dSae = cfg.path("d_sae").asInt();
        Path evaluationFile = evaluation != null ? evaluation.resolve("evaluation.json") : dictionary.resolve("evaluation.json");
        if (Files.isRegularFile(evaluationFile)) {
            JsonNode e = read(evaluationFile);
            JsonNode rec = e.path("reconstruction");
            JsonNode down = e.path("downstream");
            return new Row(name, architecture, dSae, rec.path("l0").asDouble(Double.NaN), rec.path("fvu").asDouble(Double.NaN),
                    down.path("ce_loss_score").asDouble(down.path("ce_score").asDouble(Double.NaN)),
                    down.path("kl_div_score").asDouble(Double.NaN), rec.path("frac_alive").asDouble(Double.NaN), "evaluation");
        }
        Path metrics = dictionary.resolve("metrics.jsonl");
        if (!Files.isRegularFile(metrics)) {
            throw new IllegalArgumentException(dictionary + " has neither an evaluation.json nor a metrics.jsonl; evaluate it first");
        }
        JsonNode last = null;
        try {
            for (String line : Files.readAllLines(metrics, StandardCharsets.UTF_8)) {
                if (!line.isBlank()) {
                    last = JSON.readTree(line);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + metrics + ": " + e.getMessage(), e);
        }
        if (last == null) {
            throw new IllegalArgumentException(metrics + " is empty; the run trained no step");
        }
        return new Row(name, architecture, dSae, last.path("l0").asDouble(Double.NaN), last.path("fvu").asDouble(Double.NaN),
                Double.NaN, Double.NaN, 1 - last.path("deadFraction").asDouble(Double.NaN), "training");
    }

    /** Writes sweep.md, sweep.json and the two plots into {@code dir} (created if needed). */
    public static void write(Path dir, List<Row> rows) {
        try {
            Files.createDirectories(dir);
            StringBuilder md = new StringBuilder("| dictionary | architecture | d_sae | L0 | FVU | CE score | KL score | alive | source |\n"
                    + "|---|---|---:|---:|---:|---:|---:|---:|---|\n");
            List<Map<String, Object>> json = new ArrayList<>();
            for (Row r : rows) {
                md.append(String.format(Locale.ROOT, "| %s | %s | %d | %s | %s | %s | %s | %s | %s |%n", r.name(), r.architecture(),
                        r.dSae(), figure(r.l0(), "%.2f"), figure(r.fvu(), "%.4f"), figure(r.ceScore(), "%.4f"),
                        figure(r.klDivScore(), "%.4f"), figure(r.fracAlive(), "%.3f"), r.source()));
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("name", r.name());
                m.put("architecture", r.architecture());
                m.put("d_sae", r.dSae());
                m.put("l0", finiteOrNull(r.l0()));
                m.put("fvu", finiteOrNull(r.fvu()));
                m.put("ce_loss_score", finiteOrNull(r.ceScore()));
                m.put("kl_div_score", finiteOrNull(r.klDivScore()));
                m.put("frac_alive", finiteOrNull(r.fracAlive()));
                m.put("source", r.source());
                json.add(m);
            }
            Files.writeString(dir.resolve("sweep.md"), md.toString(), StandardCharsets.UTF_8);
            JSON.writeValue(dir.resolve("sweep.json").toFile(), Map.of("dictionaries", json,
                    "plots", List.of("fvu_vs_l0.png", "ce_score_vs_l0.png")));
            Charts.series(dir.resolve("fvu_vs_l0.png"), "FVU vs L0", "L0 (active latents per token)", "FVU", byArchitecture(rows, false));
            Charts.series(dir.resolve("ce_score_vs_l0.png"), "CE loss score vs L0", "L0 (active latents per token)", "CE score",
                    byArchitecture(rows, true));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the sweep report in " + dir + ": " + e.getMessage(), e);
        }
    }

    private static Map<String, double[][]> byArchitecture(List<Row> rows, boolean ceScore) {
        Map<String, List<Row>> groups = new TreeMap<>();
        for (Row r : rows) {
            groups.computeIfAbsent(r.architecture(), a -> new ArrayList<>()).add(r);
        }
        Map<String, double[][]> out = new LinkedHashMap<>();
        groups.forEach((architecture, group) -> {
            double[][] points = new double[2][group.size()];
            for (int i = 0; i < group.size(); i++) {
                points[0][i] = group.get(i).l0();
                points[1][i] = ceScore ? group.get(i).ceScore() : group.get(i).fvu();
            }
            out.put(architecture, points);
        });
        return out;
    }

    private static String figure(double v, String format) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, format, v) : "-";
    }

    private static Object finiteOrNull(double v) {
        return Double.isFinite(v) ? v : null;
    }

    private static JsonNode read(Path file) {
        try {
            return JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new IllegalArgumentException(file + " is missing or not valid JSON (" + e.getMessage() + ")");
        }
    }
}
