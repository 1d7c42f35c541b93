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
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.FutureTask;

/**
 * Streams an activation cache (layout in {@link ActivationShardWriter}) as an
 * {@link ActivationSource}: the shards in manifest order, row group by row group, reading only
 * the requested hook columns (Parquet projection) and decoding straight into the caller's buffers.
 * <p>
 * {@link Options#replica(int, int)} gives data-parallel replica {@code i} of {@code n} the i-th of
 * n contiguous, near-equal row ranges (sizes differ by at most one row): disjoint, together
 * covering the cache, each read without touching the others' row groups. {@link #skip} moves by
 * row-group and file metadata, so resuming deep into a cache decodes nothing it skips.
 * <p>
 * While the caller decodes one row group, a background thread reads the next one (opening its
 * shard if it is in the next file), so reading and decoding overlap instead of alternating. That
 * is what keeps a remote filesystem close to a local one: on HDFS a row group costs a NameNode
 * lookup, a DataNode connection and a transfer whose checksums the client verifies, and without
 * read-ahead nothing is decoded meanwhile. On a real cluster that wait is network latency and
 * bandwidth, hidden the same way. It costs at most one more row group of the requested columns
 * in memory (row groups are 64 MB by default).
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

    private long next;
    private long cursor = -1; // global row the column readers stand at; -1 when none is loaded

    private int fileIndex = -1;
    private Path file; // the loaded shard's, for error messages
    private Shard shard; // the open shard whose row group blockIndex the column readers read
    private int blockIndex = -1;
    private ReadAhead pending; // the row group after the loaded one, being read in the background
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
        if (begin < end) {
            // Readers are opened to be read: the first row group's read starts now, overlapping
            // whatever the caller sets up before its first read (a skip right away discards it).
            pending = new ReadAhead(() -> fetch(begin, null));
        }
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
            long blockEnd = shardStart[fileIndex] + shard.blockStart[blockIndex + 1];
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
        if (cursor == next && blockIndex >= 0 && next < shardStart[fileIndex] + shard.blockStart[blockIndex + 1]) {
            return;
        }
        int k = shardOf(next);
        if (k == fileIndex) {
            int b = blockOf(shard.blockStart, next - shardStart[k]);
            if (b == blockIndex && cursor >= shardStart[k] + shard.blockStart[b] && cursor <= next) {
                skipValues(next - cursor); // forward within the loaded row group
                cursor = next;
                return;
            }
        }
        RowGroup group = takeReadAhead(k);
        if (group == null) {
            group = fetch(next, shard);
        }
        install(group);
        cursor = shardStart[fileIndex] + shard.blockStart[blockIndex];
        readAhead();
        skipValues(next - cursor);
        cursor = next;
    }

    /** The largest shard starting at or before global row {@code row} (an empty shard shares its start with the next one). */
    private int shardOf(long row) {
        int k = Arrays.binarySearch(shardStart, 0, shardStart.length - 1, row);
        if (k < 0) {
            return -k - 2;
        }
        while (k + 1 < shardStart.length - 1 && shardStart[k + 1] == row) {
            k++;
        }
        return k;
    }

    /** The row group holding row {@code inFile} of a shard, by the same rule as {@link #shardOf}. */
    private static int blockOf(long[] blockStart, long inFile) {
        int b = Arrays.binarySearch(blockStart, 0, blockStart.length - 1, inFile);
        if (b < 0) {
            return -b - 2;
        }
        while (b + 1 < blockStart.length - 1 && blockStart[b + 1] == inFile) {
            b++;
        }
        return b;
    }

    /**
     * Reads the row group holding global row {@code row} into memory, reusing {@code open} if that is
     * its shard. Runs on the caller's thread or the read-ahead thread: it uses only final fields and
     * {@code open}'s file reader, which the caller's thread does not touch while a read-ahead is pending.
     */
    private RowGroup fetch(long row, Shard open) {
        int k = shardOf(row);
        Shard target = open != null && open.index == k ? open : openShard(k);
        try {
            int b = blockOf(target.blockStart, row - shardStart[k]);
            return new RowGroup(target, b, target.reader.readRowGroup(b));
        } catch (IOException | RuntimeException e) {
            if (target != open) {
                target.close();
            }
            throw corrupt(target.file, e);
        }
    }

    /** Starts reading the row group after the loaded one in the background, if this replica reads any of it. */
    private void readAhead() {
        long following = shardStart[fileIndex] + shard.blockStart[blockIndex + 1];
        if (pending == null && following < end) {
            Shard open = shard;
            pending = new ReadAhead(() -> fetch(following, open));
        }
    }

    /**
     * The read-ahead row group if it is the one holding row {@code next} (in shard {@code k}), else
     * null after discarding it (after a skip, say). A read-ahead that failed is discarded too: the
     * caller's thread then reads the same row group again and gets the error, exactly as it would
     * have without read-ahead.
     */
    private RowGroup takeReadAhead(int k) {
        if (pending == null) {
            return null;
        }
        RowGroup group = pending.await();
        pending = null;
        if (group != null && group.shard.index == k && group.block == blockOf(group.shard.blockStart, next - shardStart[k])) {
            return group;
        }
        if (group != null && group.shard != shard) {
            group.shard.close();
        }
        return null;
    }

    /** Makes {@code group} the loaded row group, closing the previous shard if the group is in another. */
    private void install(RowGroup group) {
        if (group.shard != shard) {
            if (shard != null) {
                shard.close();
            }
            shard = group.shard;
            file = shard.file;
            fileIndex = shard.index;
        }
        blockIndex = -1;
        try {
            ColumnReadStoreImpl store = new ColumnReadStoreImpl(group.pages, NoOpConverter.forSchema(shard.projection),
                    shard.projection, shard.createdBy);
            List<ColumnDescriptor> columns = shard.projection.getColumns();
            hookReaders = new ColumnReader[hooks.size()];
            for (int h = 0; h < hooks.size(); h++) {
                hookReaders[h] = store.getColumnReader(columns.get(h));
            }
            if (rowMetadata) {
                seqReader = store.getColumnReader(columns.get(hooks.size()));
                posReader = store.getColumnReader(columns.get(hooks.size() + 1));
                tokenReader = store.getColumnReader(columns.get(hooks.size() + 2));
            }
        } catch (RuntimeException e) {
            throw corrupt(e);
        }
        blockIndex = group.block;
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

    /** Opens shard {@code k} projected to the requested columns and checks it against the manifest. */
    private Shard openShard(int k) {
        ActivationManifest.ShardEntry entry = manifest.shards().get(k);
        Path path = new Path(dir, entry.file());
        // Options, and with them the codec factory, per file: closing one shard must not release the
        // decompressors of the next one, whose row group may already be read ahead.
        ParquetReadOptions readOptions = HadoopReadOptions.builder(conf).usePageChecksumVerification(true).build();
        ParquetFileReader reader;
        try {
            reader = ParquetFileReader.open(HadoopInputFile.fromPath(path, conf), readOptions);
        } catch (java.io.FileNotFoundException e) {
            throw new IllegalStateException(path + " is listed in " + ActivationManifest.FILE_NAME
                    + " but missing; the cache is damaged: re-create it (or restore the file)");
        } catch (IOException | RuntimeException e) {
            throw corrupt(path, e);
        }
        try {
            MessageType schema = reader.getFooter().getFileMetaData().getSchema();
            String storedDtype = reader.getFooter().getFileMetaData().getKeyValueMetaData().get("spindle.dtype");
            if (storedDtype != null && DType.parse(storedDtype) != dtype) {
                throw new IllegalStateException(path + " holds " + storedDtype + " but " + ActivationManifest.FILE_NAME
                        + " says " + dtype.userName() + "; the manifest does not match the data: re-create the cache");
            }
            List<Type> fields = new ArrayList<>();
            for (String hook : hooks) {
                fields.add(column(path, schema, hook, PrimitiveType.PrimitiveTypeName.BINARY));
            }
            if (rowMetadata) {
                fields.add(column(path, schema, ActivationShardWriter.SEQ_ID, PrimitiveType.PrimitiveTypeName.INT64));
                fields.add(column(path, schema, ActivationShardWriter.POS, PrimitiveType.PrimitiveTypeName.INT32));
                fields.add(column(path, schema, ActivationShardWriter.TOKEN_ID, PrimitiveType.PrimitiveTypeName.INT32));
            }
            MessageType projection = new MessageType(schema.getName(), fields);
            reader.setRequestedSchema(projection);
            List<BlockMetaData> blocks = reader.getRowGroups();
            long[] blockStart = new long[blocks.size() + 1];
            for (int b = 0; b < blocks.size(); b++) {
                blockStart[b + 1] = blockStart[b] + blocks.get(b).getRowCount();
            }
            if (blockStart[blocks.size()] != entry.rows()) {
                throw new IllegalStateException(path + " has " + blockStart[blocks.size()] + " rows but "
                        + ActivationManifest.FILE_NAME + " lists " + entry.rows() + "; the manifest does not match the data: re-create the cache");
            }
            return new Shard(k, path, reader, projection, reader.getFooter().getFileMetaData().getCreatedBy(), blockStart);
        } catch (RuntimeException e) {
            closeQuietly(reader);
            throw e;
        }
    }

    private static Type column(Path file, MessageType schema, String name, PrimitiveType.PrimitiveTypeName type) {
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

    private IllegalStateException corrupt(Exception e) {
        return corrupt(file, e);
    }

    private static IllegalStateException corrupt(Path file, Exception e) {
        return new IllegalStateException(file + ": corrupt or truncated Parquet file (" + TableFiles.oneLine(e)
                + "); delete it and resume `spindle cache` to rewrite it, or re-create the cache", e);
    }

    @Override
    public void close() {
        if (pending != null) {
            RowGroup group = pending.await();
            pending = null;
            if (group != null && group.shard != shard) {
                group.shard.close();
            }
        }
        if (shard != null) {
            shard.close();
            shard = null;
        }
        fileIndex = -1;
        blockIndex = -1;
        cursor = -1;
    }

    private static void closeQuietly(ParquetFileReader reader) {
        try {
            reader.close();
        } catch (IOException ignored) {
            // read-only: nothing to lose
        }
    }

    /** An open shard: its Parquet reader projected to the requested columns, and the rows before each row group. */
    private record Shard(int index, Path file, ParquetFileReader reader, MessageType projection, String createdBy,
                         long[] blockStart) {
        void close() {
            closeQuietly(reader);
        }
    }

    /** Row group {@code block} of a shard, read into memory with its page checksums verified. */
    private record RowGroup(Shard shard, int block, PageReadStore pages) {
    }

    /**
     * A row group being read on a thread of its own: a daemon, started per row group, so there is no
     * pool to shut down and a reader that is never closed leaves no thread behind (a thread costs
     * nothing next to reading tens of megabytes).
     */
    private static final class ReadAhead {
        private final FutureTask<RowGroup> task;

        ReadAhead(Callable<RowGroup> fetch) {
            this.task = new FutureTask<>(fetch);
            Thread thread = new Thread(task, "spindle-activation-read-ahead");
            thread.setDaemon(true);
            thread.start();
        }

        /**
         * The row group, or null if reading it failed. Waits uninterruptibly, keeping the interrupt
         * for the caller: the read uses a shard that must not be closed under it, and it is short.
         */
        RowGroup await() {
            boolean interrupted = false;
            try {
                while (true) {
                    try {
                        return task.get();
                    } catch (InterruptedException e) {
                        interrupted = true;
                    } catch (ExecutionException e) {
                        return null;
                    }
                }
            } finally {
                if (interrupted) {
                    Thread.currentThread().interrupt();
                }
            }
        }
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
