package training.drift;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.factory.Nd4j;
import training.clt.SmallShapes;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Drift between two dictionaries with known ground truth (a permutation, 16 of 64 rows replaced),
 * written by the real SAELens exporter and read back by the loader.
 */
class FeatureDriftTest {

    static final int D_IN = 32;
    static final int D_SAE = 64;
    static final int REPLACED = 16;

    @TempDir
    Path dir;

    @BeforeAll
    static void singleThreaded() {
        SmallShapes.singleThreaded();
    }

    @AfterAll
    static void restore() {
        SmallShapes.restore();
    }

    static int[] indices(List<DriftReport.Unmatched> list) {
        return list.stream().mapToInt(DriftReport.Unmatched::feature).toArray();
    }

    @Test
    void permutationWithReplacedRowsIsRecovered() {
        DriftFixtures.Runs runs = DriftFixtures.permutedWithReplacements(D_IN, D_SAE, REPLACED, 7);
        Path old = DriftFixtures.export(dir.resolve("old"), DriftFixtures.HOOK, runs.oldRows());
        Path nu = DriftFixtures.export(dir.resolve("new"), DriftFixtures.HOOK, runs.newRows());

        DriftReport r = FeatureDrift.compare(old, nu, null, null, 0.9);

        assertEquals(48.0 / 64, r.matchedShare());
        assertEquals(48.0 / 64, r.matchedShareLive(), "no feature tables: every feature counts as live");
        assertArrayEquals(runs.replaced(), indices(r.newFeatures()));
        assertArrayEquals(runs.vanished(), indices(r.vanishedFeatures()));
        assertEquals(48, r.mutualMatches());
        for (int i = 0; i < D_SAE; i++) {
            if (!runs.isReplaced(i)) {
                assertEquals(runs.permutation()[i], r.bestOldForNew()[i], "best old match of new feature " + i);
                assertEquals(i, r.bestNewForOld()[runs.permutation()[i]], "best new match of old feature " + runs.permutation()[i]);
            }
        }
        assertEquals(D_SAE, Arrays.stream(r.cosineHistogram()).sum());
        long high = r.cosineHistogram()[FeatureDrift.HISTOGRAM_BINS - 1] + r.cosineHistogram()[FeatureDrift.HISTOGRAM_BINS - 2];
        assertEquals(48, high, "the kept rows have cosine about 0.99, the replaced ones far below 0.9");
        assertEquals(DriftFixtures.HOOK, r.hook());
        assertEquals(D_IN, r.decoderWidth());
        for (DriftReport.Unmatched u : r.newFeatures()) {
            assertEquals(r.bestOldForNew()[u.feature()], u.bestMatch());
            assertEquals(r.bestOldCosine()[u.feature()], u.cosine(), 0);
        }
    }

    @Test
    void cosinesAndMatchesAgreeWithAPlainLoopWhateverTheBlockSize() {
        DriftFixtures.Runs runs = DriftFixtures.permutedWithReplacements(D_IN, D_SAE, REPLACED, 11);
        float[][] newRows = Arrays.copyOf(runs.newRows(), 50); // unequal sides
        var newUnit = FeatureDrift.unitRows(Nd4j.createFromArray(newRows));
        var oldUnit = FeatureDrift.unitRows(Nd4j.createFromArray(runs.oldRows()));
        for (int block : new int[] {1, 7, 50}) {
            FeatureDrift.Matches m = FeatureDrift.match(newUnit, oldUnit, null, null, block)[0];
            for (int i = 0; i < newRows.length; i++) {
                int best = -1;
                double bestCos = -2;
                for (int j = 0; j < D_SAE; j++) {
                    double c = cosine(newRows[i], runs.oldRows()[j]);
                    if (c > bestCos) {
                        bestCos = c;
                        best = j;
                    }
                }
                assertEquals(best, m.bestOldForNew()[i], "block " + block + ", new " + i);
                assertEquals(bestCos, m.bestOldCosine()[i], 1e-5, "block " + block + ", new " + i);
            }
            for (int j = 0; j < D_SAE; j++) {
                int best = -1;
                double bestCos = -2;
                for (int i = 0; i < newRows.length; i++) {
                    double c = cosine(newRows[i], runs.oldRows()[j]);
                    if (c > bestCos) {
                        bestCos = c;
                        best = i;
                    }
                }
                assertEquals(best, m.bestNewForOld()[j], "block " + block + ", old " + j);
                assertEquals(bestCos, m.bestNewCosine()[j], 1e-5, "block " + block + ", old " + j);
            }
        }
    }

