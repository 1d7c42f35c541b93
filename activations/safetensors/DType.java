package activations.safetensors;

import java.util.Arrays;
import java.util.Locale;

/**
 * Element types of safetensors files and of packed activation columns, with the fp32 conversions
 * the runtime needs (compute is always fp32 on CPU; 16-bit types are for storage).
 */
public enum DType {
    F32(4), F16(2), BF16(2), I32(4), I64(8);

    public final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    /** Parses a safetensors dtype ("F32") or a user-facing name ("float32", "bfloat16", "fp16"). */
    public static DType parse(String name) {
        switch (name.toLowerCase(Locale.ROOT)) {
            case "f32": case "float32": case "fp32": case "float": return F32;
            case "f16": case "float16": case "fp16": case "half": return F16;
            case "bf16": case "bfloat16": return BF16;
            case "i32": case "int32": return I32;
            case "i64": case "int64": return I64;
            default:
                throw new IllegalArgumentException("unsupported dtype '" + name + "': use one of "
                        + Arrays.toString(values()).toLowerCase(Locale.ROOT)
                        + " (or float32, float16, bfloat16)");
        }
    }

    /** The name users write in configurations and manifests. */
    public String userName() {
        switch (this) {
            case F32: return "float32";
            case F16: return "float16";
            case BF16: return "bfloat16";
            case I32: return "int32";
            default: return "int64";
        }
    }

    public boolean isFloat() {
        return this == F32 || this == F16 || this == BF16;
    }

    /** Round-to-nearest-even fp32 to bf16, NaN kept NaN. */
    public static short floatToBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 0x40); // quiet NaN
        }
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }

    public static float bf16ToFloat(short h) {
        return Float.intBitsToFloat((h & 0xffff) << 16);
    }

    /**
     * IEEE half conversions. Java 17 has no Float.floatToFloat16 (added in Java 20), so they are
     * written here; round to nearest even, with subnormals, infinities and NaN.
     */
    public static short floatToF16(float value) {
        int bits = Float.floatToRawIntBits(value);
        int sign = (bits >>> 16) & 0x8000;
        int absBits = bits & 0x7fffffff;
        if (absBits > 0x7f800000) {
            return (short) (sign | 0x7e00); // NaN
        }
        if (absBits >= 0x477ff000) { // rounds to >= 65520: infinity
            return (short) (sign | 0x7c00);
        }
        if (absBits < 0x33000001) { // at most half the smallest subnormal: signed zero
            return (short) sign;
        }
        int exponent = absBits >>> 23;
        int mantissa = absBits & 0x7fffff;
        if (exponent < 113) { // subnormal half
            mantissa |= 0x800000;
            int shift = 126 - exponent;
            int half = mantissa >>> shift;
            int remainder = mantissa & ((1 << shift) - 1);
            int halfway = 1 << (shift - 1);
            if (remainder > halfway || (remainder == halfway && (half & 1) != 0)) {
                half++;
            }
            return (short) (sign | half);
        }
        int half = ((exponent - 112) << 10) | (mantissa >>> 13);
        int remainder = mantissa & 0x1fff;
        if (remainder > 0x1000 || (remainder == 0x1000 && (half & 1) != 0)) {
            half++; // a carry into the exponent is the correct rounding
        }
        return (short) (sign | half);
    }

    public static float f16ToFloat(short h) {
        int bits = h & 0xffff;
        int sign = (bits & 0x8000) << 16;
        int exponent = (bits >>> 10) & 0x1f;
        int mantissa = bits & 0x3ff;
        if (exponent == 0x1f) {
            return Float.intBitsToFloat(sign | 0x7f800000 | (mantissa << 13));
        }
        if (exponent == 0) {
            float magnitude = mantissa * 0x1p-24f;
            return sign == 0 ? magnitude : -magnitude;
        }
        return Float.intBitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
    }
}
