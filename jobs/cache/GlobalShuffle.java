package jobs.cache;

import activations.safetensors.DType;
import activations.table.ActivationShardWriter;
import activations.table.PackedVectors;
import activations.table.ShardSummary;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.Partitioner;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.util.SerializableConfiguration;
import scala.Tuple2;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.Set;

/**
 * {@code cache --shuffle global}: a seeded uniform permutation of every row of the cache, done by
 * Spark's own shuffle. Each row (seq_id, pos) gets a 63-bit key from a seeded hash; output shard i
 * holds the keys in the i-th of {@code shards} equal ranges, written in key order, so reading the
 * shards in order reads the rows sorted by an (effectively) random key: a uniform permutation of
 * the whole cache, whatever sequence or shard a row came from. Spark's sort-based shuffle spills
 * to disk, so no task holds more than its share of the rows in memory.
 *
 * <p>Exactly once and resumable as the rest of the cache: the key is a pure function of (seq_id,
 * pos, seed), so every attempt of a task computes the same shard, which the exactly-once writer
 * commits once; a re-run skips committed output shards before shuffling.
 */
final class GlobalShuffle {

    /** One row in flight: its packed hook values stay packed (a class: Kryo cannot serialize records). */
    static final class PackedRow implements Serializable {
        final long seq;
        final int pos;
        final int token;
        final byte[][] hooks;

        PackedRow(long seq, int pos, int token, byte[][] hooks) {
            this.seq = seq;
            this.pos = pos;
            this.token = token;
            this.hooks = hooks;
        }
    }

    /** Sort key: the random key, then (seq_id, pos) so that even a key collision orders deterministically. */
    static final class Key implements Serializable {
        final long random;
        final long seq;
        final int pos;

        Key(long random, long seq, int pos) {
            this.random = random;
            this.seq = seq;
            this.pos = pos;
        }
    }

    static final Comparator<Key> ORDER = new KeyOrder();

    private static final class KeyOrder implements Comparator<Key>, Serializable {
        @Override
        public int compare(Key a, Key b) {
            int c = Long.compare(a.random, b.random);
            if (c != 0) {
                return c;
            }
            c = Long.compare(a.seq, b.seq);
            return c != 0 ? c : Integer.compare(a.pos, b.pos);
        }
    }

    private GlobalShuffle() {
    }

    /** A row's random key in [0, 2^63): two SplitMix64 finalizer rounds over seq, pos and the seed. */
    static long key(long seed, long seq, int pos) {
        long z = mix(seq * 0x9E3779B97F4A7C15L + seed);
        return mix(z ^ (pos * 0xD1B54A32D192ED03L + 0x632BE59BD9B4E019L)) >>> 1;
    }

    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** Output shard of a key: equal ranges of [0, 2^63), monotone in the key. */
    static int shardOf(long key, int shards) {
        return (int) Math.min(shards - 1, (long) ((key >>> 11) * 0x1p-52 * shards));
    }

    static final class RangePartitioner extends Partitioner {
        private final int shards;

        RangePartitioner(int shards) {
            this.shards = shards;
        }

        @Override
        public int numPartitions() {
            return shards;
        }

        @Override
        public int getPartition(Object key) {
            return shardOf(((Key) key).random, shards);
        }
    }

    /**
     * Reads the complete unshuffled cache in {@code source} and writes its rows, permuted, as
     * {@code shards} shards into {@code target}, skipping the shards in {@code done}. Returns the rows written now.
     * {@code fault} (tests) fails attempts of output shard {@code faultShard}.
     */
    static long run(SparkSession spark, Broadcast<SerializableConfiguration> conf, Path source, Path target, List<String> hooks,
                    int[] dims, DType dtype, long seed, int shards, Set<Integer> done, int batchRows, CacheJob.Fault fault,
                    int faultShard) {
        int hookCount = hooks.size();
        String targetDir = target.toString();
        // Columns by position: seq_id, pos, token_id, then one packed binary column per hook (the writer's schema).
        JavaPairRDD<Key, PackedRow> keyed = spark.read().parquet(source.toString()).javaRDD().mapToPair(row -> {
            long seq = row.getLong(0);
            int pos = row.getInt(1);
            byte[][] packed = new byte[hookCount][];
            for (int h = 0; h < hookCount; h++) {
                packed[h] = (byte[]) row.get(3 + h);
            }
            return new Tuple2<>(new Key(key(seed, seq, pos), seq, pos), new PackedRow(seq, pos, row.getInt(2), packed));
        }).filter(pair -> !done.contains(shardOf(pair._1().random, shards)));
        List<Long> written = keyed.repartitionAndSortWithinPartitions(new RangePartitioner(shards), ORDER)
                .mapPartitionsWithIndex((shard, rows) -> {
                    List<Long> out = new ArrayList<>();
                    if (rows.hasNext()) {
                        out.add(writeShard(conf.value().value(), new Path(targetDir), shard, rows, hooks, dims, dtype, batchRows,
                                fault, faultShard));
                    }
                    return out.iterator();
                }, true).collect();
        return written.stream().mapToLong(Long::longValue).sum();
    }

    private static long writeShard(Configuration conf, Path dir, int shard, Iterator<Tuple2<Key, PackedRow>> rows,
                                   List<String> hooks, int[] dims, DType dtype, int batchRows, CacheJob.Fault fault,
                                   int faultShard) {
        TaskContext task = TaskContext.get();
        ActivationShardWriter writer = ActivationShardWriter.open(conf, new Path(dir, ActivationShardWriter.shardFileName(shard)),
                hooks, dims, dtype);
        try {
            long[] seqs = new long[batchRows];
            int[] positions = new int[batchRows];
            int[] tokens = new int[batchRows];
            float[][] values = new float[dims.length][];
            for (int h = 0; h < dims.length; h++) {
                values[h] = new float[batchRows * dims[h]];
            }
            int n = 0;
            while (rows.hasNext()) {
                PackedRow r = rows.next()._2();
                seqs[n] = r.seq;
                positions[n] = r.pos;
                tokens[n] = r.token;
                for (int h = 0; h < dims.length; h++) {
                    // Decoding and re-encoding the same storage type is exact (bf16/f16 values are floats).
                    PackedVectors.decode(r.hooks[h], 0, dims[h], dtype, values[h], n * dims[h]);
                }
                if (++n == batchRows) {
                    writer.writeRows(seqs, positions, tokens, values, n);
                    n = 0;
                }
            }
            if (n > 0) {
                writer.writeRows(seqs, positions, tokens, values, n);
            }
            int attempt = task == null ? 0 : task.attemptNumber();
            if (shard == faultShard && (fault == CacheJob.Fault.ALWAYS || fault == CacheJob.Fault.BEFORE_COMMIT && attempt == 0)) {
                throw new IllegalStateException("injected fault: shuffled shard " + shard + " attempt " + attempt + " dies before commit");
            }
            ShardSummary summary = writer.commit();
            if (shard == faultShard && fault == CacheJob.Fault.AFTER_COMMIT && attempt == 0) {
                throw new IllegalStateException("injected fault: shuffled shard " + shard + " attempt 0 dies after commit");
            }
            return summary.rows();
        } catch (RuntimeException e) {
            writer.abort();
            throw e;
        }
    }
}
