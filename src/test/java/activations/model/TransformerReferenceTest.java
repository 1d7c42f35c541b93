package activations.model;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Every hook of the Java forward pass, batched, equals a naive float64 reference implementation on
 * small random checkpoints of each supported architecture flavour.
 */
class TransformerReferenceTest {

    static Stream<Arguments> checkpoints() {
        return Stream.of(
                Arguments.of("gpt2", TinyCheckpoint.gpt2(16, 2, 4, 23, 12, 1)),
                Arguments.of("llama-gqa-tied", TinyCheckpoint.llama(16, 2, 4, 2, 40, 23, 12, false, true, 0, 2)),
                Arguments.of("qwen2-bias-untied", TinyCheckpoint.llama(16, 2, 4, 1, 24, 23, 12, true, false, 0, 3)),
                Arguments.of("mistral-window", TinyCheckpoint.llama(16, 2, 2, 2, 24, 23, 12, false, true, 3, 4)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("checkpoints")
    void everyHookMatchesReference(String name, TinyCheckpoint checkpoint, @TempDir Path dir) {
        int[][] batch = {{3, 7, 1, 22, 9, 0, 14, 5}, {11, 2, 2, 6, 19, 8, 4, 13}};
        assertMatchesReference(name, checkpoint, TransformerModel.load(checkpoint.write(dir)), batch);
    }

    /**
     * Sequences longer than one block of attention rows (32), ending in a partial block, so the
     * products that stop at the diagonal and start at the window's edge are checked across blocks.
     */
    @org.junit.jupiter.api.Test
    void longSequencesMatchReferenceAcrossAttentionBlocks(@TempDir Path dir) {
        int length = 75;
        java.util.Random random = new java.util.Random(7);
        int[][] batch = new int[2][length];
        for (int[] sequence : batch) {
            for (int t = 0; t < length; t++) {
                sequence[t] = random.nextInt(23);
            }
        }
        TinyCheckpoint windowed = TinyCheckpoint.llama(16, 2, 4, 2, 24, 23, 96, false, true, 40, 5);
        assertMatchesReference("gqa-window-40", windowed, TransformerModel.load(windowed.write(dir.resolve("w"))), batch);
        TinyCheckpoint gpt2 = TinyCheckpoint.gpt2(16, 2, 4, 23, 96, 6);
        assertMatchesReference("gpt2-long", gpt2, TransformerModel.load(gpt2.write(dir.resolve("g"))), batch);
    }

    private static void assertMatchesReference(String name, TinyCheckpoint checkpoint, TransformerModel model, int[][] batch) {
        var hooks = HookPoint.all(model.config());
        ForwardResult result = model.forward(batch, ForwardRequest.capture(hooks));
        for (int s = 0; s < batch.length; s++) {
            Map<String, double[][]> expected = ReferenceTransformer.run(checkpoint, checkpoint.weights, batch[s]);
            for (HookPoint hook : hooks) {
                double[][] want = expected.get(hook.name());
                for (int t = 0; t < batch[s].length; t++) {
                    float[] got = result.row(hook, s, t);
                    assertEquals(want[t].length, got.length, hook + " width");
                    double scale = 0;
                    for (double v : want[t]) {
                        scale = Math.max(scale, Math.abs(v));
                    }
                    for (int i = 0; i < got.length; i++) {
                        assertEquals(want[t][i], got[i], 1e-5 + 2e-5 * scale,
                                name + " " + hook + " seq " + s + " pos " + t + " dim " + i);
                    }
                }
            }
        }
    }
}
