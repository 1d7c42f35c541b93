package activations.table;

import activations.safetensors.DType;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.parquet.HadoopReadOptions;
import org.apache.parquet.ParquetReadOptions;
import org.apache.parquet.column.ColumnDescriptor;
import org.apache.parquet.column.ColumnReader;
import org.apache.parquet.column.impl.ColumnReadStoreImpl;
import org.apache.parquet.column.page.PageReadStore;
import org.apache.parquet.hadoop.ParquetFileReader;
import org.apache.parquet.hadoop.metadata.BlockMetaData;
import org.apache.parquet.hadoop.util.HadoopInputFile;
import org.apache.parquet.io.api.Binary;
import org.apache.parquet.io.api.Converter;
import org.apache.parquet.io.api.GroupConverter;
import org.apache.parquet.io.api.PrimitiveConverter;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.PrimitiveType;
import org.apache.parquet.schema.Type;

import java.io.IOException;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;

/**
 * Streams an activation cache (layout in {@link ActivationShardWriter}) as an
 * {@link ActivationSource}: the shards in manifest order, row group by row group, reading only
 * the requested hook columns (Parquet projection) and decoding straight into the caller's buffers.
 * <p>
 * {@link Options#replica(int, int)} gives data-parallel replica {@code i} of {@code n} the i-th of
 * n contiguous, near-equal row ranges (sizes differ by at most one row): disjoint, together
 * covering the cache, each read without touching the others' row groups. {@link #skip} moves by
 * row-group and file metadata, so resuming deep into a cache decodes nothing it skips.
 */
public final class ActivationTableReader implements ActivationSource {

    /**
     * @param replica     which of {@code replicas} disjoint row ranges to read
     * @param rowMetadata also read seq_id, pos and token_id (for {@link #read(FloatBuffer[], int, RowMetadata)})
     */
    public record Options(int replica, int replicas, boolean rowMetadata) {
        public static final Options DEFAULT = new Options(0, 1, false);

        public Options {
            if (replicas < 1 || replica < 0 || replica >= replicas) {
                throw new IllegalArgumentException("replica must be in [0, " + replicas + "), got " + replica
                        + " (and there must be at least one replica)");
            }
        }

        public static Options replica(int replica, int replicas) {
            return new Options(replica, replicas, false);
        }

        public Options withRowMetadata() {
            return new Options(replica, replicas, true);
        }
    }

    /** Caller-owned arrays receiving each row's seq_id, pos and token_id, from {@code offset} on. */
    public static final class RowMetadata {
        public final long[] seqIds;
        public final int[] positions;
        public final int[] tokenIds;
        public int offset;

        public RowMetadata(int capacity) {
            this.seqIds = new long[capacity];
            this.positions = new int[capacity];
            this.tokenIds = new int[capacity];
        }
    }

    private final Configuration conf;
    private final Path dir;
    private final ActivationManifest manifest;
    private final List<String> hooks;
    private final int[] dims;
    private final int[] rowBytes;
    private final DType dtype;
    private final boolean rowMetadata;
    private final long[] shardStart;
    private final long begin;
    private final long end;
    private final float[] scratch;
    private final ParquetReadOptions readOptions;

    private long next;
    private long cursor = -1; // global row the column readers stand at; -1 when none is loaded

    private int fileIndex = -1;
    private Path file;
    private ParquetFileReader fileReader;
    private MessageType projection;
    private long[] blockStart;
    private int blockIndex = -1;
    private ColumnReader[] hookReaders;
    private ColumnReader seqReader;
    private ColumnReader posReader;
    private ColumnReader tokenReader;

    public static ActivationTableReader open(Configuration conf, Path dir, List<String> hooks) {
        return open(conf, dir, hooks, Options.DEFAULT);
    }

    public static ActivationTableReader open(Configuration conf, Path dir, List<String> hooks, Options options) {
        return new ActivationTableReader(conf, dir, ActivationManifest.read(conf, dir), hooks, options);
    }

