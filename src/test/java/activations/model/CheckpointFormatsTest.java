package activations.model;

import activations.safetensors.DType;
import activations.safetensors.SafeTensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Checkpoints stored as BF16 / F16, or sharded with an index, run like their F32 originals. */
class CheckpointFormatsTest {

    static final int[] TOKENS = {3, 1, 4, 1, 5, 9, 2, 6};

    @Test
    void halfPrecisionWeightsComputeInFp32(@TempDir Path dir) throws IOException {
        TinyCheckpoint c = TinyCheckpoint.llama(16, 2, 4, 2, 24, 23, 12, false, true, 0, 5);
        for (DType dtype : List.of(DType.BF16, DType.F16)) {
            // Round the weights to the storage type first: the F32 model then holds the same values.
            c.weights.replaceAll((name, v) -> roundTrip(v, dtype));
            TransformerModel reference = TransformerModel.load(c.write(dir.resolve("f32-" + dtype)));
            Path half = c.write(dir.resolve(dtype.name()));
            SafeTensorsWriter writer = new SafeTensorsWriter();
            for (Map.Entry<String, float[]> e : c.weights.entrySet()) {
                writer.add(e.getKey(), dtype, e.getValue(), shapeOf(c, e.getKey()));
            }
            writer.write(half.resolve("model.safetensors"));
            TransformerModel stored = TransformerModel.load(half);
            assertArrayEquals(reference.lastLogits(TOKENS), stored.lastLogits(TOKENS), 0f, dtype + " weights");
        }
    }

    @Test
    void shardedCheckpointWithIndex(@TempDir Path dir) throws IOException {
        TinyCheckpoint c = TinyCheckpoint.gpt2(16, 2, 4, 23, 12, 6);
        TransformerModel single = TransformerModel.load(c.write(dir.resolve("single")));
        Path sharded = c.write(dir.resolve("sharded"));
        Files.delete(sharded.resolve("model.safetensors"));
        List<String> names = new ArrayList<>(c.weights.keySet());
        SafeTensorsWriter first = new SafeTensorsWriter();
        SafeTensorsWriter second = new SafeTensorsWriter();
        StringBuilder index = new StringBuilder("{\"metadata\": {}, \"weight_map\": {");
        for (int i = 0; i < names.size(); i++) {
            String name = names.get(i);
            String file = i % 2 == 0 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
            (i % 2 == 0 ? first : second).addF32(name, c.weights.get(name), shapeOf(c, name));
            index.append(i == 0 ? "" : ",").append('"').append(name).append("\": \"").append(file).append('"');
        }
        first.write(sharded.resolve("model-00001-of-00002.safetensors"));
        second.write(sharded.resolve("model-00002-of-00002.safetensors"));
        Files.writeString(sharded.resolve("model.safetensors.index.json"), index.append("}}").toString());
        assertArrayEquals(single.lastLogits(TOKENS), TransformerModel.load(sharded).lastLogits(TOKENS), 0f);

        Files.writeString(sharded.resolve("model.safetensors.index.json"),
                index.toString().replace("model-00002-of-00002", "model-00003-of-00003") + "}}");
        var e = assertThrows(RuntimeException.class, () -> TransformerModel.load(sharded));
        assertTrue(e.getMessage().contains("model-00003-of-00003.safetensors"), e.getMessage());
    }

    private static float[] roundTrip(float[] v, DType dtype) {
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = dtype == DType.BF16 ? DType.bf16ToFloat(DType.floatToBf16(v[i])) : DType.f16ToFloat(DType.floatToF16(v[i]));
        }
        return out;
    }

    private static long[] shapeOf(TinyCheckpoint c, String name) {
        long[] shape = c.shape(name);
        assertEquals(c.weights.get(name).length, java.util.Arrays.stream(shape).reduce(1, (a, b) -> a * b));
        return shape;
    }
}
