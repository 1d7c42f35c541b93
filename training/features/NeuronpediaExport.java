package training.features;

import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Neuronpedia-style JSON, one object per feature: {@code pos_str/pos_values} and
 * {@code neg_str/neg_values} (logit tables; empty when not computed), {@code frac_nonzero},
 * histogram bars ({@code freq_hist_data_bar_values} are bin centres, {@code freq_hist_data_bar_heights}
 * counts) and {@code activations}: the top examples as {tokens, values, maxValue, maxValueTokenIndex}.
 */
public final class NeuronpediaExport {

    private NeuronpediaExport() {
    }

    public static List<Map<String, Object>> toJson(List<FeatureReport> features) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (FeatureReport f : features) {
            Map<String, Object> j = new LinkedHashMap<>();
            j.put("index", f.feature());
            j.put("pos_str", f.logits() == null ? List.of() : List.of(f.topLogitPieces()));
            j.put("pos_values", f.logits() == null ? new float[0] : f.logits().topValues());
            j.put("neg_str", f.logits() == null ? List.of() : List.of(f.bottomLogitPieces()));
            j.put("neg_values", f.logits() == null ? new float[0] : f.logits().bottomValues());
            j.put("frac_nonzero", f.frequency());
            long[] hist = f.histogram();
            double width = f.histogramRange() / hist.length;
            double[] centres = new double[hist.length];
            for (int b = 0; b < hist.length; b++) {
                centres[b] = (b + 0.5) * width;
            }
            j.put("freq_hist_data_bar_heights", hist);
            j.put("freq_hist_data_bar_values", centres);
            j.put("max_activation", f.max());
            List<Map<String, Object>> records = new ArrayList<>();
            for (FeatureReport.WindowedExample w : f.examples()) {
                if (w.example().kind() != Example.Kind.TOP) {
                    continue;
                }
                Map<String, Object> r = new LinkedHashMap<>();
                r.put("tokens", w.pieces());
                r.put("values", w.activations());
                r.put("maxValue", w.example().activation());
                r.put("maxValueTokenIndex", w.example().pos() - w.windowStart());
                r.put("seq_id", w.example().seqId());
                records.add(r);
            }
            j.put("activations", records);
            out.add(j);
        }
        return out;
    }

    public static void write(Path file, List<FeatureReport> features) {
        try {
            new ObjectMapper().writeValue(file.toFile(), toJson(features));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }
}
