package training.trainer;

import activations.safetensors.SafeTensors;
import activations.safetensors.SafeTensorsWriter;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
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
        Path root = root(output);
        Path target = root.resolve(PREFIX + String.format("%09d", state.step));
        Path temp = root.resolve(".tmp-" + PREFIX + state.step + "-" + ProcessHandle.current().pid());
        try {
            Files.createDirectories(root);
            deleteTree(temp);
            Files.createDirectories(temp);
            new SafeTensorsWriter()
                    .addF32("parameters", parameters, parameters.length)
                    .addF32("adam", adamState, adamState.length)
                    .write(temp.resolve("state.safetensors"));
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
