package jobs.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code spindle bench --only} and {@code --peer}: chosen figures only, an absent peer never fails the bench. */
class BenchCommandTest {

    @Test
    void onlyRunsTheChosenFigureAndAMissingPeerIsReportedNotFatal(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("bench.json");
        CliRun run = CliRun.spindle("bench", "--quick", "--only", "gemm_gflops", "--peer", "torch",
                "--python", tmp.resolve("no-such-python").toString(), "--out", out.toString());
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(run.out().contains("peer torch: no torch in"), run.out());
        JsonNode figures = new ObjectMapper().readTree(out.toFile()).get("figures");
        assertEquals(List.of("gemm_gflops"), iterableNames(figures));
        assertTrue(figures.at("/gemm_gflops/value").asDouble() > 1, "a real gemm rate: " + figures);
    }

    @Test
    void unknownFigureOrPeerIsRefusedInOneLine() {
        CliRun run = CliRun.spindle("bench", "--only", "forward_ratio,fast_ratio");
        assertEquals(2, run.exitCode());
        assertTrue(run.err().contains("--only fast_ratio: no such figure; the figures are gemm_gflops"), run.err());
        assertEquals(1, run.err().strip().lines().count(), run.err());
        run = CliRun.spindle("bench", "--peer", "jax");
        assertEquals(2, run.exitCode());
        assertTrue(run.err().contains("--peer jax is not known"), run.err());
    }

    private static List<String> iterableNames(JsonNode node) {
        List<String> names = new java.util.ArrayList<>();
        node.fieldNames().forEachRemaining(names::add);
        return names;
    }
}
