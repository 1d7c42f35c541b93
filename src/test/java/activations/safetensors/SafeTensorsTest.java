package activations.safetensors;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SafeTensorsTest {

    @Test
    void roundTripsEveryDtypeWithMetadata(@TempDir Path dir) {
        float[] values = {0f, 1f, -2.5f, 3.14159f, 65504f, 1e-8f};
        Path file = dir.resolve("t.safetensors");
        new SafeTensorsWriter()
                .metadata("format", "pt")
                .addF32("f32", values, 2, 3)
                .add("f16", DType.F16, values, 6)
                .add("bf16", DType.BF16, values, 3, 2)
                .addI32("ids", new int[] {7, -1, 2}, 3)
                .write(file);
        try (SafeTensors st = SafeTensors.open(file)) {
            assertEquals("pt", st.metadata().get("format"));
            assertArrayEquals(new long[] {2, 3}, st.info("f32").shape());
            assertArrayEquals(values, st.floats("f32"), 0f);
            float[] half = st.floats("f16");
            float[] brain = st.floats("bf16");
            for (int i = 0; i < values.length; i++) {
                assertEquals(values[i], half[i], Math.abs(values[i]) * 0x1p-11f + 6e-8f, "f16 " + i);
                assertEquals(values[i], brain[i], Math.abs(values[i]) * 0x1p-8f, "bf16 " + i);
            }
            assertArrayEquals(new int[] {7, -1, 2}, st.ints("ids"));
        }
    }

    @Test
    void headerIsPaddedToEightBytesAndDataFollowsIt(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("t.safetensors");
        new SafeTensorsWriter().addF32("a", new float[] {1f, 2f}, 2).write(file);
        byte[] bytes = Files.readAllBytes(file);
        long headerLength = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(0, headerLength % 8);
        String header = new String(bytes, 8, (int) headerLength, StandardCharsets.UTF_8);
        assertTrue(header.startsWith("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"), header);
        ByteBuffer data = ByteBuffer.wrap(bytes, 8 + (int) headerLength, 8).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(1f, data.getFloat());
        assertEquals(2f, data.getFloat());
        assertEquals(8 + headerLength + 8, bytes.length);
    }

    @Test
    void reportsCorruptFiles(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("bad.safetensors");
        Files.write(file, new byte[] {1, 2, 3});
        assertTrue(assertThrows(SafeTensorsException.class, () -> SafeTensors.open(file)).getMessage().contains("shorter than"));

        ByteBuffer huge = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1L << 40);
        Files.write(file, huge.array());
        assertTrue(assertThrows(SafeTensorsException.class, () -> SafeTensors.open(file)).getMessage().contains("header length"));

        Files.write(file, withHeader("{not json"));
        assertTrue(assertThrows(SafeTensorsException.class, () -> SafeTensors.open(file)).getMessage().contains("not valid JSON"));

        Files.write(file, withHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,8]}}"));
        assertTrue(assertThrows(SafeTensorsException.class, () -> SafeTensors.open(file)).getMessage().contains("shape needs 16"));

        Files.write(file, withHeader("{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}"));
        assertTrue(assertThrows(SafeTensorsException.class, () -> SafeTensors.open(file)).getMessage().contains("F64"));

        Files.write(file, withHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}"));
        assertTrue(assertThrows(SafeTensorsException.class, () -> SafeTensors.open(file)).getMessage().contains("overlap"));

        var missing = assertThrows(SafeTensorsException.class, () -> SafeTensors.open(dir.resolve("absent.safetensors")));
        assertTrue(missing.getMessage().contains("no such file"));
    }

    @Test
    void failedWriteLeavesThePreviousFileIntact(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("keep.safetensors");
        new SafeTensorsWriter().addF32("a", new float[] {1f}, 1).write(file);
        byte[] before = Files.readAllBytes(file);
        assertThrows(IllegalArgumentException.class,
                () -> new SafeTensorsWriter().addF32("a", new float[] {1f, 2f}, 3).write(file));
        assertArrayEquals(before, Files.readAllBytes(file));
        try (var files = Files.list(dir)) {
            assertEquals(1, files.count(), "no temp file left behind");
        }
    }

    @Test
    void halfPrecisionConversionsRoundToNearestEven() {
        assertEquals((short) 0x3c00, DType.floatToF16(1f));
        assertEquals((short) 0x7bff, DType.floatToF16(65504f));
        assertEquals((short) 0x7c00, DType.floatToF16(65520f), "rounds up to infinity");
        assertEquals((short) 0x0001, DType.floatToF16(0x1p-24f), "smallest subnormal");
        assertEquals((short) 0x0000, DType.floatToF16(0x1p-25f), "half the smallest subnormal ties to even zero");
        assertEquals((short) 0x3c00, DType.floatToF16(1f + 0x1p-11f), "tie rounds to even (down)");
        assertEquals((short) 0x3c02, DType.floatToF16(1f + 3 * 0x1p-11f), "tie rounds to even (up)");
        assertTrue(Float.isNaN(DType.f16ToFloat(DType.floatToF16(Float.NaN))));
        assertEquals(0x1p-24f, DType.f16ToFloat((short) 1));
        assertEquals(-2f, DType.f16ToFloat((short) 0xc000));

        assertEquals((short) 0x3f80, DType.floatToBf16(1f));
        assertEquals((short) 0x3f80, DType.floatToBf16(Float.intBitsToFloat(0x3f808000)), "tie to even (down)");
        assertEquals((short) 0x3f82, DType.floatToBf16(Float.intBitsToFloat(0x3f818000)), "tie to even (up)");
        assertTrue(Float.isNaN(DType.bf16ToFloat(DType.floatToBf16(Float.NaN))));
        for (int i = -1000; i <= 1000; i++) {
            float v = i * 0.37f;
            assertEquals(v, DType.f16ToFloat(DType.floatToF16(v)), Math.abs(v) * 0x1p-11f);
        }
        assertFalse(DType.I32.isFloat());
        assertEquals(DType.BF16, DType.parse("bfloat16"));
        assertThrows(IllegalArgumentException.class, () -> DType.parse("float8"));
    }

    private static byte[] withHeader(String json) {
        byte[] header = json.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + 16).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(header.length).put(header);
        return b.array();
    }
}
