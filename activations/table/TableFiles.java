package activations.table;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileAlreadyExistsException;
import org.apache.hadoop.fs.FileContext;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Options;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.parquet.hadoop.util.HadoopStreams;
import org.apache.parquet.io.OutputFile;
import org.apache.parquet.io.PositionOutputStream;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.util.UUID;

/**
 * File-system moves the activation table's exactly-once guarantees rest on: temp names readers
 * ignore, atomic replace for small metadata files, and atomic create-if-absent for shards.
 */
final class TableFiles {

    private TableFiles() {
    }

    /**
     * The file system to write {@code path} with. Local paths get the raw local file system: the
     * checksummed wrapper's {@code .crc} side files would have to follow every rename, and Parquet
     * pages carry their own CRCs.
     */
    static FileSystem writableFileSystem(Path path, Configuration conf) throws IOException {
        FileSystem fs = path.getFileSystem(conf);
        return fs instanceof LocalFileSystem local ? local.getRawFileSystem() : fs;
    }

    /** A hidden sibling of {@code target} (leading '.', so Spark/Hive/Parquet readers skip it), unique per call. */
    static Path tempSibling(Path target) {
        return new Path(target.getParent(), "." + target.getName() + "." + UUID.randomUUID() + ".tmp");
    }

    static boolean isHidden(String name) {
        return name.startsWith("_") || name.startsWith(".");
    }

    /**
     * Writes {@code content} to {@code target}, replacing any previous version atomically: temp +
     * rename where renames are atomic, one whole-object write on an object store (see
     * {@link CommitProtocol}), where a PUT is all-or-nothing and a rename would be a second copy.
     */
    static void writeAtomically(FileSystem fs, Path target, byte[] content) throws IOException {
        if (CommitProtocol.of(fs, fs.getConf()) == CommitProtocol.MARKER) {
            try (FSDataOutputStream out = fs.create(target, true)) {
                out.write(content);
            }
            return;
        }
        Path temp = tempSibling(target);
        try {
            try (FSDataOutputStream out = fs.create(temp, false)) {
                out.write(content);
            }
            if (fs instanceof RawLocalFileSystem raw) {
                // POSIX rename replaces atomically; Hadoop's local OVERWRITE rename is delete-then-rename
                Files.move(raw.pathToFile(temp).toPath(), raw.pathToFile(target).toPath(),
                        StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } else {
                FileContext.getFileContext(fs.getUri(), fs.getConf()).rename(temp, target, Options.Rename.OVERWRITE);
            }
        } finally {
            deleteQuietly(fs, temp);
        }
    }

    /**
     * Moves {@code temp} to {@code target} only if {@code target} does not exist, atomically, and
     * returns whether this call created it. HDFS-style renames fail when the target exists; the
     * local file system's rename would silently replace it, so locally a hard link (which fails
     * atomically on an existing name) does the create-if-absent.
     */
    static boolean commitIfAbsent(FileSystem fs, Path temp, Path target) throws IOException {
        try {
            if (fs instanceof RawLocalFileSystem raw) {
                try {
                    Files.createLink(raw.pathToFile(target).toPath(), raw.pathToFile(temp).toPath());
                } catch (java.nio.file.FileAlreadyExistsException e) {
                    return false;
                }
                return true;
            }
            if (fs.exists(target)) {
                return false;
            }
            try {
                FileContext.getFileContext(fs.getUri(), fs.getConf()).rename(temp, target, Options.Rename.NONE);
            } catch (FileAlreadyExistsException e) {
                return false;
            }
            return true;
        } finally {
            deleteQuietly(fs, temp);
        }
    }

    static void deleteQuietly(FileSystem fs, Path path) {
        try {
            fs.delete(path, false);
        } catch (IOException ignored) {
            // best effort: a leftover hidden temp file is ignored by every reader
        }
    }

    static UncheckedIOException io(String what, Path path, IOException e) {
        return new UncheckedIOException(what + " " + path + " failed: " + oneLine(e), e);
    }

    /** An exception's message on one line, with its type when the message alone says little. */
    static String oneLine(Throwable e) {
        String message = e.getMessage();
        if (message == null || message.isBlank()) {
            message = e.getClass().getSimpleName();
        }
        return message.replaceAll("\\s*[\\r\\n]+\\s*", " ").trim();
    }

    /** Setting: bytes per HDFS checksum chunk of the cache's shards (see {@link #create}). */
    static final String BYTES_PER_CHECKSUM = "spindle.cache.bytes-per-checksum";
    static final int DEFAULT_BYTES_PER_CHECKSUM = 64 * 1024;

    /**
     * Creates a cache shard. On HDFS each shard gets CRC32C checksums over 64 KiB chunks instead of
     * the default 512 B: shards are only ever read in long sequential runs (whole column chunks), and
     * verifying 128 times fewer chunks is the largest part of what reading from HDFS costs the
     * client over reading locally (docs/PERFORMANCE.md, "Reading the cache from HDFS"). Every byte
     * is still verified. Filesystems without HDFS checksums ignore the option.
     */
    static FSDataOutputStream create(FileSystem fs, Path path, boolean overwrite) throws IOException {
        Configuration conf = fs.getConf();
        int bytesPerChecksum = conf.getInt(BYTES_PER_CHECKSUM, DEFAULT_BYTES_PER_CHECKSUM);
        long blockSize = fs.getDefaultBlockSize(path);
        if (bytesPerChecksum <= 0 || blockSize % bytesPerChecksum != 0) {
            return fs.create(path, overwrite);
        }
        java.util.EnumSet<org.apache.hadoop.fs.CreateFlag> flags = overwrite
                ? java.util.EnumSet.of(org.apache.hadoop.fs.CreateFlag.CREATE, org.apache.hadoop.fs.CreateFlag.OVERWRITE)
                : java.util.EnumSet.of(org.apache.hadoop.fs.CreateFlag.CREATE);
        return fs.create(path, org.apache.hadoop.fs.permission.FsPermission.getFileDefault()
                        .applyUMask(org.apache.hadoop.fs.permission.FsPermission.getUMask(conf)), flags,
                conf.getInt("io.file.buffer.size", 4096), fs.getDefaultReplication(path), blockSize, null,
                new org.apache.hadoop.fs.Options.ChecksumOpt(org.apache.hadoop.util.DataChecksum.Type.CRC32C, bytesPerChecksum));
    }

    /** Parquet output over a given file system (so the raw local one can be used), never overwriting. */
    static OutputFile outputFile(FileSystem fs, Path path) {
        return new OutputFile() {
            @Override
            public PositionOutputStream create(long blockSizeHint) throws IOException {
                return HadoopStreams.wrap(TableFiles.create(fs, path, false));
            }

            @Override
            public PositionOutputStream createOrOverwrite(long blockSizeHint) throws IOException {
                return HadoopStreams.wrap(TableFiles.create(fs, path, true));
            }

            @Override
            public boolean supportsBlockSize() {
                return false;
            }

            @Override
            public long defaultBlockSize() {
                return 0;
            }

            @Override
            public String getPath() {
                return path.toString();
            }
        };
    }
}