    private ActivationTableReader(Configuration conf, Path dir, ActivationManifest manifest, List<String> hooks, Options options) {
        this.conf = conf;
        this.dir = dir;
        this.manifest = manifest;
        if (hooks.isEmpty()) {
            throw new IllegalArgumentException("no hooks requested from " + dir + "; available hooks: " + manifest.hookNames());
        }
        if (new HashSet<>(hooks).size() != hooks.size()) {
            throw new IllegalArgumentException("hooks " + hooks + " list a hook twice");
        }
        this.hooks = List.copyOf(hooks);
        this.dtype = manifest.storageType();
        this.dims = new int[hooks.size()];
        this.rowBytes = new int[hooks.size()];
        int widest = 0;
        for (int h = 0; h < hooks.size(); h++) {
            dims[h] = manifest.dim(hooks.get(h));
            if (dims[h] < 0) {
                throw new IllegalArgumentException("hook " + hooks.get(h) + " is not in the activation cache " + dir
                        + "; available hooks: " + manifest.hookNames());
            }
            rowBytes[h] = dims[h] * dtype.bytes;
            widest = Math.max(widest, dims[h]);
        }
        this.scratch = new float[widest];
        this.rowMetadata = options.rowMetadata();
        List<ActivationManifest.ShardEntry> shards = manifest.shards();
        this.shardStart = new long[shards.size() + 1];
        for (int k = 0; k < shards.size(); k++) {
            shardStart[k + 1] = shardStart[k] + shards.get(k).rows();
        }
        long total = shardStart[shards.size()];
        this.begin = total * options.replica() / options.replicas();
        this.end = total * (options.replica() + 1) / options.replicas();
        this.next = begin;
        this.readOptions = HadoopReadOptions.builder(conf).usePageChecksumVerification(true).build();
    }

    public ActivationManifest manifest() {
        return manifest;
    }

    /** Rows this reader hands out in total (its replica's share of the cache). */
    @Override
    public long rowCount() {
        return end - begin;
    }

    @Override
    public List<String> hooks() {
        return hooks;
    }

    @Override
    public int[] dims() {
        return dims.clone();
    }

    @Override
    public long position() {
        return next - begin;
    }

    @Override
    public int read(FloatBuffer[] dst, int maxRows) {
        return read(dst, maxRows, null);
    }

    /**
     * Like {@link #read(FloatBuffer[], int)}, also storing each row's seq_id, pos and token_id in
     * {@code metadata} from its {@code offset} (advanced by the rows read). Needs
     * {@link Options#withRowMetadata()}.
     */
    public int read(FloatBuffer[] dst, int maxRows, RowMetadata metadata) {
        if (dst.length != hooks.size()) {
            throw new IllegalArgumentException("read needs one buffer per hook " + hooks + ", got " + dst.length);
        }
        if (metadata != null && !rowMetadata) {
            throw new IllegalStateException("row metadata was not requested: open the reader with Options.withRowMetadata()");
        }
        int done = 0;
        while (done < maxRows && next < end) {
            ensureLoaded();
            long blockEnd = shardStart[fileIndex] + blockStart[blockIndex + 1];
            int n = (int) Math.min(maxRows - done, Math.min(blockEnd, end) - next);
            for (int r = 0; r < n; r++) {
                for (int h = 0; h < hookReaders.length; h++) {
                    Binary value = value(hookReaders[h]);
                    if (value.length() != rowBytes[h]) {
                        throw new IllegalStateException(file + ": hook " + hooks.get(h) + " rows are " + value.length()
                                + " bytes but " + ActivationManifest.FILE_NAME + " says d=" + dims[h] + " " + dtype.userName()
                                + " (" + rowBytes[h] + " bytes); the manifest does not match the data: re-create the cache");
                    }
                    PackedVectors.decode(value.toByteBuffer(), dims[h], dtype, dst[h], scratch);
                }
                if (metadata != null) {
                    readMetadata(metadata);
                } else if (rowMetadata) {
                    skipMetadata();
                }
            }
            next += n;
            cursor = next;
            done += n;
        }
        return done;
    }

