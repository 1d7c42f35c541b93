package activations.table;

import activations.safetensors.DType;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.parquet.hadoop.ParquetFileReader;
import org.apache.parquet.hadoop.ParquetFileWriter;
import org.apache.parquet.hadoop.ParquetWriter;
import org.apache.parquet.hadoop.api.WriteSupport;
import org.apache.parquet.hadoop.metadata.CompressionCodecName;
import org.apache.parquet.hadoop.util.HadoopInputFile;
import org.apache.parquet.io.OutputFile;
import org.apache.parquet.io.api.Binary;
import org.apache.parquet.io.api.RecordConsumer;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.PrimitiveType.PrimitiveTypeName;
import org.apache.parquet.schema.Type;
import org.apache.parquet.schema.Types;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;

/**
 * Writes one shard of the activation table, the pipeline's activation cache.
 *
 * <h2>Table layout</h2>
 * A cache is a directory of Parquet shard files ({@code part-00000.parquet}, ...) plus
 * {@code _manifest.json} ({@link ActivationManifest}), written last, whose presence marks the
 * cache complete. Each shard has one row per token:
 * <ul>
 *   <li>{@code seq_id} INT64: the sequence (context window) the token belongs to;</li>
 *   <li>{@code pos} INT32: the token's position in that sequence;</li>
 *   <li>{@code token_id} INT32: the token id (-1 for imported activations);</li>
 *   <li>one BINARY column per hook, named exactly by the hook ({@code blocks.0.hook_resid_post}),
 *       holding that token's activation vector packed little-endian in the cache dtype
 *       (bfloat16 by default, float16 or float32; {@link PackedVectors}).</li>
 * </ul>
 * A column per hook lets a trainer read only the hooks it needs (Parquet projection), and packed
 * binary is several times faster to write and scan than {@code array<float>}. Hook columns carry
 * no min/max statistics or dictionaries (meaningless for vectors, and costly).
 * Next to each shard, {@code _<shard>.stats.json} holds its {@link ShardSummary} (row count and
 * per-hook {@link HookStatistics}); the same summary is in the shard's Parquet footer. Files
 * whose names start with {@code _} or {@code .} are not data (Spark and Parquet readers skip them).
 *
 * <h2>Exactly-once commit</h2>
 * Rows go to a hidden temp file in the shard's directory. {@link #commit()} writes the stats
 * sidecar (atomically, before the shard, so a committed shard always has stats) and then moves the
 * temp file to the shard's name only if no file has that name yet. When a retried or speculative
 * attempt of the same task already committed the shard, this attempt's file is deleted and the
 * summary says {@code committed=false}: rows are never duplicated.
 */
public final class ActivationShardWriter implements AutoCloseable {

    /** Storage and layout knobs; {@link #DEFAULT} suits caches of any size. */
    public record Options(CompressionCodecName codec, long rowGroupBytes, int pageBytes) {
        /**
         * Uncompressed: activation bits are close to random (snappy saves ~5-15% on bf16 at a cost of
         * write and read speed; see ActivationTableBenchmark), 64 MB row groups keep a task's write
         * buffer and a reader's projected row group small.
         */
        public static final Options DEFAULT = new Options(CompressionCodecName.UNCOMPRESSED, 64L << 20, 1 << 20);

        public Options {
            if (rowGroupBytes <= 0 || pageBytes <= 0) {
                throw new IllegalArgumentException("row group and page sizes must be positive");
            }
        }

        public Options withCodec(CompressionCodecName value) {
            return new Options(value, rowGroupBytes, pageBytes);
        }

        public Options withRowGroupBytes(long value) {
            return new Options(codec, value, Math.min(pageBytes, (int) Math.min(Integer.MAX_VALUE, value)));
        }
    }

    public static final String SEQ_ID = "seq_id";
    public static final String POS = "pos";
    public static final String TOKEN_ID = "token_id";

