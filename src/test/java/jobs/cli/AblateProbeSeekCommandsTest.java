package jobs.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import training.evaluation.DictionaryFixtures;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `spindle seek`, `ablate` and `probe` from the command line: a real run and one-line errors with exit code 2. */
class AblateProbeSeekCommandsTest {

    static final String MODEL = "models/tinystories-656k";

    @TempDir
    Path dir;

    @Test
    void seekRunsOnTheBundledModelAndRefusesBadInputInOneLine() throws Exception {
        Path sae = DictionaryFixtures.identity(dir.resolve("sae"), "blocks.0.hook_resid_post", 128);
        Path out = dir.resolve("seek");
        CliRun run = CliRun.spindle("seek", "--model", MODEL, "--dictionary", sae.toString(), "--feature", "5",
                "--population", "6", "--generations", "2", "--seed", "3", "--out", out.toString());
        assertEquals(0, run.exitCode(), run.err());
        JsonNode json = new ObjectMapper().readTree(out.resolve("seek.json").toFile());
        assertEquals(3, json.at("/curve/best").size());
        assertTrue(json.at("/best/0/activation").asDouble() > 0);
        assertEquals(1, json.at("/best/0/ids/0").asInt(), "BOS first");
        assertTrue(Files.size(out.resolve("seek.png")) > 1000);

        CliRun range = CliRun.spindle("seek", "--model", MODEL, "--dictionary", sae.toString(), "--feature", "256",
                "--out", dir.resolve("bad").toString());
        assertEquals(2, range.exitCode());
        assertEquals("spindle seek: feature 256 is out of range: the dictionary has features 0..255", range.err().strip());
        CliRun missing = CliRun.spindle("seek", "--model", MODEL, "--dictionary", dir.resolve("nothing").toString(), "--feature", "1",
                "--out", dir.resolve("bad").toString());
        assertEquals(2, missing.exitCode());
        assertEquals("spindle seek: --dictionary " + dir.resolve("nothing") + ": no such directory", missing.err().strip());
        assertFalse(Files.exists(dir.resolve("bad")));
    }

    @Test
    void ablateAndProbeRefuseBadInputInOneLine() throws Exception {
        CliRun mode = CliRun.spindle("ablate", "--master", "local[1]", "--model", MODEL, "--tokens", dir.toString(),
                "--hook", "blocks.0.hook_resid_post", "--mode", "shuffle", "--out", dir.resolve("bad").toString());
        assertEquals(2, mode.exitCode());
        assertEquals("spindle ablate: unknown ablation mode 'shuffle'; use zero, mean or resample", mode.err().strip().lines()
                .reduce((a, b) -> b).orElse(""));
        Path data = dir.resolve("data.jsonl");
        Files.write(data, List.of("{\"text\": \"a cat\", \"label\": 1}"));
        CliRun hook = CliRun.spindle("probe", "--master", "local[1]", "--model", MODEL, "--data", data.toString(),
                "--label-field", "label", "--hooks", "blocks.0.hook_nope", "--out", dir.resolve("bad").toString());
        assertEquals(2, hook.exitCode());
        String last = hook.err().strip().lines().reduce((a, b) -> b).orElse("");
        assertTrue(last.startsWith("spindle probe: unknown hook 'blocks.0.hook_nope'; valid hooks: "), last);
        assertFalse(Files.exists(dir.resolve("bad")));
    }
}
