package activations.model;

import activations.safetensors.SafeTensors;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The safetensors files of a Hugging Face checkpoint: one {@code model.safetensors}, or shards
 * listed by {@code model.safetensors.index.json}. Tensors are looked up by name across shards.
 */
final class CheckpointFiles implements AutoCloseable {

    private final Path dir;
    private final Map<String, SafeTensors> byTensor = new LinkedHashMap<>();
    private final Map<String, SafeTensors> open = new LinkedHashMap<>();

    private CheckpointFiles(Path dir) {
        this.dir = dir;
    }

    static CheckpointFiles open(Path dir) {
        CheckpointFiles files = new CheckpointFiles(dir);
        Path single = dir.resolve("model.safetensors");
        Path index = dir.resolve("model.safetensors.index.json");
        try {
            if (Files.exists(single)) {
                SafeTensors st = files.openShard("model.safetensors");
                st.tensors().keySet().forEach(name -> files.byTensor.put(name, st));
            } else if (Files.exists(index)) {
                JsonNode map = new ObjectMapper().readTree(index.toFile()).path("weight_map");
                if (!map.isObject() || map.isEmpty()) {
                    throw new IllegalArgumentException(index + ": no weight_map; the index file is damaged");
                }
                for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
                    Map.Entry<String, JsonNode> e = it.next();
                    SafeTensors shard = files.openShard(e.getValue().asText());
                    if (!shard.contains(e.getKey())) {
                        throw new IllegalArgumentException(index + " says tensor '" + e.getKey() + "' is in "
                                + e.getValue().asText() + ", but that file does not hold it");
                    }
                    files.byTensor.put(e.getKey(), shard);
                }
            } else {
                throw new IllegalArgumentException(dir + " has no weights: expected model.safetensors or "
                        + "model.safetensors.index.json (convert .bin/.pt checkpoints to safetensors first)");
            }
        } catch (IOException e) {
            files.close();
            throw new IllegalArgumentException(index + ": not valid JSON (" + e.getMessage() + ")");
        } catch (RuntimeException e) {
            files.close();
            throw e;
        }
        return files;
    }

    private SafeTensors openShard(String fileName) {
        return open.computeIfAbsent(fileName, f -> SafeTensors.open(dir.resolve(f)));
    }

    boolean has(String name) {
        return byTensor.containsKey(name);
    }

    SafeTensors.TensorInfo info(String name) {
        return shardOf(name).info(name);
    }

    float[] floats(String name) {
        return shardOf(name).floats(name);
    }

    private SafeTensors shardOf(String name) {
        SafeTensors st = byTensor.get(name);
        if (st == null) {
            throw new IllegalArgumentException(dir + ": the weights have no tensor '" + name
                    + "'; config.json and the weights do not match");
        }
        return st;
    }

    @Override
    public void close() {
        for (SafeTensors st : open.values()) {
            st.close();
        }
    }
}
