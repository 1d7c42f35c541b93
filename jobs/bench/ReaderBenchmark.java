package jobs.bench;

import activations.safetensors.DType;
import activations.table.ActivationManifest;
import activations.table.ActivationShardWriter;
import activations.table.ActivationTableReader;
import activations.table.MixingBuffer;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.FloatBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * How much faster the activation reader and mixing buffer deliver rows than the SAE trainer
 * consumes them (its rows/s measured in the same run): a bf16 cache of d-wide rows written, then
 * read through a MixingBuffer into a trainer-sized batch buffer.
 */
final class ReaderBenchmark {

    private ReaderBenchmark() {
    }

    static Figure run(java.nio.file.Path work, int d, int rows, int batch, double trainerRowsPerSecond) {
        Configuration conf = new Configuration();
        Path dir = new Path(work.toUri());
        writeCache(conf, dir, d, rows);
        long start = System.nanoTime();
        long read = readAll(conf, dir, d, batch);
        double seconds = (System.nanoTime() - start) / 1e9;
        double readerRows = read / seconds;
        Map<String, Object> details = new LinkedHashMap<>();
        details.put("rows", read);
        details.put("d", d);
        details.put("reader_rows_per_second", readerRows);
        details.put("trainer_rows_per_second", trainerRowsPerSecond);
        return Figure.atLeast("reader_ratio", readerRows / trainerRowsPerSecond, 5.0, details);
    }

    /** A complete bf16 cache of {@code rows} random d-wide rows in four shards, on any Hadoop filesystem. */
    static void writeCache(Configuration conf, Path dir, int d, int rows) {
        try {
            SplittableRandom random = new SplittableRandom(3);
            int shards = 4;
            for (int s = 0; s < shards; s++) {
                int n = rows / shards;
                float[] values = new float[n * d];
                for (int i = 0; i < values.length; i++) {
                    values[i] = (float) (random.nextDouble() * 2 - 1);
                }
                long[] seq = new long[n];
                int[] pos = new int[n];
                int[] tok = new int[n];
                try (ActivationShardWriter w = ActivationShardWriter.open(conf, new Path(dir, ActivationShardWriter.shardFileName(s)),
                        List.of(HOOK), new int[] {d}, DType.BF16)) {
                    w.writeRows(seq, pos, tok, new float[][] {values}, n);
                    w.commit();
                }
            }
            ActivationManifest.of("bench", null, 0, null, null, null, ActivationManifest.listCommittedShards(conf, dir))
                    .write(dir.getFileSystem(conf), dir);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Reads the whole cache through the reader and a mixing buffer into trainer-sized batches; returns the rows read. */
    static long readAll(Configuration conf, Path dir, int d, int batch) {
        FloatBuffer buffer = FloatBuffer.allocate(batch * d);
        long read = 0;
        try (MixingBuffer source = new MixingBuffer(ActivationTableReader.open(conf, dir, List.of(HOOK)), 4 * batch, 1)) {
            int n;
            do {
                buffer.clear();
                n = source.read(new FloatBuffer[] {buffer}, batch);
                read += n;
            } while (n > 0);
        }
        return read;
    }

    private static final String HOOK = "blocks.0.hook_resid_post";
}
