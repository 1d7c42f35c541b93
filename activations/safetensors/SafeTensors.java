package activations.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A read-only view of one safetensors file: 8-byte little-endian header length, a JSON header
 * {@code {name: {dtype, shape, data_offsets}, __metadata__: {...}}}, then raw little-endian data.
 * Written here rather than taken from a library because no maintained Java reader exists; the
 * format is small. Tensor data is memory-mapped, so opening a multi-GB checkpoint costs nothing
 * until a tensor is read. The header is validated on open (offsets inside the file, no overlap,
 * sizes matching shapes), so a truncated or corrupt file fails at once with its name.
 */
public final class SafeTensors implements AutoCloseable {

    /** One tensor's header entry; {@code begin}/{@code end} are absolute file offsets. */
    public record TensorInfo(String name, DType dtype, long[] shape, long begin, long end) {
        public long elementCount() {
            long n = 1;
            for (long s : shape) {
                n *= s;
            }
            return n;
        }

        public String shapeString() {
            StringBuilder sb = new StringBuilder("[");
            for (int i = 0; i < shape.length; i++) {
                sb.append(i == 0 ? "" : ", ").append(shape[i]);
            }
            return sb.append(']').toString();
        }
    }

    private static final long MAX_HEADER_BYTES = 100L << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path file;
    private final FileChannel channel;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;

    private SafeTensors(Path file, FileChannel channel, Map<String, TensorInfo> tensors, Map<String, String> metadata) {
        this.file = file;
        this.channel = channel;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    public static SafeTensors open(Path file) {
        FileChannel channel;
        try {
            channel = FileChannel.open(file, StandardOpenOption.READ);
        } catch (NoSuchFileException e) {
            throw new SafeTensorsException(file + ": no such file; check the path (a model directory needs model.safetensors or model.safetensors.index.json)");
        } catch (IOException e) {
            throw new SafeTensorsException(file + ": cannot open (" + e.getMessage() + ")");
        }
        try {
            long size = channel.size();
            if (size < 8) {
                throw corrupt(file, "file is " + size + " bytes, shorter than the 8-byte header length");
            }
            ByteBuffer lengthBytes = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(channel, lengthBytes, 0);
            long headerLength = lengthBytes.getLong(0);
            if (headerLength <= 0 || headerLength > MAX_HEADER_BYTES || 8 + headerLength > size) {
                throw corrupt(file, "header length " + headerLength + " does not fit a file of " + size + " bytes");
            }
            ByteBuffer header = ByteBuffer.allocate((int) headerLength);
            readFully(channel, header, 8);
            JsonNode root;
            try {
                root = JSON.readTree(header.array());
            } catch (IOException e) {
                throw corrupt(file, "header is not valid JSON (" + e.getMessage() + ")");
            }
            if (root == null || !root.isObject()) {
                throw corrupt(file, "header is not a JSON object");
            }
            long dataStart = 8 + headerLength;
            Map<String, TensorInfo> tensors = new LinkedHashMap<>();
            Map<String, String> metadata = new LinkedHashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> entry = it.next();
                if (entry.getKey().equals("__metadata__")) {
                    entry.getValue().fields().forEachRemaining(m -> metadata.put(m.getKey(), m.getValue().asText()));
                    continue;
                }
                tensors.put(entry.getKey(), parseEntry(file, entry.getKey(), entry.getValue(), dataStart, size));
            }
            checkNoOverlap(file, tensors);
            return new SafeTensors(file, channel, Collections.unmodifiableMap(tensors), Collections.unmodifiableMap(metadata));
        } catch (IOException e) {
            closeQuietly(channel);
            throw new SafeTensorsException(file + ": cannot read (" + e.getMessage() + ")");
        } catch (RuntimeException e) {
            closeQuietly(channel);
            throw e;
        }
    }

