package activations.table;

import activations.safetensors.DType;
import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * {@code _manifest.json}: what an activation cache directory holds (see
 * {@link ActivationShardWriter} for the table layout). Written last, atomically: its presence marks
 * a complete cache; a directory without it is an interrupted run to resume.
 *
 * @param formatVersion    layout version, {@link #FORMAT_VERSION}
 * @param modelChecksum    identifies the exact weights (a hash), so a resumed or extended cache
 *                         cannot silently mix models; null when unknown (imports)
 * @param contextSize      tokens per sequence; 0 when not applicable (imported rows)
 * @param sourceTokenTable the token table the activations were computed from; null for imports
 * @param shuffleSeed      seed of the row shuffle applied while caching; null when unshuffled
 * @param skippedPositions which positions were left out (e.g. "pos 0 (BOS)"), free text; null when none
 * @param statistics       per-hook statistics over all rows, merged from the shards
 * @param shards           the shard files (relative names) in reading order, with their row counts
 * @param createdAt        ISO-8601 instant
 */
@JsonIgnoreProperties(ignoreUnknown = true)
@JsonPropertyOrder({"formatVersion", "modelId", "modelChecksum", "hooks", "dtype", "tokenCount", "contextSize",
        "sourceTokenTable", "shuffleSeed", "skippedPositions", "shards", "createdAt", "spindleVersion", "statistics"})
public record ActivationManifest(int formatVersion, String modelId, String modelChecksum, List<HookSpec> hooks,
                                 String dtype, long tokenCount, int contextSize, String sourceTokenTable,
                                 Long shuffleSeed, String skippedPositions, Map<String, HookStatistics> statistics,
                                 List<ShardEntry> shards, String createdAt, String spindleVersion) {

    public static final int FORMAT_VERSION = 1;
    public static final String FILE_NAME = "_manifest.json";
    public static final String SPINDLE_VERSION = "0.1.0";

    /** One hook column and its width. */
    public record HookSpec(String name, int d) {
    }

    /** One shard file (name relative to the cache directory) and its rows. */
    public record ShardEntry(String file, long rows) {
    }

    /** The committed shards found in a directory and their merged statistics (for resume and for the final manifest). */
    public record CommittedShards(List<ShardSummary> shards, List<String> hooks, int[] dims, DType dtype,
                                  Map<String, HookStatistics> statistics, long rows) {
    }

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(SerializationFeature.INDENT_OUTPUT)
            .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

    public ActivationManifest {
        hooks = List.copyOf(Objects.requireNonNull(hooks, "manifest needs hooks"));
        shards = List.copyOf(Objects.requireNonNull(shards, "manifest needs shards"));
        statistics = statistics == null ? Map.of() : new LinkedHashMap<>(statistics);
    }

    /**
     * A manifest for the shards {@link #listCommittedShards} found, taking hooks, widths, dtype,
     * token count and statistics from them.
     */
    public static ActivationManifest of(String modelId, String modelChecksum, int contextSize, String sourceTokenTable,
                                        Long shuffleSeed, String skippedPositions, CommittedShards committed) {
        List<HookSpec> hooks = new ArrayList<>();
        for (int h = 0; h < committed.hooks().size(); h++) {
            hooks.add(new HookSpec(committed.hooks().get(h), committed.dims()[h]));
        }
        List<ShardEntry> shards = new ArrayList<>();
        for (ShardSummary shard : committed.shards()) {
            shards.add(new ShardEntry(shard.file(), shard.rows()));
        }
        return new ActivationManifest(FORMAT_VERSION, modelId, modelChecksum, hooks, committed.dtype().userName(),
                committed.rows(), contextSize, sourceTokenTable, shuffleSeed, skippedPositions, committed.statistics(),
                shards, Instant.now().toString(), SPINDLE_VERSION);
    }

    @JsonIgnore
    public List<String> hookNames() {
        return hooks.stream().map(HookSpec::name).toList();
    }

    /** Width of {@code hook}, or -1 if the cache does not have it. */
    public int dim(String hook) {
        for (HookSpec spec : hooks) {
            if (spec.name().equals(hook)) {
                return spec.d();
            }
        }
        return -1;
    }

    @JsonIgnore
    public DType storageType() {
        return PackedVectors.checkFloat(DType.parse(dtype));
    }

    /** Writes {@code dir/_manifest.json} atomically (temp + rename), replacing an older one. Call it last. */
    public void write(FileSystem fs, Path dir) {
        Path target = new Path(dir, FILE_NAME);
        try {
            FileSystem writable = fs instanceof org.apache.hadoop.fs.LocalFileSystem local ? local.getRawFileSystem() : fs;
            TableFiles.writeAtomically(writable, target, JSON.writeValueAsBytes(this));
        } catch (IOException e) {
            throw TableFiles.io("writing", target, e);
        }
    }

    /** Reads and checks {@code dir/_manifest.json}; every failure is one line naming the directory and the fix. */
    public static ActivationManifest read(Configuration conf, Path dir) {
        Path file = new Path(dir, FILE_NAME);
        byte[] bytes;
        try {
            FileSystem fs = dir.getFileSystem(conf);
            FileStatus status;
            try {
                status = fs.getFileStatus(dir);
            } catch (FileNotFoundException e) {
                throw new IllegalArgumentException("activation cache directory " + dir + " does not exist; check the path or run `spindle cache` first");
            }
            if (!status.isDirectory()) {
                throw new IllegalArgumentException(dir + " is a file, not an activation cache directory");
            }
            if (!fs.exists(file)) {
                throw new IllegalStateException(dir + " is not a complete activation cache (no " + FILE_NAME
                        + "): run or resume `spindle cache`");
            }
            try (FSDataInputStream in = fs.open(file)) {
                bytes = in.readAllBytes();
            }
        } catch (IOException e) {
            throw TableFiles.io("reading", file, e);
        }
        ActivationManifest manifest;
        try {
            manifest = JSON.readValue(bytes, ActivationManifest.class);
        } catch (IOException | RuntimeException e) {
            throw new IllegalStateException(file + " is malformed (" + TableFiles.oneLine(e)
                    + "); restore it or rebuild it by resuming `spindle cache`", e);
        }
        manifest.validate(file);
        return manifest;
    }

    private void validate(Path file) {
        if (formatVersion > FORMAT_VERSION || formatVersion < 1) {
            throw new IllegalStateException(file + " has format version " + formatVersion + "; this spindle reads version "
                    + FORMAT_VERSION + " (upgrade spindle or re-create the cache)");
        }
        if (hooks.isEmpty() || dtype == null) {
            throw new IllegalStateException(file + " is malformed (no hooks or no dtype); rebuild it by resuming `spindle cache`");
        }
        try {
            storageType();
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException(file + ": " + e.getMessage(), e);
        }
        long total = 0;
        for (ShardEntry shard : shards) {
            if (!isRelativeName(shard.file()) || shard.rows() < 0) {
                throw new IllegalStateException(file + " lists an invalid shard " + shard + "; rebuild it by resuming `spindle cache`");
            }
            total += shard.rows();
        }
        if (total != tokenCount) {
            throw new IllegalStateException(file + " says " + tokenCount + " tokens but its shards hold " + total
                    + "; rebuild it by resuming `spindle cache`");
        }
        for (HookSpec spec : hooks) {
            if (spec.d() <= 0) {
                throw new IllegalStateException(file + ": hook " + spec.name() + " has width " + spec.d());
            }
        }
    }

    /** A shard name inside the cache directory: plain, or under subdirectories (accumulated caches), never above it. */
    private static boolean isRelativeName(String name) {
        if (name == null || name.isEmpty() || name.startsWith("/") || name.contains("\\") || name.contains(":")) {
            return false;
        }
        for (String segment : name.split("/", -1)) {
            if (segment.isEmpty() || segment.equals(".") || segment.equals("..")) {
                return false;
            }
        }
        return true;
    }

    /**
     * One cache over several complete caches of the same model, hooks and settings, each in a
     * subdirectory ({@code subdirectories[i]} holds {@code parts[i]}): their shards in order, their
     * statistics merged. An incremental pipeline run adds a corpus file's cache this way.
     */
    public static ActivationManifest accumulated(List<String> subdirectories, List<ActivationManifest> parts,
                                                 String sourceTokenTable) {
        if (parts.isEmpty() || parts.size() != subdirectories.size()) {
            throw new IllegalArgumentException("an accumulated cache needs one subdirectory per part");
        }
        ActivationManifest first = parts.get(0);
        Map<String, HookStatistics> statistics = new LinkedHashMap<>();
        first.statistics().forEach((hook, stats) -> statistics.put(hook, new HookStatistics(stats.dim())));
        List<ShardEntry> shards = new ArrayList<>();
        long rows = 0;
        for (int i = 0; i < parts.size(); i++) {
            ActivationManifest part = parts.get(i);
            String where = subdirectories.get(i);
            if (!Objects.equals(part.modelChecksum(), first.modelChecksum()) || !part.hooks().equals(first.hooks())
                    || !part.dtype().equals(first.dtype()) || part.contextSize() != first.contextSize()
                    || !Objects.equals(part.shuffleSeed(), first.shuffleSeed())
                    || !Objects.equals(part.skippedPositions(), first.skippedPositions())) {
                throw new IllegalStateException("the cache in " + where + " was made with another model, hooks, dtype or "
                        + "settings than " + subdirectories.get(0) + "; an accumulated cache holds one configuration: "
                        + "start a new output root for the new settings");
            }
            for (ShardEntry shard : part.shards()) {
                shards.add(new ShardEntry(where + "/" + shard.file(), shard.rows()));
            }
            for (Map.Entry<String, HookStatistics> e : part.statistics().entrySet()) {
                HookStatistics merged = statistics.get(e.getKey());
                if (merged != null) {
                    merged.merge(e.getValue());
                }
            }
            rows += part.tokenCount();
        }
        return new ActivationManifest(FORMAT_VERSION, first.modelId(), first.modelChecksum(), first.hooks(), first.dtype(),
                rows, first.contextSize(), sourceTokenTable, first.shuffleSeed(), first.skippedPositions(), statistics,
                shards, Instant.now().toString(), SPINDLE_VERSION);
    }

    /**
     * The committed shards in {@code dir} (non-hidden {@code *.parquet} files, by name) with their
     * summaries, read from the stats sidecars, or from the shard footers where a sidecar is missing,
     * and their merged statistics. Temp files of unfinished attempts are ignored. Fails if shards
     * disagree on hooks, widths or dtype.
     */
    public static CommittedShards listCommittedShards(Configuration conf, Path dir) {
        List<ShardSummary> summaries = new ArrayList<>();
        try {
            FileSystem fs = dir.getFileSystem(conf);
            if (!fs.exists(dir)) {
                return new CommittedShards(List.of(), List.of(), new int[0], DType.BF16, Map.of(), 0);
            }
            FileStatus[] files = fs.listStatus(dir);
            Arrays.sort(files, Comparator.comparing(s -> s.getPath().getName()));
            for (FileStatus status : files) {
                String name = status.getPath().getName();
                if (!status.isFile() || TableFiles.isHidden(name) || !name.endsWith(".parquet")) {
                    continue;
                }
                Path sidecar = new Path(dir, ActivationShardWriter.statsFileName(name));
                ShardSummary summary = null;
                if (fs.exists(sidecar)) {
                    try (FSDataInputStream in = fs.open(sidecar)) {
                        summary = ShardSummary.fromJson(new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8), sidecar.toString());
                    } catch (IllegalStateException e) {
                        summary = null; // a damaged sidecar is only a cache of the footer
                    }
                }
                if (summary == null || !name.equals(summary.file())) {
                    summary = ActivationShardWriter.readFooterSummary(conf, status.getPath());
                }
                summaries.add(summary.withCommitted(true));
            }
        } catch (IOException e) {
            throw TableFiles.io("listing activation shards in", dir, e);
        }
        if (summaries.isEmpty()) {
            return new CommittedShards(List.of(), List.of(), new int[0], DType.BF16, Map.of(), 0);
        }
        ShardSummary first = summaries.get(0);
        Map<String, HookStatistics> merged = new LinkedHashMap<>();
        for (String hook : first.hooks()) {
            merged.put(hook, new HookStatistics(first.statistics().get(hook).dim()));
        }
        long rows = 0;
        for (ShardSummary shard : summaries) {
            if (!shard.hooks().equals(first.hooks()) || !Arrays.equals(shard.dims(), first.dims()) || !shard.dtype().equals(first.dtype())) {
                throw new IllegalStateException(new Path(dir, shard.file()) + " has hooks " + shard.hooks() + " widths "
                        + Arrays.toString(shard.dims()) + " dtype " + shard.dtype() + " but " + first.file() + " has "
                        + first.hooks() + " " + Arrays.toString(first.dims()) + " " + first.dtype()
                        + "; one directory holds one cache: remove the foreign shards or use a new directory");
            }
            for (String hook : first.hooks()) {
                merged.get(hook).merge(shard.statistics().get(hook));
            }
            rows += shard.rows();
        }
        return new CommittedShards(List.copyOf(summaries), first.hooks(), first.dims(), DType.parse(first.dtype()), merged, rows);
    }

    /**
     * Deletes what failed or losing task attempts left in {@code dir}: hidden temp files and stats
     * sidecars without a shard. Only call it when no task writes to {@code dir} any more (the driver,
     * after the job): a running attempt's temp file would be deleted under it. Returns the files deleted.
     */
    public static int deleteLeftovers(Configuration conf, Path dir) {
        int deleted = 0;
        try {
            FileSystem fs = dir.getFileSystem(conf);
            for (FileStatus status : fs.listStatus(dir)) {
                String name = status.getPath().getName();
                boolean temp = name.startsWith(".") && name.endsWith(".tmp");
                boolean orphanSidecar = name.startsWith("_") && name.endsWith(".parquet.stats.json")
                        && !fs.exists(new Path(dir, name.substring(1, name.length() - ".stats.json".length())));
                if (status.isFile() && (temp || orphanSidecar) && fs.delete(status.getPath(), false)) {
                    deleted++;
                }
            }
        } catch (IOException e) {
            throw TableFiles.io("cleaning up", dir, e);
        }
        return deleted;
    }
}
