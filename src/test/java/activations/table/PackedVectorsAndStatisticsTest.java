package activations.table;

import activations.safetensors.DType;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class PackedVectorsAndStatisticsTest {

    @Test
    void packedBytesAreLittleEndianInEachDtype() {
        float[] values = {1.0f, -2.5f, 3.140625f};
        byte[] packed = new byte[12];
        PackedVectors.encode(values, 0, 3, DType.F32, packed, 0);
        ByteBuffer le = ByteBuffer.wrap(packed).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(-2.5f, le.getFloat(4));
        PackedVectors.encode(values, 0, 3, DType.BF16, packed, 0);
        assertEquals((byte) 0x80, packed[0]); // bf16(1.0) = 0x3f80, low byte first
        assertEquals((byte) 0x3f, packed[1]);
        PackedVectors.encode(values, 0, 3, DType.F16, packed, 0);
        assertEquals((byte) 0x00, packed[0]); // f16(1.0) = 0x3c00
        assertEquals((byte) 0x3c, packed[1]);
    }

    @Test
    void decodeIntoHeapAndDirectBuffersMatchesTheScalarConversions() {
        float[] values = new float[37];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) Math.sin(i) * (i + 1);
        }
        for (DType dtype : new DType[] {DType.F32, DType.F16, DType.BF16}) {
            byte[] packed = new byte[values.length * dtype.bytes + 5];
            PackedVectors.encode(values, 0, values.length, dtype, packed, 5);
            float[] expected = new float[values.length];
            for (int i = 0; i < values.length; i++) {
                expected[i] = dtype == DType.F32 ? values[i]
                        : dtype == DType.F16 ? DType.f16ToFloat(DType.floatToF16(values[i])) : DType.bf16ToFloat(DType.floatToBf16(values[i]));
            }
            ByteBuffer heap = ByteBuffer.wrap(packed, 5, values.length * dtype.bytes);
            ByteBuffer direct = ByteBuffer.allocateDirect(packed.length);
            direct.put(packed).position(5);
            float[] scratch = new float[values.length];
            for (ByteBuffer src : new ByteBuffer[] {heap, direct}) {
                for (FloatBuffer dst : new FloatBuffer[] {FloatBuffer.allocate(values.length + 2),
                        ByteBuffer.allocateDirect(4 * (values.length + 2)).asFloatBuffer()}) {
                    dst.position(2);
                    PackedVectors.decode(src, values.length, dtype, dst, scratch);
                    assertEquals(values.length + 2, dst.position());
                    float[] got = new float[values.length];
                    dst.position(2);
                    dst.get(got);
                    assertArrayEquals(expected, got, dtype + " " + src.isDirect() + " -> " + dst.isDirect());
                }
            }
        }
    }

    @Test
    void statisticsMatchHandComputedValuesMergeAndSurviveJson() throws Exception {
        // rows (3, 4) and (0, -2): norms 5 and 2
        HookStatistics a = new HookStatistics(2);
        a.add(new float[] {3, 4}, 0);
        HookStatistics b = new HookStatistics(2);
        b.add(new float[] {9, 0, -2}, 1);
        HookStatistics merged = a.copy().merge(b);
        assertEquals(2, merged.count());
        assertEquals(3.5, merged.meanNorm(), 1e-12);
        assertArrayEquals(new double[] {1.5, 1.0}, merged.mean(), 1e-12);
        assertArrayEquals(new double[] {2.25, 9.0}, merged.variance(), 1e-12);

        ObjectMapper json = new ObjectMapper();
        HookStatistics back = json.readValue(json.writeValueAsString(merged), HookStatistics.class);
        assertEquals(merged.count(), back.count());
        assertEquals(merged.sumNorm(), back.sumNorm());
        assertArrayEquals(merged.sum(), back.sum());
        assertArrayEquals(merged.sumSquares(), back.sumSquares());
    }
}