    private static TensorInfo parseEntry(Path file, String name, JsonNode node, long dataStart, long fileSize) {
        JsonNode dtypeNode = node.get("dtype");
        JsonNode shapeNode = node.get("shape");
        JsonNode offsets = node.get("data_offsets");
        if (dtypeNode == null || shapeNode == null || offsets == null || !shapeNode.isArray() || offsets.size() != 2) {
            throw corrupt(file, "tensor '" + name + "' lacks dtype, shape or data_offsets");
        }
        DType dtype;
        try {
            dtype = DType.parse(dtypeNode.asText());
        } catch (IllegalArgumentException e) {
            throw new SafeTensorsException(file + ": tensor '" + name + "' has dtype " + dtypeNode.asText()
                    + ", which Spindle does not read (F32, F16, BF16, I32, I64); convert the checkpoint to one of them");
        }
        long[] shape = new long[shapeNode.size()];
        long count = 1;
        for (int i = 0; i < shape.length; i++) {
            shape[i] = shapeNode.get(i).asLong(-1);
            if (shape[i] < 0) {
                throw corrupt(file, "tensor '" + name + "' has a negative dimension");
            }
            count *= shape[i];
        }
        long begin = dataStart + offsets.get(0).asLong();
        long end = dataStart + offsets.get(1).asLong();
        if (end < begin || end - begin != count * dtype.bytes) {
            throw corrupt(file, "tensor '" + name + "' spans " + (end - begin) + " bytes but its shape needs " + count * dtype.bytes);
        }
        if (end > fileSize) {
            throw corrupt(file, "tensor '" + name + "' ends at byte " + end + " but the file has " + fileSize
                    + " bytes (truncated download?)");
        }
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    private static void checkNoOverlap(Path file, Map<String, TensorInfo> tensors) {
        List<TensorInfo> sorted = new ArrayList<>(tensors.values());
        sorted.sort(Comparator.comparingLong(TensorInfo::begin));
        for (int i = 1; i < sorted.size(); i++) {
            if (sorted.get(i).begin() < sorted.get(i - 1).end()) {
                throw corrupt(file, "tensors '" + sorted.get(i - 1).name() + "' and '" + sorted.get(i).name() + "' overlap");
            }
        }
    }

    private static SafeTensorsException corrupt(Path file, String what) {
        return new SafeTensorsException(file + ": not a valid safetensors file: " + what + "; re-download or re-export it");
    }

    private static void readFully(FileChannel channel, ByteBuffer dst, long position) throws IOException {
        while (dst.hasRemaining()) {
            int n = channel.read(dst, position + dst.position());
            if (n < 0) {
                throw new IOException("unexpected end of file");
            }
        }
    }

    private static void closeQuietly(FileChannel channel) {
        try {
            channel.close();
        } catch (IOException ignored) {
            // already failing; the first error is the one to report
        }
    }

    public Path file() {
        return file;
    }

    public Map<String, String> metadata() {
        return metadata;
    }

    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    public TensorInfo info(String name) {
        TensorInfo info = tensors.get(name);
        if (info == null) {
            throw new SafeTensorsException(file + ": no tensor named '" + name + "'");
        }
        return info;
    }

    /** The tensor's bytes, little-endian, memory-mapped (no copy). */
    public ByteBuffer raw(String name) {
        TensorInfo info = info(name);
        long length = info.end() - info.begin();
        if (length > Integer.MAX_VALUE) {
            throw new SafeTensorsException(file + ": tensor '" + name + "' is over 2 GiB; shard the checkpoint (model.safetensors.index.json)");
        }
        try {
            return channel.map(FileChannel.MapMode.READ_ONLY, info.begin(), length).order(ByteOrder.LITTLE_ENDIAN);
        } catch (IOException e) {
            throw new SafeTensorsException(file + ": cannot map tensor '" + name + "' (" + e.getMessage() + ")");
        }
    }

    /** The tensor converted to fp32, whatever its stored float type. */
    public float[] floats(String name) {
        float[] out = new float[Math.toIntExact(info(name).elementCount())];
        readFloats(name, FloatBuffer.wrap(out));
        return out;
    }

    /**
     * Values {@code [from, from + count)} of the tensor (flat, row-major) as fp32: reads tensors of
     * any size a part at a time (a whole tensor over 2^31 values fits no Java array).
     */
    public float[] floats(String name, long from, int count) {
        TensorInfo info = info(name);
        if (from < 0 || count < 0 || from + count > info.elementCount()) {
            throw new IllegalArgumentException(file + ": values [" + from + ", " + (from + count) + ") are outside tensor '" + name
                    + "' of " + info.elementCount());
        }
        int width = info.dtype().bytes;
        float[] out = new float[count];
        ByteBuffer data;
        try {
            data = channel.map(FileChannel.MapMode.READ_ONLY, info.begin() + from * width, (long) count * width)
                    .order(ByteOrder.LITTLE_ENDIAN);
        } catch (IOException e) {
            throw new SafeTensorsException(file + ": cannot map tensor '" + name + "' (" + e.getMessage() + ")");
        }
        switch (info.dtype()) {
            case F32 -> data.asFloatBuffer().get(out);
            case F16 -> {
                for (int i = 0; i < count; i++) {
                    out[i] = DType.f16ToFloat(data.getShort(2 * i));
                }
            }
            case BF16 -> {
                for (int i = 0; i < count; i++) {
                    out[i] = DType.bf16ToFloat(data.getShort(2 * i));
                }
            }
            default -> throw new SafeTensorsException(file + ": tensor '" + name + "' is " + info.dtype() + ", not a float tensor");
        }
        return out;
    }

    /** Decodes the tensor into {@code dst} (fp32) starting at its current position. */
    public void readFloats(String name, FloatBuffer dst) {
        TensorInfo info = info(name);
        ByteBuffer data = raw(name);
        int n = Math.toIntExact(info.elementCount());
        switch (info.dtype()) {
            case F32:
                dst.put(data.asFloatBuffer());
                break;
            case F16:
                for (int i = 0; i < n; i++) {
                    dst.put(DType.f16ToFloat(data.getShort(2 * i)));
                }
                break;
            case BF16:
                for (int i = 0; i < n; i++) {
                    dst.put(DType.bf16ToFloat(data.getShort(2 * i)));
                }
                break;
            default:
                throw new SafeTensorsException(file + ": tensor '" + name + "' is " + info.dtype() + ", not a float tensor");
        }
    }

    public int[] ints(String name) {
        TensorInfo info = info(name);
        ByteBuffer data = raw(name);
        int n = Math.toIntExact(info.elementCount());
        int[] out = new int[n];
        switch (info.dtype()) {
            case I32:
                data.asIntBuffer().get(out);
                break;
            case I64:
                for (int i = 0; i < n; i++) {
                    out[i] = Math.toIntExact(data.getLong(8 * i));
                }
                break;
            default:
                throw new SafeTensorsException(file + ": tensor '" + name + "' is " + info.dtype() + ", not an integer tensor");
        }
        return out;
    }

    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException e) {
            throw new SafeTensorsException(file + ": cannot close (" + e.getMessage() + ")");
        }
    }
}