    private final FileSystem fs;
    private final Path finalPath;
    private final Path tempPath;
    private final List<String> hooks;
    private final int[] dims;
    private final DType dtype;
    private final String attempt = UUID.randomUUID().toString();
    private final HookStatistics[] statistics;
    private final byte[][] packed;
    private final float[] scratch;
    private final ParquetWriter<Batch> parquet;
    private final Batch batch;
    private long rows;
    private boolean finished;

    /** The standard file name of shard {@code index}. */
    public static String shardFileName(int index) {
        return String.format(Locale.ROOT, "part-%05d.parquet", index);
    }

    /** Where the stats sidecar of {@code shard} lives. */
    public static Path statsPath(Path shard) {
        return new Path(shard.getParent(), statsFileName(shard.getName()));
    }

    static String statsFileName(String shardName) {
        return "_" + shardName + ".stats.json";
    }

    public static ActivationShardWriter open(Configuration conf, Path finalPath, List<String> hooks, int[] dims, DType dtype) {
        return open(conf, finalPath, hooks, dims, dtype, Options.DEFAULT);
    }

    public static ActivationShardWriter open(Configuration conf, Path finalPath, List<String> hooks, int[] dims, DType dtype, Options options) {
        validateLayout(finalPath, hooks, dims, dtype);
        try {
            return new ActivationShardWriter(conf, finalPath, hooks, dims, dtype, options);
        } catch (IOException e) {
            throw TableFiles.io("opening activation shard", finalPath, e);
        }
    }

    private static void validateLayout(Path finalPath, List<String> hooks, int[] dims, DType dtype) {
        PackedVectors.checkFloat(dtype);
        if (TableFiles.isHidden(finalPath.getName()) || !finalPath.getName().endsWith(".parquet")) {
            throw new IllegalArgumentException("shard file name '" + finalPath.getName()
                    + "' must end in .parquet and not start with '_' or '.' (readers skip those); use shardFileName(i)");
        }
        if (hooks.isEmpty() || hooks.size() != dims.length) {
            throw new IllegalArgumentException("need at least one hook and one width per hook, got "
                    + hooks.size() + " hooks and " + dims.length + " widths");
        }
        var seen = new HashSet<String>();
        for (int h = 0; h < hooks.size(); h++) {
            String hook = hooks.get(h);
            if (!seen.add(hook)) {
                throw new IllegalArgumentException("hook " + hook + " is listed twice");
            }
            if (hook.equals(SEQ_ID) || hook.equals(POS) || hook.equals(TOKEN_ID)) {
                throw new IllegalArgumentException("a hook cannot be named " + hook + ": that column holds row metadata");
            }
            if (dims[h] <= 0) {
                throw new IllegalArgumentException("hook " + hook + " has width " + dims[h] + "; widths must be positive");
            }
        }
    }

    private ActivationShardWriter(Configuration conf, Path finalPath, List<String> hooks, int[] dims, DType dtype, Options options) throws IOException {
        this.fs = TableFiles.writableFileSystem(finalPath, conf);
        this.finalPath = fs.makeQualified(finalPath);
        this.tempPath = TableFiles.tempSibling(this.finalPath);
        this.hooks = List.copyOf(hooks);
        this.dims = dims.clone();
        this.dtype = dtype;
        this.statistics = new HookStatistics[dims.length];
        this.packed = new byte[dims.length][];
        int widest = 0;
        for (int h = 0; h < dims.length; h++) {
            statistics[h] = new HookStatistics(dims[h]);
            packed[h] = new byte[0];
            widest = Math.max(widest, dims[h]);
        }
        this.scratch = new float[widest];
        this.batch = new Batch();
        this.parquet = new Builder(TableFiles.outputFile(fs, tempPath), new RowWriteSupport(schema(this.hooks), batch, this))
                .withConf(conf)
                .withWriteMode(ParquetFileWriter.Mode.CREATE)
                .withCompressionCodec(options.codec())
                .withRowGroupSize(options.rowGroupBytes())
                .withPageSize(options.pageBytes())
                // Vectors get neither dictionaries nor min/max statistics; the metadata columns keep
                // both (seq_id ranges per row group are useful, token ids compress well).
                .withDictionaryEncoding(false)
                .withStatisticsEnabled(false)
                .withSizeStatisticsEnabled(false)
                .withDictionaryEncoding(SEQ_ID, true)
                .withDictionaryEncoding(POS, true)
                .withDictionaryEncoding(TOKEN_ID, true)
                .withStatisticsEnabled(SEQ_ID, true)
                .withStatisticsEnabled(POS, true)
                .withStatisticsEnabled(TOKEN_ID, true)
                .withPageWriteChecksumEnabled(true)
                // Rows are kilobytes wide: check the buffered size often so row groups and pages end near their targets.
                .withMinRowCountForPageSizeCheck(16)
                .withMaxRowCountForPageSizeCheck(1024)
                .build();
    }