    private Binary value(ColumnReader reader) {
        try {
            Binary value = reader.getBinary();
            reader.consume();
            return value;
        } catch (RuntimeException e) {
            throw corrupt(e);
        }
    }

    private void readMetadata(RowMetadata metadata) {
        try {
            int i = metadata.offset++;
            metadata.seqIds[i] = seqReader.getLong();
            seqReader.consume();
            metadata.positions[i] = posReader.getInteger();
            posReader.consume();
            metadata.tokenIds[i] = tokenReader.getInteger();
            tokenReader.consume();
        } catch (ArrayIndexOutOfBoundsException e) {
            throw new IllegalArgumentException("row metadata arrays are full (capacity " + metadata.seqIds.length + ")");
        } catch (RuntimeException e) {
            throw corrupt(e);
        }
    }

    @Override
    public void skip(long rows) {
        if (rows < 0) {
            throw new IllegalArgumentException("cannot skip a negative number of rows: " + rows);
        }
        if (rows > end - next) {
            throw new IllegalStateException("cannot skip " + rows + " rows: the activations end after " + (end - next)
                    + "; resume against the same activation cache the run started on");
        }
        next += rows; // the next read positions the column readers (by metadata where possible)
    }

    /** Makes the column readers stand at row {@code next}: same row group if possible, else seek by metadata. */
    private void ensureLoaded() {
        if (cursor == next && blockIndex >= 0 && next < shardStart[fileIndex] + blockStart[blockIndex + 1]) {
            return;
        }
        // largest shard starting at or before next (an empty shard shares its start with the next one)
        int k = Arrays.binarySearch(shardStart, 0, shardStart.length - 1, next);
        if (k < 0) {
            k = -k - 2;
        } else {
            while (k + 1 < shardStart.length - 1 && shardStart[k + 1] == next) {
                k++;
            }
        }
        if (k != fileIndex) {
            openFile(k);
        }
        long inFile = next - shardStart[k];
        int b = Arrays.binarySearch(blockStart, 0, blockStart.length - 1, inFile);
        if (b < 0) {
            b = -b - 2;
        } else {
            while (b + 1 < blockStart.length - 1 && blockStart[b + 1] == inFile) {
                b++;
            }
        }
        long blockFirst = shardStart[k] + blockStart[b];
        if (b != blockIndex || cursor < blockFirst || cursor > next) {
            loadBlock(b);
            cursor = blockFirst;
        }
        skipValues(next - cursor);
        cursor = next;
    }

    private void skipValues(long count) {
        try {
            for (long i = 0; i < count; i++) {
                for (ColumnReader reader : hookReaders) {
                    reader.skip();
                    reader.consume();
                }
                if (rowMetadata) {
                    skipMetadata();
                }
            }
        } catch (RuntimeException e) {
            throw corrupt(e);
        }
    }

    private void skipMetadata() {
        try {
            seqReader.skip();
            seqReader.consume();
            posReader.skip();
            posReader.consume();
            tokenReader.skip();
            tokenReader.consume();
        } catch (RuntimeException e) {
            throw corrupt(e);
        }
    }

