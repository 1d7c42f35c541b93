package jobs.output;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.UUID;

/**
 * An output directory that appears whole or not at all: a job writes into a staging directory
 * beside the target and {@link #publish()} renames it into place, so a reader never sees a
 * half-written output, and an existing complete output is replaced only when asked to.
 */
public final class OutputDirectory {

    private final FileSystem fs;
    private final Path target;
    private final Path staging;

    private OutputDirectory(FileSystem fs, Path target, Path staging) {
        this.fs = fs;
        this.target = target;
        this.staging = staging;
    }

    /**
     * Prepares to write {@code target}. Refuses an existing complete output ({@code manifestName}
     * present) unless {@code overwrite}; a directory without a manifest is an interrupted run's
     * leftover and is replaced.
     */
    public static OutputDirectory begin(Configuration conf, String target, String manifestName, boolean overwrite) {
        try {
            Path path = new Path(target);
            FileSystem fs = path.getFileSystem(conf);
            path = fs.makeQualified(path);
            if (fs.exists(new Path(path, manifestName)) && !overwrite) {
                throw new IllegalArgumentException("output " + target + " already holds a complete result; "
                        + "choose another --out or pass --overwrite");
            }
            if (fs.exists(path) && !fs.getFileStatus(path).isDirectory()) {
                throw new IllegalArgumentException("output " + target + " is a file, not a directory; choose another --out");
            }
            Path staging = new Path(path.getParent(), "." + path.getName() + ".staging-" + UUID.randomUUID());
            return new OutputDirectory(fs, path, staging);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot prepare output " + target + ": " + e.getMessage(), e);
        }
    }

    /** Where the job writes; becomes {@link #target()} on publish. */
    public Path staging() {
        return staging;
    }

    public Path target() {
        return target;
    }

    /** Moves the staged output into place, replacing an old output only after the new one is complete. */
    public void publish() {
        try {
            Path old = null;
            if (fs.exists(target)) {
                old = new Path(target.getParent(), "." + target.getName() + ".old-" + UUID.randomUUID());
                rename(target, old);
            }
            rename(staging, target);
            if (old != null) {
                fs.delete(old, true);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot publish " + target + ": " + e.getMessage(), e);
        }
    }

    /** Removes the staging directory after a failure; the previous output is untouched. */
    public void abandon() {
        try {
            fs.delete(staging, true);
        } catch (IOException ignored) {
            // the job's own error is the one to report
        }
    }

    private void rename(Path from, Path to) throws IOException {
        if (!fs.rename(from, to)) {
            throw new IOException("rename " + from + " -> " + to + " failed");
        }
    }
}
