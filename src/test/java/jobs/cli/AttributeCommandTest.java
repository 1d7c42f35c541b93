package jobs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import attribution.TinyTranscoders;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Bad input to {@code spindle attribute} ends in one line and exit code 2, before Spark starts. */
class AttributeCommandTest {

    static final String MODEL = "models/tinystories-656k";

    static void assertOneLine(CliRun run, String expected) {
        assertEquals(2, run.exitCode(), run.err());
        String line = run.err().strip();
        assertFalse(line.contains("\n"), "one line: " + run.err());
        assertTrue(line.contains(expected), line);
    }

    @Test
    void transcodersThatDoNotFitTheModel(@TempDir Path dir) {
        Path narrow = TinyTranscoders.crossLayer(dir.resolve("narrow"), 2, 16, 8, "ln2.hook_normalized", 1);
        assertOneLine(CliRun.spindle("attribute", "--model", MODEL, "--transcoders", narrow.toString(), "--text", "Once upon",
                "--out", dir.resolve("o1").toString()), "the transcoders are 16 wide but the model's d_model is 128");
        Path oneLayer = TinyTranscoders.crossLayer(dir.resolve("one"), 1, 128, 8, "ln2.hook_normalized", 2);
        assertOneLine(CliRun.spindle("attribute", "--model", MODEL, "--transcoders", oneLayer.toString(), "--text", "Once upon",
                "--out", dir.resolve("o2").toString()), "cover 1 layers but the model has 2");
        Path residPost = TinyTranscoders.set(dir.resolve("post"), 2, 128, 8, "hook_resid_post", false, 3);
        assertOneLine(CliRun.spindle("attribute", "--model", MODEL, "--transcoders", residPost.toString(), "--text", "Once upon",
                "--out", dir.resolve("o3").toString()), "the transcoders read 'hook_resid_post'");
        assertOneLine(CliRun.spindle("attribute", "--model", MODEL, "--transcoders", dir.resolve("missing").toString(), "--text", "x",
                "--out", dir.resolve("o4").toString()), "has no config.yaml");
    }

    @Test
    void emptyAndOverlongPrompts(@TempDir Path dir) throws Exception {
        Path clt = TinyTranscoders.crossLayer(dir.resolve("clt"), 2, 128, 8, "ln2.hook_normalized", 4);
        assertOneLine(CliRun.spindle("attribute", "--model", MODEL, "--transcoders", clt.toString(), "--text", " ",
                "--out", dir.resolve("o1").toString()), "--text is empty");
        Path prompts = dir.resolve("p.jsonl");
        Files.writeString(prompts, "{\"prompt\": \"Once upon a time\"}\n{\"prompt\": \"\"}\n");
        assertOneLine(CliRun.spindle("attribute", "--model", MODEL, "--transcoders", clt.toString(), "--prompts", prompts.toString(),
                "--out", dir.resolve("o2").toString()), "line 2: the prompt is empty");
        String longText = "the dog ran and ".repeat(200);
        assertOneLine(CliRun.spindle("attribute", "--model", MODEL, "--transcoders", clt.toString(), "--text", longText,
                "--out", dir.resolve("o3").toString()), "tokens but the model's context is 512; shorten it");
        Files.writeString(prompts, "{\"prompt\": \"Once\"}\nnot json\n");
        assertOneLine(CliRun.spindle("attribute", "--model", MODEL, "--transcoders", clt.toString(), "--prompts", prompts.toString(),
                "--out", dir.resolve("o4").toString()), "line 2 is not JSON");
        assertOneLine(CliRun.spindle("attribute", "--model", MODEL, "--transcoders", clt.toString(), "--text", "Once",
                "--node-threshold", "1.5", "--out", dir.resolve("o5").toString()), "--node-threshold must be between 0 and 1");
        assertOneLine(CliRun.spindle("attribute", "--model", MODEL, "--transcoders", clt.toString(), "--text", "Once",
                "--features", dir.toString(), "--out", dir.resolve("o6").toString()), "has no dashboard/index.html");
    }
}
