package activations.table;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.util.Locale;
import java.util.Set;

/**
 * How an output becomes visible on a filesystem. Every writer of Spindle commits in one of two
 * ways, and readers trust only a committed output:
 * <ul>
 *   <li>{@link #RENAME}: write under a hidden name, then rename into place. Used where a rename is
 *       atomic: the local filesystem, HDFS (and viewfs over it).</li>
 *   <li>{@link #MARKER}: write every file under its final name, each one complete on close (an
 *       object store's PUT is all-or-nothing), then write the output's small marker file (its
 *       manifest) last; readers and re-runs trust the marker, never a directory's mere presence.
 *       Used on object stores (s3a, gs, abfs, wasb, ...), where a directory rename is a copy of
 *       every object and can stop half way.</li>
 * </ul>
 * {@code spindle.output.commit = auto | rename | marker} (a Hadoop setting: {@code --conf
 * spark.hadoop.spindle.output.commit=marker}) overrides the choice by scheme.
 */
public enum CommitProtocol {
    RENAME, MARKER;

    public static final String SETTING = "spindle.output.commit";

    /** Schemes whose rename of a file or directory is atomic. */
    private static final Set<String> ATOMIC_RENAME = Set.of("file", "hdfs", "viewfs", "o3fs", "ofs");

    public static CommitProtocol of(FileSystem fs, Configuration conf) {
        String setting = conf.get(SETTING, "auto").trim().toLowerCase(Locale.ROOT);
        return switch (setting) {
            case "auto" -> ATOMIC_RENAME.contains(fs.getUri().getScheme()) ? RENAME : MARKER;
            case "rename" -> RENAME;
            case "marker" -> MARKER;
            default -> throw new IllegalArgumentException(SETTING + " = " + setting + "; use auto, rename or marker");
        };
    }

    public static CommitProtocol of(Path path, Configuration conf) {
        try {
            return of(path.getFileSystem(conf), conf);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("cannot reach the filesystem of " + path + ": " + e.getMessage(), e);
        }
    }
}
