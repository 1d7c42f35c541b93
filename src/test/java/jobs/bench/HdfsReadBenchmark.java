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
 * {@code -Dhadoop.conf=key=value,...} sets client options to compare; {@code -Dhdfs.uri=hdfs://HOST:PORT}
 * reads from a running cluster instead of an in-process one, e.g. {@link MiniHdfs#main} started on
 * other cores than the reader's (docs/PERFORMANCE.md, "Reading the cache from HDFS").
 */
public final class HdfsReadBenchmark {

    private HdfsReadBenchmark() {
    }

    public static void main(String[] args) throws Exception {
        int rows = args.length > 0 ? Integer.parseInt(args[0]) : 100_000;
        int d = args.length > 1 ? Integer.parseInt(args[1]) : 768;
        int rounds = args.length > 2 ? Integer.parseInt(args[2]) : 7;
        int batch = 4096;
        java.nio.file.Path work = Files.createTempDirectory("spindle-hdfs-bench");
        Configuration conf = new Configuration();
        // -Dhadoop.conf=key=value,key=value: client settings to compare (e.g. io.file.buffer.size).
        for (String setting : System.getProperty("hadoop.conf", "").split(",")) {
            if (setting.contains("=")) {
                conf.set(setting.substring(0, setting.indexOf('=')), setting.substring(setting.indexOf('=') + 1));
            }
        }
        String external = System.getProperty("hdfs.uri");
        try (MiniHdfs hdfs = external == null ? MiniHdfs.start(work.resolve("hdfs")) : null) {
            Path local = new Path(work.resolve("cache").toUri());
            Path remote = new Path(external == null ? hdfs.uri("cache") : external.replaceAll("/$", "") + "/bench-" + System.nanoTime());
            ReaderBenchmark.writeCache(conf, local, d, rows);
            ReaderBenchmark.writeCache(conf, remote, d, rows);
            // Warm-up: page cache and JIT. The HDFS client and DataNode code takes several passes:
            // after one (or three) the first measured HDFS rounds used up to twice the CPU of the last.
            for (int w = 0; w < 8; w++) {
                ReaderBenchmark.readAll(conf, local, d, batch);
                ReaderBenchmark.readAll(conf, remote, d, batch);
            }
            // Rounds alternate which filesystem goes first, and the figure is the median of the
            // rounds' own ratios: load from elsewhere on a shared machine then shifts both sides of
            // a round alike, and one disturbed round does not move the median.
            double[] ratios = new double[rounds];
            double[] localRates = new double[rounds];
            double[] remoteRates = new double[rounds];
            double[] localCpu = new double[rounds];
            double[] remoteCpu = new double[rounds];
            for (int r = 0; r < rounds; r++) {
                boolean localFirst = r % 2 == 0;
                double[] first = measure(conf, localFirst ? local : remote, d, batch, rows);
                double[] second = measure(conf, localFirst ? remote : local, d, batch, rows);
                double[] l = localFirst ? first : second;
                double[] h = localFirst ? second : first;
                localRates[r] = l[0];
                remoteRates[r] = h[0];
                localCpu[r] = l[1];
                remoteCpu[r] = h[1];
                ratios[r] = remoteRates[r] / localRates[r];
                System.out.printf(Locale.ROOT, "round %d: HDFS %.0f rows/s, local %.0f rows/s, ratio %.3f; CPU %.2f s and %.2f s%n",
                        r + 1, remoteRates[r], localRates[r], ratios[r], remoteCpu[r], localCpu[r]);
            }
            System.out.printf(Locale.ROOT, "hdfs_read_ratio %.3f (median of %d rounds; HDFS %.0f rows/s over local %.0f rows/s, medians; %d rows of d %d bf16)%n",
                    median(ratios), rounds, median(remoteRates), median(localRates), rows, d);
            // The JVM's CPU seconds for one pass over the cache; HDFS's include the in-process
            // DataNode's, which a real cluster spends on other machines.
            System.out.printf(Locale.ROOT, "cpu_seconds HDFS %.2f, local %.2f (medians, whole process, DataNode included)%n",
                    median(remoteCpu), median(localCpu));
        } finally {
            org.apache.commons.io.FileUtils.deleteQuietly(work.toFile());
        }
    }

    /** One pass over the cache: {rows/s, CPU seconds of the whole process}. */
    private static double[] measure(Configuration conf, Path dir, int d, int batch, int rows) {
        com.sun.management.OperatingSystemMXBean os =
                (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        long cpu0 = os.getProcessCpuTime();
        long t0 = System.nanoTime();
        long read = ReaderBenchmark.readAll(conf, dir, d, batch);
        double seconds = (System.nanoTime() - t0) / 1e9;
        double cpu = (os.getProcessCpuTime() - cpu0) / 1e9;
        if (read != rows) {
            throw new IllegalStateException("read " + read + " rows of " + rows + " from " + dir);
        }
        return new double[] {rows / seconds, cpu};
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        java.util.Arrays.sort(sorted);
        int n = sorted.length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
}