    private void openFile(int k) {
        closeFile();
        ActivationManifest.ShardEntry shard = manifest.shards().get(k);
        file = new Path(dir, shard.file());
        try {
            fileReader = ParquetFileReader.open(HadoopInputFile.fromPath(file, conf), readOptions);
        } catch (java.io.FileNotFoundException e) {
            throw new IllegalStateException(file + " is listed in " + ActivationManifest.FILE_NAME
                    + " but missing; the cache is damaged: re-create it (or restore the file)");
        } catch (IOException | RuntimeException e) {
            throw corrupt(e);
        }
        fileIndex = k;
        MessageType schema = fileReader.getFooter().getFileMetaData().getSchema();
        String storedDtype = fileReader.getFooter().getFileMetaData().getKeyValueMetaData().get("spindle.dtype");
        if (storedDtype != null && DType.parse(storedDtype) != dtype) {
            throw new IllegalStateException(file + " holds " + storedDtype + " but " + ActivationManifest.FILE_NAME
                    + " says " + dtype.userName() + "; the manifest does not match the data: re-create the cache");
        }
        List<Type> fields = new ArrayList<>();
        for (String hook : hooks) {
            fields.add(column(schema, hook, PrimitiveType.PrimitiveTypeName.BINARY));
        }
        if (rowMetadata) {
            fields.add(column(schema, ActivationShardWriter.SEQ_ID, PrimitiveType.PrimitiveTypeName.INT64));
            fields.add(column(schema, ActivationShardWriter.POS, PrimitiveType.PrimitiveTypeName.INT32));
            fields.add(column(schema, ActivationShardWriter.TOKEN_ID, PrimitiveType.PrimitiveTypeName.INT32));
        }
        projection = new MessageType(schema.getName(), fields);
        fileReader.setRequestedSchema(projection);
        List<BlockMetaData> blocks = fileReader.getRowGroups();
        blockStart = new long[blocks.size() + 1];
        for (int b = 0; b < blocks.size(); b++) {
            blockStart[b + 1] = blockStart[b] + blocks.get(b).getRowCount();
        }
        if (blockStart[blocks.size()] != shard.rows()) {
            throw new IllegalStateException(file + " has " + blockStart[blocks.size()] + " rows but "
                    + ActivationManifest.FILE_NAME + " lists " + shard.rows() + "; the manifest does not match the data: re-create the cache");
        }
        blockIndex = -1;
    }

    private Type column(MessageType schema, String name, PrimitiveType.PrimitiveTypeName type) {
        if (!schema.containsField(name)) {
            throw new IllegalStateException(file + " has no column " + name + " although " + ActivationManifest.FILE_NAME
                    + " lists it; the manifest does not match the data: re-create the cache");
        }
        Type field = schema.getType(name);
        if (!field.isPrimitive() || field.asPrimitiveType().getPrimitiveTypeName() != type) {
            throw new IllegalStateException(file + ": column " + name + " is " + field + ", expected " + type);
        }
        return field;
    }

    private void loadBlock(int b) {
        try {
            PageReadStore pages = fileReader.readRowGroup(b);
            ColumnReadStoreImpl store = new ColumnReadStoreImpl(pages, NoOpConverter.forSchema(projection), projection,
                    fileReader.getFooter().getFileMetaData().getCreatedBy());
            List<ColumnDescriptor> columns = projection.getColumns();
            hookReaders = new ColumnReader[hooks.size()];
            for (int h = 0; h < hooks.size(); h++) {
                hookReaders[h] = store.getColumnReader(columns.get(h));
            }
            if (rowMetadata) {
                seqReader = store.getColumnReader(columns.get(hooks.size()));
                posReader = store.getColumnReader(columns.get(hooks.size() + 1));
                tokenReader = store.getColumnReader(columns.get(hooks.size() + 2));
            }
        } catch (IOException | RuntimeException e) {
            throw corrupt(e);
        }
        blockIndex = b;
    }

    private IllegalStateException corrupt(Exception e) {
        return new IllegalStateException(file + ": corrupt or truncated Parquet file (" + TableFiles.oneLine(e)
                + "); delete it and resume `spindle cache` to rewrite it, or re-create the cache", e);
    }

    private void closeFile() {
        if (fileReader != null) {
            try {
                fileReader.close();
            } catch (IOException ignored) {
                // read-only: nothing to lose
            }
            fileReader = null;
        }
        fileIndex = -1;
        blockIndex = -1;
        cursor = -1;
    }

    @Override
    public void close() {
        closeFile();
    }

    /** Column readers need a converter tree, used only by record assembly, which this reader does not do. */
    private static final class NoOpConverter extends GroupConverter {
        private static final PrimitiveConverter PRIMITIVE = new PrimitiveConverter() {
        };
        private static final NoOpConverter ROOT = new NoOpConverter();

        static GroupConverter forSchema(MessageType schema) {
            return ROOT; // the schema is flat: every field is a primitive column
        }

        @Override
        public Converter getConverter(int fieldIndex) {
            return PRIMITIVE;
        }

        @Override
        public void start() {
        }

        @Override
        public void end() {
        }
    }
}
