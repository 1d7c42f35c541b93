package jobs.output;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.util.Comparator;
import java.util.UUID;
import java.util.function.Consumer;
import java.util.stream.Stream;

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
        java.nio.file.Path local = null;
        try {
            FileSystem fs = out.staging().getFileSystem(conf);
            boolean isLocal = "file".equals(out.staging().toUri().getScheme());
            local = isLocal ? java.nio.file.Path.of(out.staging().toUri()) : Files.createTempDirectory("spindle-out-");
            Files.createDirectories(local);
            writer.accept(local);
            if (!isLocal) {
                fs.copyFromLocalFile(false, true, new Path(local.toUri()), out.staging());
                deleteRecursively(local);
            }
            out.publish();
        } catch (IOException e) {
            out.abandon();
            throw new UncheckedIOException("cannot write " + target + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            out.abandon();
            throw e;
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

    private static void deleteRecursively(java.nio.file.Path dir) throws IOException {
        try (Stream<java.nio.file.Path> paths = Files.walk(dir)) {
            for (java.nio.file.Path p : (Iterable<java.nio.file.Path>) paths.sorted(Comparator.reverseOrder())::iterator) {
                Files.delete(p);
            }
        }
    }
}
