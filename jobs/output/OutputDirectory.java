package jobs.output;

import activations.table.CommitProtocol;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.UUID;

/**
 * An output directory that appears whole or not at all, by the filesystem's {@link CommitProtocol}.
 * Where renames are atomic (local, HDFS) a job writes into a staging directory beside the target
 * and {@link #publish()} renames it into place, so a reader never sees a half-written output and a
 * failed overwrite leaves the old output intact. On an object store the job writes into the target
 * itself and its manifest (the marker readers and re-runs trust) comes last; an existing output's
 * manifest is deleted before anything of it is replaced, so a failed overwrite there leaves an
 * output marked incomplete (re-run to finish it), never a mix passing for complete.
 */
public final class OutputDirectory {

    private final FileSystem fs;
    private final Path target;
    private final Path staging;
    private final String manifestName;

    private OutputDirectory(FileSystem fs, Path target, Path staging, String manifestName) {
        this.fs = fs;
        this.target = target;
        this.staging = staging;
        this.manifestName = manifestName;
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
            if (CommitProtocol.of(fs, conf) == CommitProtocol.MARKER) {
                // The marker first: from here on the old output no longer passes for complete.
                fs.delete(new Path(path, manifestName), false);
                fs.delete(path, true);
                return new OutputDirectory(fs, path, path, manifestName);
            }
            Path staging = new Path(path.getParent(), "." + path.getName() + ".staging-" + UUID.randomUUID());
            return new OutputDirectory(fs, path, staging, manifestName);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot prepare output " + target + ": " + e.getMessage(), e);
        }
    }

    /** Where the job writes; becomes {@link #target()} on publish (is the target under {@link CommitProtocol#MARKER}). */
    public Path staging() {
        return staging;
    }

    /** The file that marks the output complete; writers that copy files in write it last. */
    public String manifestName() {
        return manifestName;
    }

    /** Whether the job writes straight into the target (object stores). */
    public boolean writesInPlace() {
        return staging.equals(target);
    }

    public Path target() {
        return target;
    }

    /** Moves the staged output into place, replacing an old output only after the new one is complete. */
    public void publish() {
        if (writesInPlace()) {
            try {
                if (!fs.exists(new Path(target, manifestName))) {
                    throw new IllegalStateException("output " + target + " has no " + manifestName + " after writing; it is incomplete");
                }
            } catch (IOException e) {
                throw new UncheckedIOException("cannot publish " + target + ": " + e.getMessage(), e);
            }
            return;
        }
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

    /** Removes the staging directory after a failure; the previous output is untouched (in place: removed too). */
    public void abandon() {
        try {
            if (writesInPlace()) {
                fs.delete(new Path(target, manifestName), false);
            }
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