    static double cosine(float[] a, float[] b) {
        double dot = 0;
        double na = 0;
        double nb = 0;
        for (int d = 0; d < a.length; d++) {
            dot += (double) a[d] * b[d];
            na += (double) a[d] * a[d];
            nb += (double) b[d] * b[d];
        }
        return dot / Math.sqrt(na * nb);
    }

    @Test
    void largeDictionariesAreSplitIntoBlocksOfBoundedSize() {
        int rows = FeatureDrift.blockRows(16384, 16384);
        assertEquals(1024, rows);
        assertTrue((long) rows * 16384 * Float.BYTES <= 64L << 20, "one block of 16k x 16k cosines fits in 64 MB");
        assertEquals(10, FeatureDrift.blockRows(10, 16384), "small dictionaries in one block");
    }

    @Test
    void identicalDictionariesMatchCompletely() {
        DriftFixtures.Runs runs = DriftFixtures.permutedWithReplacements(D_IN, D_SAE, REPLACED, 3);
        Path a = DriftFixtures.export(dir.resolve("a"), DriftFixtures.HOOK, runs.oldRows());
        Path b = DriftFixtures.export(dir.resolve("b"), DriftFixtures.HOOK, runs.oldRows());
        DriftReport r = FeatureDrift.compare(a, b, null, null, 0.9);
        assertEquals(1.0, r.matchedShare());
        assertTrue(r.newFeatures().isEmpty() && r.vanishedFeatures().isEmpty());
        assertEquals(D_SAE, r.mutualMatches());
        assertArrayEquals(IntStream.range(0, D_SAE).toArray(), r.bestOldForNew());
        assertEquals(D_SAE, r.cosineHistogram()[FeatureDrift.HISTOGRAM_BINS - 1]);
    }

    @Test
    void deadFeaturesAreLeftOutOfTheLiveViewAndNeverMatch() {
        DriftFixtures.Runs runs = DriftFixtures.permutedWithReplacements(D_IN, D_SAE, REPLACED, 5);
        Path old = DriftFixtures.export(dir.resolve("old"), DriftFixtures.HOOK, runs.oldRows());
        Path nu = DriftFixtures.export(dir.resolve("new"), DriftFixtures.HOOK, runs.newRows());
        int[] kept = IntStream.range(0, D_SAE).filter(i -> !runs.isReplaced(i)).toArray();
        boolean[] newLive = DriftFixtures.allLive(D_SAE);
        boolean[] oldLive = DriftFixtures.allLive(D_SAE);
        // Dead in the new run: two replaced features (not listed as new) and two kept ones (their old
        // partners lose their only live match: vanished).
        int[] newDead = {runs.replaced()[0], runs.replaced()[1], kept[0], kept[1]};
        // Dead in the old run: one vanished feature (not listed) and the partner of a kept new feature (which becomes new).
        int[] oldDead = {runs.vanished()[0], runs.permutation()[kept[2]]};
        for (int i : newDead) {
            newLive[i] = false;
        }
        for (int j : oldDead) {
            oldLive[j] = false;
        }
        Path oldFeatures = DriftFixtures.features(dir.resolve("old-features"), oldLive, false);
        Path newFeatures = DriftFixtures.features(dir.resolve("new-features"), newLive, false);

        DriftReport r = FeatureDrift.compare(old, nu, oldFeatures, newFeatures, 0.9);

        int[] expectedNew = IntStream.concat(Arrays.stream(runs.replaced()).skip(2), IntStream.of(kept[2])).sorted().toArray();
        int[] expectedVanished = IntStream.concat(Arrays.stream(runs.vanished()).skip(1),
                IntStream.of(runs.permutation()[kept[0]], runs.permutation()[kept[1]])).sorted().toArray();
        assertArrayEquals(expectedNew, indices(r.newFeatures()));
        assertArrayEquals(expectedVanished, indices(r.vanishedFeatures()));
        assertEquals(60, r.newLive());
        assertEquals(62, r.oldLive());
        assertEquals(45.0 / 60, r.matchedShareLive(), 1e-12, "48 kept, minus 2 dead, minus 1 whose partner died");
        assertEquals(45, r.mutualMatches());
        assertEquals(60, Arrays.stream(r.cosineHistogram()).sum());
        assertEquals(48.0 / 64, r.matchedShare(), "the all-decoder view ignores liveness");
        assertEquals(runs.permutation()[kept[2]], r.bestOldForNew()[kept[2]], "the geometric best match is still the dead partner");
        for (DriftReport.Unmatched u : r.newFeatures()) {
            assertTrue(u.bestMatch() >= 0 && oldLive[u.bestMatch()], "a new feature's best match is live: " + u);
        }
        for (DriftReport.Unmatched u : r.vanishedFeatures()) {
            assertTrue(u.bestMatch() >= 0 && newLive[u.bestMatch()], "a vanished feature's best match is live: " + u);
        }
    }