    /** The Parquet schema of a cache with these hooks (in this order). */
    public static MessageType schema(List<String> hooks) {
        List<Type> fields = new ArrayList<>();
        fields.add(Types.required(PrimitiveTypeName.INT64).named(SEQ_ID));
        fields.add(Types.required(PrimitiveTypeName.INT32).named(POS));
        fields.add(Types.required(PrimitiveTypeName.INT32).named(TOKEN_ID));
        for (String hook : hooks) {
            fields.add(Types.required(PrimitiveTypeName.BINARY).named(hook));
        }
        return new MessageType("activations", fields);
    }

    public Path path() {
        return finalPath;
    }

    public long rows() {
        return rows;
    }

    /**
     * Appends {@code rows} tokens: {@code values[h]} holds {@code rows x dims[h]} floats, row-major.
     * A NaN or infinite value (also one that overflows float16) aborts the shard, deleting its
     * temp file, and fails with one line naming the hook, seq_id and pos.
     */
    public void writeRows(long[] seqIds, int[] positions, int[] tokenIds, float[][] values, int rows) {
        checkOpen();
        checkBatch(seqIds, positions, tokenIds, values, rows);
        for (int h = 0; h < dims.length; h++) {
            int rowBytes = dims[h] * dtype.bytes;
            if (packed[h].length < rows * rowBytes) {
                packed[h] = new byte[Math.max(rows * rowBytes, packed[h].length * 3 / 2)];
            }
            // Statistics (and the finiteness check) see the values as stored, rounding included.
            for (int r = 0; r < rows; r++) {
                PackedVectors.encode(values[h], r * dims[h], dims[h], dtype, packed[h], r * rowBytes, scratch);
                double squares = statistics[h].add(scratch, 0);
                if (!Double.isFinite(squares)) {
                    abort();
                    throw nonFinite(h, scratch, 0, values[h], r, seqIds[r], positions[r]);
                }
            }
        }
        batch.seqIds = seqIds;
        batch.positions = positions;
        batch.tokenIds = tokenIds;
        try {
            for (int r = 0; r < rows; r++) {
                batch.row = r;
                parquet.write(batch);
            }
        } catch (IOException | RuntimeException e) {
            abort();
            throw new IllegalStateException("writing activation shard " + finalPath + " failed: " + TableFiles.oneLine(e), e);
        }
        this.rows += rows;
    }

    private IllegalArgumentException nonFinite(int h, float[] stored, int offset, float[] input, int row, long seqId, int pos) {
        String hook = hooks.get(h);
        for (int j = 0; j < dims[h]; j++) {
            float value = stored[offset + j];
            if (Float.isFinite(value)) {
                continue;
            }
            float original = input[row * dims[h] + j];
            if (Float.isFinite(original)) {
                return new IllegalArgumentException("activation " + original + " at seq " + seqId + " pos " + pos + " in " + hook
                        + " (dimension " + j + ") overflows " + dtype.userName() + "; store the cache as bfloat16 or float32");
            }
            return new IllegalArgumentException((Float.isNaN(original) ? "NaN" : "infinite") + " activation at seq " + seqId
                    + " pos " + pos + " in " + hook + " (dimension " + j + "); the shard was not written: check the model"
                    + " weights and its numeric precision");
        }
        return new IllegalArgumentException("non-finite activation at seq " + seqId + " pos " + pos + " in " + hook);
    }

