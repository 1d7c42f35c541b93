package activations.table;

import activations.safetensors.DType;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * Activation vectors packed little-endian in a storage dtype (float32, float16, bfloat16): the
 * encoding of the activation table's hook columns and of imported {@code .npy}/safetensors data.
 * Hot path of both writer and reader, so nothing here allocates per element; the 16-bit rounding
 * itself is {@link DType}'s.
 */
public final class PackedVectors {

    private static final VarHandle SHORT_LE = MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle FLOAT_LE = MethodHandles.byteArrayViewVarHandle(float[].class, ByteOrder.LITTLE_ENDIAN);

    private PackedVectors() {
    }

    /** Fails fast on the integer dtypes, which cannot hold activations. */
    public static DType checkFloat(DType dtype) {
        if (!dtype.isFloat()) {
            throw new IllegalArgumentException("activation dtype must be bfloat16, float16 or float32, not " + dtype.userName());
        }
        return dtype;
    }

    /** Packs {@code count} floats from {@code src[srcOffset..]} into {@code dst[dstOffset..]} ({@code count * dtype.bytes} bytes). */
    public static void encode(float[] src, int srcOffset, int count, DType dtype, byte[] dst, int dstOffset) {
        switch (dtype) {
            case BF16:
                for (int i = 0; i < count; i++) {
                    SHORT_LE.set(dst, dstOffset + 2 * i, DType.floatToBf16(src[srcOffset + i]));
                }
                break;
            case F16:
                for (int i = 0; i < count; i++) {
                    SHORT_LE.set(dst, dstOffset + 2 * i, DType.floatToF16(src[srcOffset + i]));
                }
                break;
            case F32:
                for (int i = 0; i < count; i++) {
                    FLOAT_LE.set(dst, dstOffset + 4 * i, src[srcOffset + i]);
                }
                break;
            default:
                throw new IllegalArgumentException("cannot pack activations as " + dtype);
        }
    }

    /**
     * Like {@link #encode(float[], int, int, DType, byte[], int)}, also writing the values as stored
     * (after rounding to {@code dtype}) to {@code rounded[0..count)}: one pass for the writer,
     * whose statistics and finiteness check must see what readers will get.
     */
    public static void encode(float[] src, int srcOffset, int count, DType dtype, byte[] dst, int dstOffset, float[] rounded) {
        switch (dtype) {
            case BF16:
                for (int i = 0; i < count; i++) {
                    short bits = DType.floatToBf16(src[srcOffset + i]);
                    SHORT_LE.set(dst, dstOffset + 2 * i, bits);
                    rounded[i] = DType.bf16ToFloat(bits);
                }
                break;
            case F16:
                for (int i = 0; i < count; i++) {
                    short bits = DType.floatToF16(src[srcOffset + i]);
                    SHORT_LE.set(dst, dstOffset + 2 * i, bits);
                    rounded[i] = DType.f16ToFloat(bits);
                }
                break;
            case F32:
                for (int i = 0; i < count; i++) {
                    float v = src[srcOffset + i];
                    FLOAT_LE.set(dst, dstOffset + 4 * i, v);
                    rounded[i] = v;
                }
                break;
            default:
                throw new IllegalArgumentException("cannot pack activations as " + dtype);
        }
    }

    /** Unpacks {@code count} values from {@code src[srcOffset..]} into {@code dst[dstOffset..]}. */
    public static void decode(byte[] src, int srcOffset, int count, DType dtype, float[] dst, int dstOffset) {
        switch (dtype) {
            case BF16:
                for (int i = 0; i < count; i++) {
                    dst[dstOffset + i] = DType.bf16ToFloat((short) SHORT_LE.get(src, srcOffset + 2 * i));
                }
                break;
            case F16:
                for (int i = 0; i < count; i++) {
                    dst[dstOffset + i] = DType.f16ToFloat((short) SHORT_LE.get(src, srcOffset + 2 * i));
                }
                break;
            case F32:
                for (int i = 0; i < count; i++) {
                    dst[dstOffset + i] = (float) FLOAT_LE.get(src, srcOffset + 4 * i);
                }
                break;
            default:
                throw new IllegalArgumentException("cannot unpack activations stored as " + dtype);
        }
    }

    /**
     * Unpacks {@code count} values from {@code src} (from its position, which is left unchanged)
     * into {@code dst} at its position, advancing it. {@code scratch} must hold {@code count}
     * floats; it is used when either side is not a heap array (a direct ND4J buffer, a mapped file),
     * so the final copy is one bulk put.
     */
    public static void decode(ByteBuffer src, int count, DType dtype, FloatBuffer dst, float[] scratch) {
        if (src.hasArray() && dst.hasArray()) {
            decode(src.array(), src.arrayOffset() + src.position(), count, dtype, dst.array(), dst.arrayOffset() + dst.position());
            dst.position(dst.position() + count);
            return;
        }
        if (src.hasArray()) {
            decode(src.array(), src.arrayOffset() + src.position(), count, dtype, scratch, 0);
        } else {
            ByteBuffer le = src.duplicate().order(ByteOrder.LITTLE_ENDIAN);
            int base = le.position();
            switch (dtype) {
                case BF16:
                    for (int i = 0; i < count; i++) {
                        scratch[i] = DType.bf16ToFloat(le.getShort(base + 2 * i));
                    }
                    break;
                case F16:
                    for (int i = 0; i < count; i++) {
                        scratch[i] = DType.f16ToFloat(le.getShort(base + 2 * i));
                    }
                    break;
                case F32:
                    le.asFloatBuffer().get(scratch, 0, count);
                    break;
                default:
                    throw new IllegalArgumentException("cannot unpack activations stored as " + dtype);
            }
        }
        dst.put(scratch, 0, count);
    }
}
