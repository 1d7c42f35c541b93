package training.drift;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;
import training.dashboard.DashboardWriter;
import training.export.SaeLensExporter;
import training.export.SaeLensMetadata;
import training.features.FeatureReport;
import training.features.FeatureTables;
import training.sae.SaeConfig;
import training.sae.SparseAutoencoder;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * Two "nightly runs" with known drift: the new decoder is a row permutation of the old one with
 * small noise and random row norms, except for some rows replaced by fresh random directions.
 */
public final class DriftFixtures {

    public static final String HOOK = "blocks.1.hook_resid_post";

    private DriftFixtures() {
    }

    /**
     * @param permutation new row i comes from old row permutation[i] (for kept rows)
     * @param replaced    sorted new indices whose rows are fresh directions; old rows permutation[i] of these vanished
     */
    public record Runs(float[][] oldRows, float[][] newRows, int[] permutation, int[] replaced) {
        public int[] vanished() {
            return Arrays.stream(replaced).map(i -> permutation[i]).sorted().toArray();
        }

        public boolean isReplaced(int newIndex) {
            return Arrays.binarySearch(replaced, newIndex) >= 0;
        }
    }

    public static Runs permutedWithReplacements(int dIn, int dSae, int replacedCount, long seed) {
        Random random = new Random(seed);
        float[][] old = new float[dSae][];
        for (int j = 0; j < dSae; j++) {
            old[j] = unit(random, dIn);
        }
        List<Integer> order = new ArrayList<>();
        for (int j = 0; j < dSae; j++) {
            order.add(j);
        }
        java.util.Collections.shuffle(order, random);
        int[] permutation = order.stream().mapToInt(Integer::intValue).toArray();
        List<Integer> indices = new ArrayList<>(order);
        java.util.Collections.shuffle(indices, random);
        int[] replaced = indices.subList(0, replacedCount).stream().mapToInt(Integer::intValue).sorted().toArray();
        float[][] fresh = new float[dSae][];
        for (int i = 0; i < dSae; i++) {
            float[] row = Arrays.binarySearch(replaced, i) >= 0 ? unit(random, dIn) : old[permutation[i]].clone();
            // Noise of norm about 0.1 whatever d_in (cosine about 0.995) and a random scale: matching must normalize.
            float scale = 0.5f + 1.5f * random.nextFloat();
            float noise = 0.1f / (float) Math.sqrt(dIn);
            for (int d = 0; d < dIn; d++) {
                row[d] = scale * (row[d] + noise * (float) random.nextGaussian());
            }
            fresh[i] = row;
        }
        return new Runs(old, fresh, permutation, replaced);
    }

    public static float[] unit(Random random, int dIn) {
        float[] v = new float[dIn];
        double norm = 0;
        for (int d = 0; d < dIn; d++) {
            v[d] = (float) random.nextGaussian();
            norm += v[d] * v[d];
        }
        for (int d = 0; d < dIn; d++) {
            v[d] /= (float) Math.sqrt(norm);
        }
        return v;
    }

    /** A ReLU SAE with these decoder rows, written by the real SAELens exporter. */
    public static Path export(Path dir, String hook, float[][] decoderRows) {
        int dSae = decoderRows.length;
        int dIn = decoderRows[0].length;
        SaeConfig config = SaeConfig.builder(SaeConfig.Architecture.RELU, dIn, dSae).batchSize(16).totalTokens(16).build();
        SparseAutoencoder sae = SparseAutoencoder.create(config, DataType.FLOAT);
        sae.wDec().assign(Nd4j.createFromArray(decoderRows));
        sae.wEnc().assign(Nd4j.createFromArray(decoderRows).transpose());
        SaeLensExporter.export(sae, 1.0, null, new SaeLensMetadata("tiny", hook, null, 64, true, "corpora/x"), dir);
        return dir;
    }

    /** A {@code spindle features}-like output: features.parquet with these firings, and optionally the dashboard. */
    public static Path features(Path dir, boolean[] live, boolean withDashboard) {
        List<FeatureReport> reports = new ArrayList<>();
        for (int f = 0; f < live.length; f++) {
            long firings = live[f] ? 10 + f : 0;
            reports.add(new FeatureReport(f, firings, 1000, live[f] ? 2f : 0f, live[f] ? 1 : 0, live[f] ? 2 : 0, new long[40],
                    List.of(), null, null, null));
        }
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        FeatureTables.write(dir, reports);
        if (withDashboard) {
            DashboardWriter.write(dir.resolve("dashboard"), "test features", reports);
        }
        return dir;
    }

    public static boolean[] allLive(int n) {
        boolean[] live = new boolean[n];
        Arrays.fill(live, true);
        return live;
    }
}
