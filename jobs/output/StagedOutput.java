package jobs.output;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.FileUtil;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.util.UUID;
import java.util.function.Consumer;

/**
 * Outputs written by plain-Java code into a local directory and published atomically on any
 * Hadoop filesystem: on {@code file:} the code writes straight into the staging directory; on a
 * remote one (HDFS, S3) into a local temporary directory that is then copied into the staging
 * directory before the rename. Nothing is published if the writer fails.
 */
public final class StagedOutput {

    private StagedOutput() {
    }

    /** A whole output directory; {@code manifestName} marks a complete one (see {@link OutputDirectory}). */
    public static void directory(Configuration conf, String target, String manifestName, boolean overwrite,
                                 Consumer<java.nio.file.Path> writer) {
        OutputDirectory out = OutputDirectory.begin(conf, target, manifestName, overwrite);
        java.nio.file.Path remoteCopy = null; // the local directory a remote output is written into first
        try {
            FileSystem fs = out.staging().getFileSystem(conf);
            boolean isLocal = "file".equals(out.staging().toUri().getScheme());
            if (!isLocal) {
                remoteCopy = Files.createTempDirectory("spindle-out-");
            }
            java.nio.file.Path local = isLocal ? java.nio.file.Path.of(out.staging().toUri()) : remoteCopy;
            Files.createDirectories(local);
            writer.accept(local);
            if (!isLocal) {
                fs.copyFromLocalFile(false, true, new Path(local.toUri()), out.staging());
            }
            out.publish();
        } catch (IOException e) {
            out.abandon();
            throw new UncheckedIOException("cannot write " + target + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            out.abandon();
            throw e;
        } finally {
            if (remoteCopy != null) {
                FileUtil.fullyDelete(remoteCopy.toFile()); // also after a failed writer
            }
        }
    }

    /** One file, written beside its target and renamed into place; an existing file only with {@code overwrite}. */
    public static void file(Configuration conf, String target, boolean overwrite, Consumer<java.nio.file.Path> writer) {
        java.nio.file.Path local = null;
        try {
            Path path = new Path(target);
            FileSystem fs = path.getFileSystem(conf);
            path = fs.makeQualified(path);
            if (fs.exists(path) && !overwrite) {
                throw new IllegalArgumentException("output " + target + " already exists; choose another --out or pass --overwrite");
            }
            if (path.getParent() != null) {
                fs.mkdirs(path.getParent());
            }
            if ("file".equals(path.toUri().getScheme())) {
                // Local: a sibling temporary file and an atomic move (Hadoop's local filesystem would add .crc files).
                java.nio.file.Path finalPath = java.nio.file.Path.of(path.toUri());
                local = finalPath.resolveSibling("." + finalPath.getFileName() + ".tmp-" + UUID.randomUUID());
                writer.accept(local);
                Files.move(local, finalPath, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                        java.nio.file.StandardCopyOption.ATOMIC_MOVE);
                return;
            }
            local = Files.createTempFile("spindle-out-", "-" + path.getName());
            writer.accept(local);
            Path staging = new Path(path.getParent(), "." + path.getName() + ".staging-" + UUID.randomUUID());
            fs.copyFromLocalFile(true, true, new Path(local.toUri()), staging);
            if (fs.exists(path)) {
                fs.delete(path, false);
            }
            if (!fs.rename(staging, path)) {
                fs.delete(staging, false);
                throw new IOException("rename " + staging + " -> " + path + " failed");
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + target + ": " + e.getMessage(), e);
        } finally {
            if (local != null) {
                try {
                    Files.deleteIfExists(local);
                } catch (IOException ignored) {
                    // a temporary file; the outcome is already decided
                }
            }
        }
    }
}
