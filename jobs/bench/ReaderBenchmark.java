package jobs.bench;

import activations.safetensors.DType;
import activations.table.ActivationManifest;
import activations.table.ActivationShardWriter;
import activations.table.ActivationTableReader;
import activations.table.MixingBuffer;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
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
        try {
            Configuration conf = new Configuration();
            Path dir = new Path(work.toUri());
            String hook = "blocks.0.hook_resid_post";
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
                        List.of(hook), new int[] {d}, DType.BF16)) {
                    w.writeRows(seq, pos, tok, new float[][] {values}, n);
                    w.commit();
                }
            }
            ActivationManifest.of("bench", null, 0, null, null, null, ActivationManifest.listCommittedShards(conf, dir))
                    .write(FileSystem.getLocal(conf), dir);
            FloatBuffer buffer = FloatBuffer.allocate(batch * d);
            long read = 0;
            long start = System.nanoTime();
            try (MixingBuffer source = new MixingBuffer(ActivationTableReader.open(conf, dir, List.of(hook)), 4 * batch, 1)) {
                int n;
                do {
                    buffer.clear();
                    n = source.read(new FloatBuffer[] {buffer}, batch);
                    read += n;
                } while (n > 0);
            }
            double seconds = (System.nanoTime() - start) / 1e9;
            double readerRows = read / seconds;
            Map<String, Object> details = new LinkedHashMap<>();
            details.put("rows", read);
            details.put("d", d);
            details.put("reader_rows_per_second", readerRows);
            details.put("trainer_rows_per_second", trainerRowsPerSecond);
            return Figure.atLeast("reader_ratio", readerRows / trainerRowsPerSecond, 5.0, details);
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new UncheckedIOException(new IOException(e));
        }
    }
}