    @Test
    void noLiveCandidateIsReportedAsNone() {
        DriftFixtures.Runs runs = DriftFixtures.permutedWithReplacements(D_IN, D_SAE, REPLACED, 5);
        Path old = DriftFixtures.export(dir.resolve("old"), DriftFixtures.HOOK, runs.oldRows());
        Path nu = DriftFixtures.export(dir.resolve("new"), DriftFixtures.HOOK, runs.newRows());
        Path allDead = DriftFixtures.features(dir.resolve("dead"), new boolean[D_SAE], false);
        DriftReport r = FeatureDrift.compare(old, nu, allDead, null, 0.9);
        assertEquals(0, r.matchedShareLive());
        assertEquals(D_SAE, r.newFeatures().size());
        assertTrue(r.newFeatures().stream().allMatch(u -> u.bestMatch() == -1 && u.cosine() == -1));
        assertTrue(r.vanishedFeatures().isEmpty());
    }

    @Test
    void reportIsWrittenAtomicallyAndReadsBack() throws Exception {
        DriftFixtures.Runs runs = DriftFixtures.permutedWithReplacements(D_IN, D_SAE, REPLACED, 7);
        Path old = DriftFixtures.export(dir.resolve("old"), DriftFixtures.HOOK, runs.oldRows());
        Path nu = DriftFixtures.export(dir.resolve("new"), DriftFixtures.HOOK, runs.newRows());
        DriftReport r = FeatureDrift.compare(old, nu, null, null, 0.9);
        Path out = Files.createDirectories(dir.resolve("out"));
        Path file = r.write(out);
        assertEquals(List.of("drift.json"), Files.list(out).map(p -> p.getFileName().toString()).toList(), "no temp file left");
        String json = Files.readString(file);
        assertTrue(json.contains("\"matched_share\" : 0.75") && json.contains("\"vanished_features\""), json.substring(0, 400));
        DriftReport back = DriftReport.read(file);
        assertEquals(r.newFeatures(), back.newFeatures());
        assertEquals(r.vanishedFeatures(), back.vanishedFeatures());
        assertArrayEquals(r.bestOldForNew(), back.bestOldForNew());
        assertArrayEquals(r.bestNewCosine(), back.bestNewCosine());
        assertArrayEquals(r.cosineHistogram(), back.cosineHistogram());
        assertEquals(r.matchedShare(), back.matchedShare());
    }

    @Test
    void incomparableDictionariesAreRefusedInOneLine() {
        Random random = new Random(1);
        float[][] narrow = new float[8][];
        for (int i = 0; i < narrow.length; i++) {
            narrow[i] = DriftFixtures.unit(random, 16);
        }
        float[][] wide = DriftFixtures.permutedWithReplacements(D_IN, 8, 0, 2).oldRows();
        Path a = DriftFixtures.export(dir.resolve("narrow"), DriftFixtures.HOOK, narrow);
        Path b = DriftFixtures.export(dir.resolve("wide"), DriftFixtures.HOOK, wide);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> FeatureDrift.compare(a, b, null, null, 0.9));
        assertTrue(e.getMessage().contains("d_in 16") && e.getMessage().contains("d_in 32") && !e.getMessage().contains("\n"),
                e.getMessage());

        Path otherHook = DriftFixtures.export(dir.resolve("other-hook"), "blocks.2.hook_resid_post", wide);
        e = assertThrows(IllegalArgumentException.class, () -> FeatureDrift.compare(b, otherHook, null, null, 0.9));
        assertTrue(e.getMessage().contains("different hooks") && e.getMessage().contains("blocks.2.hook_resid_post"), e.getMessage());

        e = assertThrows(IllegalArgumentException.class, () -> FeatureDrift.compare(b, b, null, null, 1.5));
        assertTrue(e.getMessage().contains("threshold 1.5"), e.getMessage());

        Path wrongTable = DriftFixtures.features(dir.resolve("features-16"), DriftFixtures.allLive(16), false);
        e = assertThrows(IllegalArgumentException.class, () -> FeatureDrift.compare(b, b, wrongTable, null, 0.9));
        assertTrue(e.getMessage().contains("16") && e.getMessage().contains("d_sae 8"), e.getMessage());

        e = assertThrows(IllegalArgumentException.class, () -> FeatureDrift.compare(b, b, dir, null, 0.9));
        assertTrue(e.getMessage().contains("has no features.parquet"), e.getMessage());
    }
}
