package jobs.cli;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import training.clt.SmallShapes;
import training.drift.DriftFixtures;
import training.drift.DriftReport;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `spindle drift` end to end: two nightly runs with known drift, their feature outputs and dashboards. */
class DriftCommandTest {

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

    @Test
    void reportsNewAndVanishedFeaturesAndAddsTheDashboardPage() throws Exception {
        DriftFixtures.Runs runs = DriftFixtures.permutedWithReplacements(32, 64, 16, 7);
        Path old = DriftFixtures.export(dir.resolve("night-1/sae"), DriftFixtures.HOOK, runs.oldRows());
        Path nu = DriftFixtures.export(dir.resolve("night-2/sae"), DriftFixtures.HOOK, runs.newRows());
        Path oldFeatures = DriftFixtures.features(dir.resolve("night-1/features"), DriftFixtures.allLive(64), true);
        Path newFeatures = DriftFixtures.features(dir.resolve("night-2/features"), DriftFixtures.allLive(64), true);
        Path out = dir.resolve("night-2/drift");

        CliRun run = CliRun.spindle("drift", "--old", old.toString(), "--new", nu.toString(), "--old-features", oldFeatures.toString(),
                "--new-features", newFeatures.toString(), "--out", out.toString());

        assertEquals(0, run.exitCode(), run.err());
        assertTrue(run.out().contains("75.0% of the 64 new features match an old one"), run.out());
        assertTrue(run.out().contains("16 new features, 16 vanished of 64 old"), run.out());
        assertTrue(run.out().contains(out.resolve("drift.json").toString()), run.out());
        assertTrue(run.out().contains(newFeatures.resolve("dashboard/drift.html").toString()), run.out());
        DriftReport report = DriftReport.read(out.resolve("drift.json"));
        assertArrayEquals(runs.replaced(), report.newFeatures().stream().mapToInt(DriftReport.Unmatched::feature).toArray());
        assertArrayEquals(runs.vanished(), report.vanishedFeatures().stream().mapToInt(DriftReport.Unmatched::feature).toArray());
        String page = Files.readString(newFeatures.resolve("dashboard/drift.html"));
        assertTrue(page.contains("\"old_dashboard\":\"../../../night-1/features/dashboard\""), "vanished features link to night 1");
        for (int f : runs.replaced()) {
            assertTrue(page.contains("[" + f + ","), "new feature " + f + " is listed");
        }
        assertTrue(Files.readString(newFeatures.resolve("dashboard/index.html")).contains("href=\"drift.html\""));
    }

    @Test
    void withoutFeatureOutputsOnlyDriftJsonIsWritten() {
        DriftFixtures.Runs runs = DriftFixtures.permutedWithReplacements(32, 64, 16, 7);
        Path old = DriftFixtures.export(dir.resolve("old"), DriftFixtures.HOOK, runs.oldRows());
        Path out = dir.resolve("out");
        CliRun run = CliRun.spindle("drift", "--old", old.toString(), "--new", old.toString(), "--out", out.toString());
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(run.out().contains("100.0% of the 64 new features") && run.out().contains("0 new features, 0 vanished"), run.out());
        assertTrue(run.out().contains("no dashboard page"), run.out());
        assertTrue(Files.isRegularFile(out.resolve("drift.json")));
    }

    @Test
    void badInputEndsWithOneLineAndExitCode2() {
        Random random = new Random(1);
        float[][] narrow = new float[8][];
        for (int i = 0; i < narrow.length; i++) {
            narrow[i] = DriftFixtures.unit(random, 16);
        }
        Path a = DriftFixtures.export(dir.resolve("narrow"), DriftFixtures.HOOK, narrow);
        Path b = DriftFixtures.export(dir.resolve("wide"), DriftFixtures.HOOK, DriftFixtures.permutedWithReplacements(32, 8, 0, 2).oldRows());
        Path out = dir.resolve("out");
        for (String[] args : new String[][] {
                {"--old", a.toString(), "--new", b.toString(), "--out", out.toString()},
                {"--old", b.toString(), "--new", b.toString(), "--threshold", "1.5", "--out", out.toString()},
                {"--old", b.toString(), "--new", dir.resolve("missing").toString(), "--out", out.toString()}}) {
            String[] command = new String[args.length + 1];
            command[0] = "drift";
            System.arraycopy(args, 0, command, 1, args.length);
            CliRun run = CliRun.spindle(command);
            assertEquals(2, run.exitCode(), Arrays.toString(args) + ": " + run.err());
            assertEquals(1, run.err().strip().lines().count(), run.err());
            assertTrue(run.err().startsWith("spindle drift: "), run.err());
        }
        assertFalse(Files.exists(out), "nothing written on bad input");
    }
}
