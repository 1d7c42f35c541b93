package jobs.bench;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import testing.MiniHdfs;

import java.nio.file.Files;
import java.util.Locale;

/**
 * Not a test: the activation reader's rows/s from a real HDFS (an in-process MiniDFSCluster, so
 * the network is loopback) over its rows/s from the local filesystem, the same bf16 cache read
 * alternately from each. It lives with the tests because the minicluster is a test dependency.
 * Run: {@code java -cp target/classes:target/test-classes:TEST_CLASSPATH jobs.bench.HdfsReadBenchmark [rows] [d] [rounds]}
 * with TEST_CLASSPATH from {@code mvn dependency:build-classpath -Dmdep.includeScope=test};
 * {@code -Dhadoop.conf=key=value,...} sets client options to compare.
 */
public final class HdfsReadBenchmark {

    private HdfsReadBenchmark() {
    }

    public static void main(String[] args) throws Exception {
        int rows = args.length > 0 ? Integer.parseInt(args[0]) : 100_000;
        int d = args.length > 1 ? Integer.parseInt(args[1]) : 768;
        int rounds = args.length > 2 ? Integer.parseInt(args[2]) : 3;
        int batch = 4096;
        java.nio.file.Path work = Files.createTempDirectory("spindle-hdfs-bench");
        Configuration conf = new Configuration();
        // -Dhadoop.conf=key=value,key=value: client settings to compare (e.g. io.file.buffer.size).
        for (String setting : System.getProperty("hadoop.conf", "").split(",")) {
            if (setting.contains("=")) {
                conf.set(setting.substring(0, setting.indexOf('=')), setting.substring(setting.indexOf('=') + 1));
            }
        }
        try (MiniHdfs hdfs = MiniHdfs.start(work.resolve("hdfs"))) {
            Path local = new Path(work.resolve("cache").toUri());
            Path remote = new Path(hdfs.uri("cache"));
            ReaderBenchmark.writeCache(conf, local, d, rows);
            ReaderBenchmark.writeCache(conf, remote, d, rows);
            ReaderBenchmark.readAll(conf, local, d, batch); // warm-up: JIT, page cache
            ReaderBenchmark.readAll(conf, remote, d, batch);
            double localSeconds = 0;
            double remoteSeconds = 0;
            for (int r = 0; r < rounds; r++) {
                long t0 = System.nanoTime();
                long a = ReaderBenchmark.readAll(conf, local, d, batch);
                long t1 = System.nanoTime();
                long b = ReaderBenchmark.readAll(conf, remote, d, batch);
                long t2 = System.nanoTime();
                if (a != rows || b != rows) {
                    throw new IllegalStateException("read " + a + " and " + b + " rows of " + rows);
                }
                localSeconds += (t1 - t0) / 1e9;
                remoteSeconds += (t2 - t1) / 1e9;
            }
            double localRate = rows * (double) rounds / localSeconds;
            double remoteRate = rows * (double) rounds / remoteSeconds;
            System.out.printf(Locale.ROOT, "hdfs_read_ratio %.3f (HDFS %.0f rows/s over local %.0f rows/s; %d rows of d %d bf16, %d rounds)%n",
                    remoteRate / localRate, remoteRate, localRate, rows, d, rounds);
        } finally {
            org.apache.commons.io.FileUtils.deleteQuietly(work.toFile());
        }
    }
}