    private void checkBatch(long[] seqIds, int[] positions, int[] tokenIds, float[][] values, int rows) {
        if (rows < 0 || seqIds.length < rows || positions.length < rows || tokenIds.length < rows) {
            throw new IllegalArgumentException("writeRows: " + rows + " rows but seqIds/positions/tokenIds have "
                    + seqIds.length + "/" + positions.length + "/" + tokenIds.length + " entries");
        }
        if (values.length != dims.length) {
            throw new IllegalArgumentException("writeRows: " + values.length + " value arrays for " + dims.length + " hooks " + hooks);
        }
        for (int h = 0; h < dims.length; h++) {
            if (values[h].length < (long) rows * dims[h]) {
                throw new IllegalArgumentException("writeRows: hook " + hooks.get(h) + " has " + values[h].length
                        + " values, fewer than " + rows + " rows x " + dims[h]);
            }
        }
    }

    /**
     * Finishes the shard and publishes it exactly once (see the class comment). Returns the
     * summary of the shard now on disk: this attempt's ({@code committed=true}) or, when another
     * attempt won, the winner's ({@code committed=false}).
     */
    public ShardSummary commit() {
        checkOpen();
        finished = true;
        try {
            parquet.close();
        } catch (IOException | RuntimeException e) {
            TableFiles.deleteQuietly(fs, tempPath);
            throw new IllegalStateException("finishing activation shard " + finalPath + " failed: " + TableFiles.oneLine(e), e);
        }
        try {
            if (fs.exists(finalPath)) {
                TableFiles.deleteQuietly(fs, tempPath);
                return lostTo(null);
            }
            ShardSummary mine = summary(true);
            byte[] sidecar = mine.toJson().getBytes(StandardCharsets.UTF_8);
            TableFiles.writeAtomically(fs, statsPath(finalPath), sidecar);
            if (TableFiles.commitIfAbsent(fs, tempPath, finalPath)) {
                return mine;
            }
            return lostTo(mine);
        } catch (IOException e) {
            TableFiles.deleteQuietly(fs, tempPath);
            throw TableFiles.io("committing activation shard", finalPath, e);
        }
    }

    /**
     * Another attempt's file is the shard. Its footer has its summary; if this attempt's sidecar
     * may have replaced the winner's in between, put the winner's back.
     */
    private ShardSummary lostTo(ShardSummary mine) throws IOException {
        ShardSummary winner = readFooterSummary(fs.getConf(), finalPath);
        if (mine != null) {
            TableFiles.writeAtomically(fs, statsPath(finalPath), winner.toJson().getBytes(StandardCharsets.UTF_8));
        }
        return winner.withCommitted(false);
    }

    /** The summary stored in a committed shard's footer. */
    static ShardSummary readFooterSummary(Configuration conf, Path shard) {
        try (ParquetFileReader reader = ParquetFileReader.open(HadoopInputFile.fromPath(shard, conf))) {
            String json = reader.getFooter().getFileMetaData().getKeyValueMetaData().get(ShardSummary.FOOTER_KEY);
            if (json == null) {
                throw new IllegalStateException(shard + " is not an activation shard (no " + ShardSummary.FOOTER_KEY
                        + " in its footer); remove it or re-create the cache");
            }
            return ShardSummary.fromJson(json, shard.toString());
        } catch (IOException | RuntimeException e) {
            if (e instanceof IllegalStateException ise && ise.getMessage().startsWith(shard.toString())) {
                throw ise;
            }
            throw new IllegalStateException(shard + ": corrupt or truncated Parquet file (" + TableFiles.oneLine(e)
                    + "); delete it and resume `spindle cache` to rewrite it", e);
        }
    }

