package jobs.cli;

import activations.hooks.ForwardRequest;
import activations.hooks.HookPoint;
import activations.model.TransformerModel;
import activations.safetensors.SafeTensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code spindle forward} end to end on the bundled default model, in-process. */
class ForwardCommandTest {

    static final String MODEL = "models/tinystories-656k";

    static CliRun spindle(String... args) {
        return CliRun.spindle(args);
    }

    @Test
    void writesTokensHooksAndLogits(@TempDir Path dir) {
        Path out = dir.resolve("x.safetensors");
        CliRun run = spindle("forward", "--model", MODEL, "--text", "Once upon a time, there was a little girl named Lily. She",
                "--hooks", "blocks.0.hook_resid_post,blocks.1.ln2.hook_normalized", "--out", out.toString());
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(run.out().contains("id 315"), "golden top next token 315 is printed: " + run.out());
        try (SafeTensors st = SafeTensors.open(out)) {
            int[] tokens = st.ints("tokens");
            assertArrayEquals(new int[] {1, 80, 147, 201, 282, 215, 286, 598, 629, 138, 109}, tokens);
            assertArrayEquals(new long[] {11, 128}, st.info("blocks.0.hook_resid_post").shape());
            assertArrayEquals(new long[] {11, 2048}, st.info("logits").shape());
            TransformerModel model = TransformerModel.load(Path.of(MODEL));
            HookPoint ln2 = HookPoint.parse("blocks.1.ln2.hook_normalized", model.config());
            float[] expected = model.forward(new int[][] {tokens}, ForwardRequest.capture(ln2)).get(ln2);
            assertArrayEquals(expected, st.floats("blocks.1.ln2.hook_normalized"), 0f);
        }
    }

    @Test
    void tokensAndNoBos(@TempDir Path dir) {
        Path out = dir.resolve("t.safetensors");
        assertEquals(0, spindle("forward", "--model", MODEL, "--tokens", "80,147,201", "--out", out.toString()).exitCode());
        try (SafeTensors st = SafeTensors.open(out)) {
            assertArrayEquals(new int[] {80, 147, 201}, st.ints("tokens"));
        }
        assertEquals(0, spindle("forward", "--model", MODEL, "--text", "Once upon a time", "--no-bos", "--out", out.toString()).exitCode());
        try (SafeTensors st = SafeTensors.open(out)) {
            assertTrue(st.ints("tokens")[0] != 1, "no BOS");
        }
    }

    @Test
    void badInputIsOneClearLineAndNoOutput(@TempDir Path dir) {
        Path out = dir.resolve("never.safetensors");
        CliRun unknownHook = spindle("forward", "--model", MODEL, "--text", "Hi", "--hooks", "blocks.0.resid", "--out", out.toString());
        assertEquals(2, unknownHook.exitCode());
        assertTrue(unknownHook.err().contains("unknown hook 'blocks.0.resid'; valid hooks:"), unknownHook.err());
        assertEquals(1, unknownHook.err().strip().lines().count(), unknownHook.err());

        CliRun empty = spindle("forward", "--model", MODEL, "--text", "", "--out", out.toString());
        assertEquals(2, empty.exitCode());
        assertTrue(empty.err().contains("empty"), empty.err());

        CliRun missing = spindle("forward", "--model", dir.resolve("nowhere").toString(), "--text", "Hi", "--out", out.toString());
        assertEquals(2, missing.exitCode());
        assertTrue(missing.err().contains("no such directory"), missing.err());

        String longText = "Once upon a time there was a cat. ".repeat(200);
        CliRun tooLong = spindle("forward", "--model", MODEL, "--text", longText, "--out", out.toString());
        assertEquals(2, tooLong.exitCode());
        assertTrue(tooLong.err().contains("exceed the model's context of 512"), tooLong.err());

        CliRun badToken = spindle("forward", "--model", MODEL, "--tokens", "5,99999", "--out", out.toString());
        assertEquals(2, badToken.exitCode());
        assertTrue(badToken.err().contains("outside the vocabulary"), badToken.err());

        assertFalse(Files.exists(out), "nothing written on failure");
    }
}
