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
 * directory before the rename, or, on an object store, into the target with the manifest last
 * ({@link activations.table.CommitProtocol}). Nothing is published if the writer fails.
 */
public final class StagedOutput {

    private StagedOutput() {
    }

    /** A whole output directory; {@code manifestName} marks a complete one (see {@link OutputDirectory}). */
    public static void directory(Configuration conf, String target, String manifestName, boolean overwrite,
                                 Consumer<java.nio.file.Path> writer) {
        OutputDirectory out = OutputDirectory.begin(conf, target, manifestName, overwrite);
        try {
            publish(conf, out, writer::accept);
        } catch (IOException e) {
            out.abandon();
            throw new UncheckedIOException("cannot write " + target + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            out.abandon();
            throw e;
        }
    }

    /** Plain-Java code that writes an output's files into a local directory. */
    public interface LocalWriter {
        void write(java.nio.file.Path directory) throws IOException;
    }

    /**
     * Has {@code writer} fill {@code out} (begun by the caller, who abandons it on failure) and
     * publishes it: straight into the staging directory when that is local, else through a local
     * temporary directory uploaded manifest last.
     */
    public static void publish(Configuration conf, OutputDirectory out, LocalWriter writer) throws IOException {
        java.nio.file.Path localCopy = null;
        try {
            boolean direct = "file".equals(out.staging().toUri().getScheme()) && !out.writesInPlace();
            localCopy = direct ? null : Files.createTempDirectory("spindle-out-");
            java.nio.file.Path local = direct ? java.nio.file.Path.of(out.staging().toUri()) : localCopy;
            Files.createDirectories(local);
            writer.write(local);
            if (!direct) {
                upload(conf, local, out);
            }
            out.publish();
        } finally {
            if (localCopy != null) {
                FileUtil.fullyDelete(localCopy.toFile()); // also after a failed writer
            }
        }
    }

    /**
     * Copies a locally written output into {@code out.staging()}: every file but the manifest, then
     * the manifest, so that in place (object stores) the marker appears only over a complete output.
     */
    public static void upload(Configuration conf, java.nio.file.Path local, OutputDirectory out) throws IOException {
        uploadTree(out.staging().getFileSystem(conf), local, out.staging(), out.manifestName(), p -> true);
    }

    /**
     * Copies the files of {@code local} that {@code include} accepts (by path relative to it) to
     * {@code target}, keeping their relative paths; {@code manifestName} (null: none) goes last.
     */
    static void uploadTree(FileSystem fs, java.nio.file.Path local, Path target, String manifestName,
                           java.util.function.Predicate<java.nio.file.Path> include) throws IOException {
        java.nio.file.Path manifest = manifestName == null ? null : local.resolve(manifestName);
        java.util.List<java.nio.file.Path> files;
        try (java.util.stream.Stream<java.nio.file.Path> walk = Files.walk(local)) {
            files = walk.filter(Files::isRegularFile).filter(p -> !p.equals(manifest) && include.test(local.relativize(p)))
                    .sorted().toList();
        }
        for (java.nio.file.Path file : files) {
            copy(fs, file, new Path(target, local.relativize(file).toString().replace(java.io.File.separatorChar, '/')));
        }
        if (manifest != null && Files.isRegularFile(manifest)) {
            copy(fs, manifest, new Path(target, manifestName));
        }
    }

    /**
     * Copies the tree at {@code from} on {@code fs} to local disk, leaving out the entries (files or
     * directories, at any depth) whose name {@code include} rejects: the counterpart of {@link #uploadTree}.
     */
    public static void downloadTree(FileSystem fs, Path from, java.nio.file.Path to,
                                    java.util.function.Predicate<String> include) throws IOException {
        Files.createDirectories(to);
        for (org.apache.hadoop.fs.FileStatus status : fs.listStatus(from)) {
            String name = status.getPath().getName();
            if (!include.test(name)) {
                continue;
            }
            if (status.isDirectory()) {
                downloadTree(fs, status.getPath(), to.resolve(name), include);
            } else {
                try (java.io.InputStream in = fs.open(status.getPath())) {
                    Files.copy(in, to.resolve(name));
                }
            }
        }
    }

    /** One local file to {@code to} on {@code fs}, replacing it (on an object store: one complete object). */
    static void copy(FileSystem fs, java.nio.file.Path from, Path to) throws IOException {
        try (java.io.InputStream in = Files.newInputStream(from);
             org.apache.hadoop.fs.FSDataOutputStream o = fs.create(to, true)) {
            in.transferTo(o);
        }
    }

    /**
     * Files written into a local directory and published one by one into {@code targetDir} (which
     * may hold other outputs, so it is not replaced as a whole): each appears whole or not at all.
     */
    public static void files(Configuration conf, String targetDir, LocalWriter writer) {
        java.nio.file.Path local = null;
        try {
            local = Files.createTempDirectory("spindle-out-");
            writer.write(local);
            try (java.util.stream.Stream<java.nio.file.Path> list = Files.list(local)) {
                for (java.nio.file.Path file : list.filter(Files::isRegularFile).sorted().toList()) {
                    fileFrom(conf, file, new Path(targetDir, file.getFileName().toString()).toString());
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write into " + targetDir + ": " + e.getMessage(), e);
        } finally {
            if (local != null) {
                FileUtil.fullyDelete(local.toFile());
            }
        }
    }

    /** A local file published as {@code target} (see {@link #file}), replacing what is there. */
    public static void fileFrom(Configuration conf, java.nio.file.Path local, String target) {
        file(conf, target, true, to -> {
            try {
                Files.copy(local, to, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
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
            if (activations.table.CommitProtocol.of(fs, conf) == activations.table.CommitProtocol.MARKER) {
                copy(fs, local, path); // one object, visible only once complete
                return;
            }
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
