package activations.safetensors;

import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes a safetensors file byte-compatible with the Python {@code safetensors} library: header
 * padded with spaces to a multiple of 8, tensors in the order added, data little-endian. The file
 * appears atomically (written beside the target, then renamed), so a reader never sees half a file.
 */
public final class SafeTensorsWriter {

    /** Data written part by part (tensors over 2^31 values fit no Java array): each part handed to the sink in order. */
    @FunctionalInterface
    public interface FloatParts {
        void emit(java.util.function.Consumer<float[]> sink);
    }

    /** {@code data} for tensors held in memory; {@code parts} (fp32) for tensors streamed at write time. */
    private record Entry(String name, DType dtype, long[] shape, ByteBuffer data, FloatParts parts, long bytes) {
        Entry(String name, DType dtype, long[] shape, ByteBuffer data) {
            this(name, dtype, shape, data, null, data.capacity());
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    private final List<Entry> entries = new ArrayList<>();
    private final Map<String, String> metadata = new LinkedHashMap<>();

    public SafeTensorsWriter metadata(String key, String value) {
        metadata.put(key, value);
        return this;
    }

    /** Adds fp32 data stored as {@code dtype} (F32, F16 or BF16). */
    public SafeTensorsWriter add(String name, DType dtype, float[] data, long... shape) {
        checkCount(name, data.length, shape);
        ByteBuffer buffer = ByteBuffer.allocate(data.length * dtype.bytes).order(ByteOrder.LITTLE_ENDIAN);
        switch (dtype) {
            case F32:
                buffer.asFloatBuffer().put(data);
                break;
            case F16:
                for (float v : data) {
                    buffer.putShort(DType.floatToF16(v));
                }
                break;
            case BF16:
                for (float v : data) {
                    buffer.putShort(DType.floatToBf16(v));
                }
                break;
            default:
                throw new IllegalArgumentException("tensor '" + name + "': float data cannot be stored as " + dtype);
        }
        return put(new Entry(name, dtype, shape.clone(), buffer));
    }

    public SafeTensorsWriter addF32(String name, float[] data, long... shape) {
        return add(name, DType.F32, data, shape);
    }

    /**
     * An fp32 tensor of {@code shape} whose values {@code parts} emits in row-major order when the
     * file is written, so no single array holds the whole tensor.
     */
    public SafeTensorsWriter addF32Parts(String name, FloatParts parts, long... shape) {
        long count = 1;
        for (long s : shape) {
            count *= s;
        }
        return put(new Entry(name, DType.F32, shape.clone(), null, parts, count * 4));
    }

    public SafeTensorsWriter addI32(String name, int[] data, long... shape) {
        checkCount(name, data.length, shape);
        ByteBuffer buffer = ByteBuffer.allocate(data.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        buffer.asIntBuffer().put(data);
        return put(new Entry(name, DType.I32, shape.clone(), buffer));
    }

    private SafeTensorsWriter put(Entry entry) {
        for (Entry e : entries) {
            if (e.name().equals(entry.name())) {
                throw new IllegalArgumentException("tensor '" + entry.name() + "' added twice");
            }
        }
        entries.add(entry);
        return this;
    }

    private static void checkCount(String name, long count, long[] shape) {
        long expected = 1;
        for (long s : shape) {
            expected *= s;
        }
        if (expected != count) {
            throw new IllegalArgumentException("tensor '" + name + "': " + count + " values do not fill shape "
                    + java.util.Arrays.toString(shape));
        }
    }

    private static void writeParts(Entry e, OutputStream out) throws IOException {
        long[] written = {0};
        IOException[] failure = {null};
        e.parts().emit(part -> {
            if (failure[0] != null) {
                return;
            }
            ByteBuffer bytes = ByteBuffer.allocate(part.length * 4).order(ByteOrder.LITTLE_ENDIAN);
            bytes.asFloatBuffer().put(part);
            try {
                out.write(bytes.array());
            } catch (IOException io) {
                failure[0] = io;
            }
            written[0] += part.length * 4L;
        });
        if (failure[0] != null) {
            throw failure[0];
        }
        if (written[0] != e.bytes()) {
            throw new IllegalArgumentException("tensor '" + e.name() + "': its parts held " + written[0] / 4 + " values, its shape "
                    + java.util.Arrays.toString(e.shape()) + " needs " + e.bytes() / 4);
        }
    }

    public void write(Path file) {
        Map<String, Object> header = new LinkedHashMap<>();
        if (!metadata.isEmpty()) {
            header.put("__metadata__", metadata);
        }
        long offset = 0;
        for (Entry e : entries) {
            Map<String, Object> info = new LinkedHashMap<>();
            info.put("dtype", e.dtype().name());
            info.put("shape", e.shape());
            long length = e.bytes();
            info.put("data_offsets", new long[] {offset, offset + length});
            header.put(e.name(), info);
            offset += length;
        }
        byte[] json;
        try {
            json = JSON.writeValueAsBytes(header);
        } catch (IOException e) {
            throw new SafeTensorsException(file + ": cannot encode header (" + e.getMessage() + ")");
        }
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer prefix = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        prefix.putLong(padded).put(json);
        while (prefix.hasRemaining()) {
            prefix.put((byte) ' ');
        }

        Path target = file.toAbsolutePath();
        Path temp = target.resolveSibling("." + target.getFileName() + ".tmp-" + ProcessHandle.current().pid());
        try {
            if (target.getParent() != null) {
                Files.createDirectories(target.getParent());
            }
            try (OutputStream out = Files.newOutputStream(temp)) {
                out.write(prefix.array());
                for (Entry e : entries) {
                    if (e.parts() == null) {
                        out.write(e.data().array());
                    } else {
                        writeParts(e, out);
                    }
                }
            }
            Files.move(temp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            try {
                Files.deleteIfExists(temp);
            } catch (IOException ignored) {
                // the write error is what matters
            }
            throw new SafeTensorsException(file + ": cannot write (" + e.getMessage() + ")");
        }
    }

}
