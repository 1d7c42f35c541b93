package jobs.pipeline;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Deletes old dated runs ({@code runs/YYYY-MM-DD/}) beyond the newest {@code keep}, on any Hadoop
 * filesystem. Only directories named as dates are touched, never the current run, and never the
 * shared cache. A marker {@code runs/.deleting-DATE} is written before a run's files go and removed
 * after, and a run with a marker no longer counts as a run: a deletion cut short (on an object
 * store a directory delete is many requests) never leaves something that looks like a run, and the
 * next prune finishes it. No rename is involved, so this holds on S3 as on HDFS.
 */
final class RunRetention {

    private static final String DATE = "\\d{4}-\\d{2}-\\d{2}";
    private static final String DELETING = ".deleting-";

    private RunRetention() {
    }

    /** Dated runs under {@code runs}, oldest first, without those being deleted. */
    static List<String> runs(Configuration conf, Path runs) {
        List<String> names = new ArrayList<>();
        try {
            FileSystem fs = runs.getFileSystem(conf);
            if (!fs.isDirectory(runs)) {
                return names;
            }
            for (FileStatus status : fs.listStatus(runs)) {
                String name = status.getPath().getName();
                if (status.isDirectory() && name.matches(DATE) && !fs.exists(new Path(runs, DELETING + name))) {
                    names.add(name);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + runs + ": " + e.getMessage(), e);
        }
        names.sort(Comparator.naturalOrder());
        return names;
    }

    /** Deletes all but the newest {@code keep} runs (0 keeps all), sparing {@code current}; returns the deleted ones. */
    static List<String> prune(Configuration conf, Path runs, String current, int keep, PrintStream progress) {
        List<String> deleted = new ArrayList<>();
        try {
            FileSystem fs = runs.getFileSystem(conf);
            finishInterruptedDeletions(fs, runs);
            if (keep <= 0) {
                return deleted;
            }
            List<String> all = runs(conf, runs);
            for (String name : all.subList(0, Math.max(0, all.size() - keep))) {
                if (name.equals(current)) {
                    continue;
                }
                delete(fs, runs, name);
                deleted.add(name);
                progress.printf("== retention: deleted run %s (keep-runs = %d)%n", name, keep);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot remove old runs in " + runs + ": " + e.getMessage(), e);
        }
        return deleted;
    }

    private static void delete(FileSystem fs, Path runs, String name) throws IOException {
        Path marker = new Path(runs, DELETING + name);
        fs.create(marker, true).close();
        Path run = new Path(runs, name);
        if (fs.exists(run) && !fs.delete(run, true)) {
            throw new IOException("cannot delete " + run);
        }
        fs.delete(marker, false);
    }

    private static void finishInterruptedDeletions(FileSystem fs, Path runs) throws IOException {
        if (!fs.isDirectory(runs)) {
            return;
        }
        for (FileStatus status : fs.listStatus(runs)) {
            String name = status.getPath().getName();
            if (name.startsWith(DELETING) && name.substring(DELETING.length()).matches(DATE)) {
                delete(fs, runs, name.substring(DELETING.length()));
            }
        }
    }
}
