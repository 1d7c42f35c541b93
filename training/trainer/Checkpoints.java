package training.trainer;

import activations.safetensors.SafeTensors;
import activations.safetensors.SafeTensorsWriter;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * Training checkpoints under {@code <output>/checkpoints/step-<n>/}: {@code state.safetensors}
 * (parameters, Adam moments) and {@code trainer.json} (step, tokens, data position, normalization
 * scale, config, feature statistics, architecture state). Each is written into a hidden temporary
 * directory that is then renamed, so a crash leaves either the whole checkpoint or none; the two
 * newest are kept.
 *
 * <p>Models past 2^31 parameters (cross-layer transcoders) are checkpointed in shards instead
 * ({@link #writeSharded}): {@code shards.json} lists named segments of the flat parameter array
 * (per layer: its encoder, its decoders), each cut into parts of at most {@link #shardElements}
 * values, and each part is one {@code shard-NNNNN.safetensors} holding that range of the
 * parameters and of Adam's two moments. No Java array ever holds more than one part.
 * {@link #readInto} reads either layout.
 */
public final class Checkpoints {

    static final String DIRECTORY = "checkpoints";
    private static final String PREFIX = "step-";
    private static final int KEEP = 2;
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What trainer.json holds; public fields for Jackson. */
    public static final class TrainerState {
        public long step;
        public long tokens;
        public long dataPosition;
        public double normalizationScale;
        /** Transcoders: the target's scale (the input's is normalizationScale). */
        public double targetNormalizationScale;
        /** Cross-layer transcoders: per-layer input scales then per-layer target scales. */
        public double[] normalizationScales;
        public long seed;
        public Map<String, Object> config;
        public double[] architectureState;
        public long[] tokensSinceFired;
        public double[] intervalCounts;
        public long intervalTokens;
        public double[] windowCounts;
        public long windowTokens;
        public double[] lastWindowDensity;
    }

    private Checkpoints() {
    }

    public static Path root(Path output) {
        return output.resolve(DIRECTORY);
    }

    /** The newest complete checkpoint directory, if any. */
    public static Optional<Path> latest(Path output) {
        Path root = root(output);
        if (!Files.isDirectory(root)) {
            return Optional.empty();
        }
        try (Stream<Path> dirs = Files.list(root)) {
            return dirs.filter(p -> p.getFileName().toString().startsWith(PREFIX) && Files.isDirectory(p))
                    .max(Comparator.comparingLong(Checkpoints::stepOf));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list checkpoints in " + root, e);
        }
    }

    public static long stepOf(Path dir) {
        try {
            return Long.parseLong(dir.getFileName().toString().substring(PREFIX.length()));
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    public static void write(Path output, TrainerState state, float[] parameters, float[] adamState) {
        commit(output, state, temp -> new SafeTensorsWriter()
                .addF32("parameters", parameters, parameters.length)
                .addF32("adam", adamState, adamState.length)
                .write(temp.resolve("state.safetensors")));
    }

    /** What a checkpoint writes into its temporary directory before {@link #commit} moves it into place. */
    private interface CheckpointFiles {
        void writeInto(Path temp) throws IOException;
    }

    /**
     * Writes {@code files} and trainer.json into a temporary directory beside the checkpoints and
     * moves it into place atomically (a reader sees a whole checkpoint or none), then prunes old ones.
     */
    private static void commit(Path output, TrainerState state, CheckpointFiles files) {
        Path root = root(output);
        Path target = root.resolve(PREFIX + String.format("%09d", state.step));
        Path temp = root.resolve(".tmp-" + PREFIX + state.step + "-" + ProcessHandle.current().pid());
        try {
            Files.createDirectories(root);
            deleteTree(temp);
            Files.createDirectories(temp);
            files.writeInto(temp);
            JSON.writeValue(temp.resolve("trainer.json").toFile(), state);
            deleteTree(target);
            Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE);
            prune(root);
        } catch (IOException e) {
            try {
                deleteTree(temp);
            } catch (IOException ignored) {
                // the write error is the one to report
            }
            throw new UncheckedIOException("cannot write checkpoint " + target + ": " + e.getMessage(), e);
        }
    }

    public record Loaded(TrainerState state, float[] parameters, float[] adamState) {
    }

    /** A named range of a flat parameter array, e.g. one layer's encoder. */
    public record Segment(String name, long offset, long length) {
    }

    /** One shard file of a sharded checkpoint: {@code length} values of segment {@code segment} from {@code offset}. */
    public record Shard(String file, String segment, long offset, long length) {
    }

    /** The segments' index, {@code shards.json}. */
    public record ShardIndex(long parameters, List<Shard> shards) {
    }

    static final String SHARDS_FILE = "shards.json";
    /** Values per shard file and tensor; far below 2^31. Package-private so tests can make it tiny. */
    static long shardElements = 1L << 28;

    /**
     * Writes a checkpoint whose parameters (and Adam's m and v, each as long as the parameters) are
     * cut along {@code segments} (which must tile the array in order) into shards of at most
     * {@link #shardElements} values; atomic as {@link #write}.
     */
    public static void writeSharded(Path output, TrainerState state, INDArray parameters, INDArray adamState,
                                    List<Segment> segments) {
        long n = parameters.length();
        if (adamState.length() != 2 * n) {
            throw new IllegalArgumentException("Adam state has " + adamState.length() + " values; expected m and v, 2 x " + n);
        }
        long covered = 0;
        for (Segment segment : segments) {
            if (segment.offset() != covered) {
                throw new IllegalArgumentException("segment " + segment.name() + " starts at " + segment.offset() + ", not " + covered);
            }
            covered += segment.length();
        }
        if (covered != n) {
            throw new IllegalArgumentException("the segments cover " + covered + " of " + n + " parameters");
        }
        commit(output, state, temp -> {
            List<Shard> shards = new ArrayList<>();
            for (Segment segment : segments) {
                for (long from = 0; from < segment.length(); from += shardElements) {
                    long length = Math.min(shardElements, segment.length() - from);
                    long at = segment.offset() + from;
                    String file = String.format("shard-%05d.safetensors", shards.size());
                    new SafeTensorsWriter().metadata("segment", segment.name()).metadata("offset", Long.toString(at))
                            .addF32("parameters", range(parameters, at, length), length)
                            .addF32("adam_m", range(adamState, at, length), length)
                            .addF32("adam_v", range(adamState, n + at, length), length)
                            .write(temp.resolve(file));
                    shards.add(new Shard(file, segment.name(), at, length));
                }
            }
            JSON.writeValue(temp.resolve(SHARDS_FILE).toFile(), new ShardIndex(n, shards));
        });
    }

    private static float[] range(INDArray flat, long from, long length) {
        return flat.reshape(flat.length()).get(NDArrayIndex.interval(from, from + length)).toFloatVector();
    }

    private static void assignRange(INDArray flat, long from, float[] values) {
        INDArray view = flat.reshape(flat.length()).get(NDArrayIndex.interval(from, from + values.length));
        view.assign(Nd4j.createFromArray(values).castTo(flat.dataType()));
    }

    /** The trainer state alone (check the config before reading the arrays). */
    public static TrainerState readState(Path dir) {
        try {
            return JSON.readValue(dir.resolve("trainer.json").toFile(), TrainerState.class);
        } catch (IOException e) {
            throw new IllegalStateException("checkpoint " + dir + " has an unreadable trainer.json (" + e.getMessage()
                    + "); delete that checkpoint directory to resume from the previous one");
        }
    }

    /**
     * Reads a checkpoint's parameters and Adam state into existing arrays (same sizes), shard by
     * shard for a sharded checkpoint, and returns its trainer state. Either layout.
     */
    public static TrainerState readInto(Path dir, INDArray parameters, INDArray adamState) {
        TrainerState state = readState(dir);
        long n = parameters.length();
        if (!Files.isRegularFile(dir.resolve(SHARDS_FILE))) {
            Loaded loaded = read(dir);
            checkLength(dir, loaded.parameters().length, n);
            assignRange(parameters, 0, loaded.parameters());
            assignRange(adamState, 0, loaded.adamState());
            return state;
        }
        ShardIndex index;
        try {
            index = JSON.readValue(dir.resolve(SHARDS_FILE).toFile(), ShardIndex.class);
        } catch (IOException e) {
            throw new IllegalStateException("checkpoint " + dir + " has an unreadable " + SHARDS_FILE + " (" + e.getMessage()
                    + "); delete that checkpoint directory to resume from the previous one");
        }
        checkLength(dir, index.parameters(), n);
        long covered = 0;
        for (Shard shard : index.shards()) {
            try (SafeTensors tensors = SafeTensors.open(dir.resolve(shard.file()))) {
                float[] p = tensors.floats("parameters");
                if (p.length != shard.length() || shard.offset() != covered) {
                    throw new IllegalStateException("checkpoint " + dir + ": " + shard.file() + " does not hold the range its index"
                            + " names; delete that checkpoint directory to resume from the previous one");
                }
                assignRange(parameters, shard.offset(), p);
                assignRange(adamState, shard.offset(), tensors.floats("adam_m"));
                assignRange(adamState, n + shard.offset(), tensors.floats("adam_v"));
                covered += shard.length();
            }
        }
        checkLength(dir, covered, n);
        return state;
    }

    private static void checkLength(Path dir, long found, long expected) {
        if (found != expected) {
            throw new IllegalStateException("checkpoint " + dir + " holds " + found + " parameters, the model has " + expected
                    + "; resume with the configuration it was written with, or delete the checkpoints");
        }
    }

    public static Loaded read(Path dir) {
        TrainerState state;
        try {
            state = JSON.readValue(dir.resolve("trainer.json").toFile(), TrainerState.class);
        } catch (IOException e) {
            throw new IllegalStateException("checkpoint " + dir + " has an unreadable trainer.json (" + e.getMessage()
                    + "); delete that checkpoint directory to resume from the previous one");
        }
        try (SafeTensors tensors = SafeTensors.open(dir.resolve("state.safetensors"))) {
            return new Loaded(state, tensors.floats("parameters"), tensors.floats("adam"));
        }
    }

    private static void prune(Path root) throws IOException {
        List<Path> steps;
        try (Stream<Path> dirs = Files.list(root)) {
            steps = dirs.filter(p -> p.getFileName().toString().startsWith(PREFIX))
                    .sorted(Comparator.comparingLong(Checkpoints::stepOf).reversed()).toList();
        }
        for (int i = KEEP; i < steps.size(); i++) {
            deleteTree(steps.get(i));
        }
    }

    private static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> all = Files.walk(dir)) {
            for (Path p : all.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }
}
