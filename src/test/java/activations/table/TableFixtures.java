package activations.table;

import activations.safetensors.DType;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.nio.FloatBuffer;
import java.util.List;
import java.util.Random;

/** Synthetic activation caches for the table tests: known rows, several shards and row groups. */
final class TableFixtures {

    static final List<String> HOOKS = List.of("blocks.0.hook_resid_post", "blocks.1.hook_mlp_out", "blocks.1.hook_resid_post");
    static final int[] DIMS = {16, 8, 24};

    /** Small row groups (a few dozen rows) so that every shard has several. */
    static final ActivationShardWriter.Options SMALL_GROUPS = ActivationShardWriter.Options.DEFAULT.withRowGroupBytes(4096);

    /** Rows of one cache: global row i has seq_id 1000 + i / 7, pos i % 7, token_id (i * 31) % 500. */
    static final class Data {
        final int rows;
        final float[][] values; // per hook, rows x dims[h]

        Data(int rows, long seed) {
            this.rows = rows;
            this.values = new float[DIMS.length][];
            Random random = new Random(seed);
            for (int h = 0; h < DIMS.length; h++) {
                values[h] = new float[rows * DIMS[h]];
                for (int r = 0; r < rows; r++) {
                    for (int j = 0; j < DIMS[h]; j++) {
                        // per-dimension offset and scale so statistics have structure to get wrong
                        values[h][r * DIMS[h] + j] = (float) (0.5 * j - 2 + (1 + h) * random.nextGaussian());
                    }
                }
            }
        }

        static long seqId(int row) {
            return 1000 + row / 7;
        }

        static int pos(int row) {
            return row % 7;
        }

        static int tokenId(int row) {
            return (row * 31) % 500;
        }

        float value(int h, int row, int j) {
            return values[h][row * DIMS[h] + j];
        }
    }

    static Configuration conf() {
        return new Configuration();
    }

    static Path path(java.nio.file.Path local) {
        return new Path(local.toUri());
    }

    /** Writes {@code data} as shards of the given sizes (rows in order), then the manifest; returns the directory. */
    static Path writeCache(java.nio.file.Path localDir, Data data, int[] shardRows, DType dtype) {
        return writeCache(localDir, data, shardRows, dtype, SMALL_GROUPS);
    }

    static Path writeCache(java.nio.file.Path localDir, Data data, int[] shardRows, DType dtype, ActivationShardWriter.Options options) {
        Path dir = path(localDir);
        int first = 0;
        for (int k = 0; k < shardRows.length; k++) {
            writeShard(new Path(dir, ActivationShardWriter.shardFileName(k)), data, first, shardRows[k], dtype, 53, options);
            first += shardRows[k];
        }
        ActivationManifest.CommittedShards committed = ActivationManifest.listCommittedShards(conf(), dir);
        ActivationManifest manifest = ActivationManifest.of("test-model", "sha256:test", 7, "file:/tokens", 17L, "none", committed);
        try {
            manifest.write(FileSystem.get(dir.toUri(), conf()), dir);
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
        return dir;
    }

    /** Writes rows [first, first + count) of {@code data} to one shard in batches of {@code batch} rows. */
    static ShardSummary writeShard(Path shard, Data data, int first, int count, DType dtype, int batch) {
        return writeShard(shard, data, first, count, dtype, batch, SMALL_GROUPS);
    }

    static ShardSummary writeShard(Path shard, Data data, int first, int count, DType dtype, int batch,
                                   ActivationShardWriter.Options options) {
        try (ActivationShardWriter writer = ActivationShardWriter.open(conf(), shard, HOOKS, DIMS, dtype, options)) {
            long[] seq = new long[batch];
            int[] pos = new int[batch];
            int[] tok = new int[batch];
            float[][] values = new float[DIMS.length][];
            for (int h = 0; h < DIMS.length; h++) {
                values[h] = new float[batch * DIMS[h]];
            }
            for (int done = 0; done < count; ) {
                int n = Math.min(batch, count - done);
                for (int r = 0; r < n; r++) {
                    int row = first + done + r;
                    seq[r] = Data.seqId(row);
                    pos[r] = Data.pos(row);
                    tok[r] = Data.tokenId(row);
                }
                for (int h = 0; h < DIMS.length; h++) {
                    System.arraycopy(data.values[h], (first + done) * DIMS[h], values[h], 0, n * DIMS[h]);
                }
                writer.writeRows(seq, pos, tok, values, n);
                done += n;
            }
            return writer.commit();
        }
    }

    /** Reads everything left in {@code source} with reads of {@code chunk} rows into heap or direct buffers. */
    static float[][] readAll(ActivationSource source, int expectedRows, int chunk, boolean direct) {
        int[] dims = source.dims();
        float[][] out = new float[dims.length][];
        FloatBuffer[] buffers = new FloatBuffer[dims.length];
        for (int h = 0; h < dims.length; h++) {
            out[h] = new float[expectedRows * dims[h]];
            buffers[h] = direct
                    ? java.nio.ByteBuffer.allocateDirect(chunk * dims[h] * 4).order(java.nio.ByteOrder.nativeOrder()).asFloatBuffer()
                    : FloatBuffer.allocate(chunk * dims[h]);
        }
        int rows = 0;
        while (true) {
            for (FloatBuffer b : buffers) {
                b.clear();
            }
            int n = source.read(buffers, chunk);
            if (n == 0) {
                break;
            }
            if (rows + n > expectedRows) {
                throw new AssertionError("source returned more than the expected " + expectedRows + " rows");
            }
            for (int h = 0; h < dims.length; h++) {
                buffers[h].flip();
                if (buffers[h].remaining() != n * dims[h]) {
                    throw new AssertionError("hook " + h + " got " + buffers[h].remaining() + " floats for " + n + " rows");
                }
                buffers[h].get(out[h], rows * dims[h], n * dims[h]);
            }
            rows += n;
        }
        if (rows != expectedRows) {
            throw new AssertionError("read " + rows + " rows, expected " + expectedRows);
        }
        return out;
    }

    /** The storage rounding bound of {@code dtype} for a value of magnitude |x|. */
    static double tolerance(DType dtype, float x) {
        switch (dtype) {
            case BF16:
                return Math.abs(x) * 0x1p-8;
            case F16:
                return Math.abs(x) * 0x1p-11 + 0x1p-24; // the absolute floor covers float16 subnormals
            default:
                return 0;
        }
    }

    private TableFixtures() {
    }
}
