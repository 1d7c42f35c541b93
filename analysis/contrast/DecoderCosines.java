package analysis.contrast;

import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.PriorityQueue;

/** The dictionary features whose decoder rows point most nearly along a vector (highest cosine). */
public final class DecoderCosines {

    public record Feature(int index, double cosine) {
    }

    private DecoderCosines() {
    }

    /** The {@code k} rows of {@code decoder} ({@code [features, d]}) with the highest cosine to {@code vector}, best first. */
    public static List<Feature> top(INDArray decoder, float[] vector, int k) {
        int features = (int) decoder.rows();
        int d = (int) decoder.columns();
        if (vector.length != d) {
            throw new IllegalArgumentException("the vector has width " + vector.length + " but the dictionary's decoder rows have " + d);
        }
        float[] w = decoder.dup('c').data().asFloat();
        double vNorm = 0;
        for (float x : vector) {
            vNorm += (double) x * x;
        }
        vNorm = Math.sqrt(vNorm);
        PriorityQueue<Feature> best = new PriorityQueue<>(Comparator.comparingDouble(Feature::cosine));
        for (int f = 0; f < features; f++) {
            double dot = 0;
            double norm = 0;
            for (int i = 0; i < d; i++) {
                float x = w[f * d + i];
                dot += (double) x * vector[i];
                norm += (double) x * x;
            }
            double cosine = norm == 0 || vNorm == 0 ? 0 : dot / Math.sqrt(norm) / vNorm;
            best.add(new Feature(f, cosine));
            if (best.size() > k) {
                best.poll();
            }
        }
        List<Feature> out = new ArrayList<>(best);
        out.sort(Comparator.comparingDouble(Feature::cosine).reversed());
        return out;
    }
}