    ShardSummary summary(boolean committed) {
        Map<String, HookStatistics> stats = new LinkedHashMap<>();
        for (int h = 0; h < hooks.size(); h++) {
            stats.put(hooks.get(h), statistics[h].copy());
        }
        return new ShardSummary(finalPath.getName(), rows, dtype.userName(), hooks, dims, stats, attempt, committed);
    }

    /** Discards everything written; the shard's final path is never touched. Safe to call twice. */
    public void abort() {
        if (!finished) {
            finished = true;
            try {
                parquet.close();
            } catch (IOException | RuntimeException ignored) {
                // the file is being thrown away
            }
        }
        TableFiles.deleteQuietly(fs, tempPath);
    }

    /** Aborts unless committed: an exception between open and commit leaves nothing behind. */
    @Override
    public void close() {
        if (!finished) {
            abort();
        }
    }

    private void checkOpen() {
        if (finished) {
            throw new IllegalStateException("activation shard " + finalPath + " is already committed or aborted");
        }
    }

    /** The current batch; {@link RowWriteSupport} writes its row {@code row}. One instance, reused. */
    private static final class Batch {
        long[] seqIds;
        int[] positions;
        int[] tokenIds;
        int row;
    }

    private static final class Builder extends ParquetWriter.Builder<Batch, Builder> {
        private final RowWriteSupport writeSupport;

        Builder(OutputFile file, RowWriteSupport writeSupport) {
            super(file);
            this.writeSupport = writeSupport;
        }

        @Override
        protected Builder self() {
            return this;
        }

        @Override
        @SuppressWarnings("deprecation") // still abstract in parquet 1.17: the Hadoop-Configuration variant must be implemented
        protected WriteSupport<Batch> getWriteSupport(Configuration conf) {
            return writeSupport;
        }
    }

    /** Writes the packed columns straight to Parquet's record consumer; no row objects. */
    private static final class RowWriteSupport extends WriteSupport<Batch> {
        private final MessageType schema;
        private final Batch batch;
        private final ActivationShardWriter owner;
        private RecordConsumer consumer;

        RowWriteSupport(MessageType schema, Batch batch, ActivationShardWriter owner) {
            this.schema = schema;
            this.batch = batch;
            this.owner = owner;
        }

        @Override
        @SuppressWarnings("deprecation") // still abstract in parquet 1.17
        public WriteContext init(Configuration configuration) {
            Map<String, String> metadata = new LinkedHashMap<>();
            metadata.put("spindle.dtype", owner.dtype.userName());
            return new WriteContext(schema, metadata);
        }

        @Override
        public void prepareForWrite(RecordConsumer recordConsumer) {
            this.consumer = recordConsumer;
        }

        @Override
        public void write(Batch record) {
            int r = record.row;
            consumer.startMessage();
            consumer.startField(SEQ_ID, 0);
            consumer.addLong(batch.seqIds[r]);
            consumer.endField(SEQ_ID, 0);
            consumer.startField(POS, 1);
            consumer.addInteger(batch.positions[r]);
            consumer.endField(POS, 1);
            consumer.startField(TOKEN_ID, 2);
            consumer.addInteger(batch.tokenIds[r]);
            consumer.endField(TOKEN_ID, 2);
            for (int h = 0; h < owner.dims.length; h++) {
                String hook = owner.hooks.get(h);
                int rowBytes = owner.dims[h] * owner.dtype.bytes;
                consumer.startField(hook, 3 + h);
                // "Reused": the batch buffer is overwritten by the next writeRows, so anything that
                // keeps a value (it should not: no stats, no dictionary) must copy it.
                consumer.addBinary(Binary.fromReusedByteArray(owner.packed[h], r * rowBytes, rowBytes));
                consumer.endField(hook, 3 + h);
            }
            consumer.endMessage();
        }

        @Override
        public FinalizedWriteContext finalizeWrite() {
            Map<String, String> metadata = new LinkedHashMap<>();
            metadata.put(ShardSummary.FOOTER_KEY, owner.summary(true).toJson());
            return new FinalizedWriteContext(metadata);
        }
    }
}
