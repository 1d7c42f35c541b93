package jobs.output;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.FileUtil;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.Set;
import java.util.stream.Stream;

/**
 * A training run's output directory on any Hadoop filesystem. The trainers are plain Java and
 * write into a local directory ({@link #local()}); for a local target that is the target itself.
 * For a remote one (HDFS, S3, ...) it is a scratch directory on this machine, and:
 * <ul>
 *   <li>every checkpoint the trainer completes is uploaded to {@code checkpoints/step-N/} with
 *       {@code metrics.jsonl}, then the marker {@code checkpoints/step-N/_COMMITTED}; only a
 *       checkpoint with its marker is resumed from, so an upload cut short is never trusted, on a
 *       store with or without atomic rename;</li>
 *   <li>a resumed run first downloads the newest committed checkpoint and the metrics, so it
 *       continues on any machine, not only the one that wrote the scratch directory;</li>
 *   <li>{@link #publish()} uploads the finished dictionary with its manifest file (cfg.json,
 *       config.yaml) last: the file the pipeline and readers take as "trained".</li>
 * </ul>
 */
public final class TrainingOutput implements AutoCloseable {

    static final String CHECKPOINTS = "checkpoints";
    static final String COMMITTED = "_COMMITTED";
    static final String METRICS = "metrics.jsonl";

    private final FileSystem fs;
    private final Path target;
    private final java.nio.file.Path local;
    private final String manifestName;
    private final boolean remote;

    private TrainingOutput(FileSystem fs, Path target, java.nio.file.Path local, String manifestName, boolean remote) {
        this.fs = fs;
        this.target = target;
        this.local = local;
        this.manifestName = manifestName;
        this.remote = remote;
    }

    /**
     * Opens {@code target}, whose complete output holds {@code manifestName}. For a remote target
     * the newest committed checkpoint and the metrics are brought into a fresh scratch directory,
     * where the trainer's own rules (refuse a checkpoint unless resuming) then apply.
     */
    public static TrainingOutput open(Configuration conf, String target, String manifestName) {
        try {
            Path path = new Path(target);
            FileSystem fs = path.getFileSystem(conf);
            path = fs.makeQualified(path);
            if (!remote(path)) {
                return new TrainingOutput(fs, path, java.nio.file.Path.of(path.toUri()), manifestName, false);
            }
            // One scratch directory per target, cleared on open: the remote copy is the truth, and a
            // killed run's leftovers are not kept growing.
            java.nio.file.Path scratch = java.nio.file.Path.of(System.getProperty("java.io.tmpdir"), "spindle-runs", digest(path.toString()));
            FileUtil.fullyDelete(scratch.toFile());
            Files.createDirectories(scratch);
            TrainingOutput out = new TrainingOutput(fs, path, scratch, manifestName, true);
            out.downloadLatestCheckpoint();
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot prepare the training output " + target + ": " + e.getMessage(), e);
        }
    }

    /** Where the trainer reads and writes. */
    public java.nio.file.Path local() {
        return local;
    }

    /** Whether the target already holds a finished dictionary (its manifest file). */
    public boolean complete() {
        try {
            return fs.exists(new Path(target, manifestName));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + target + ": " + e.getMessage(), e);
        }
    }

    /** After the trainer completed checkpoint {@code directory}: upload it, then its marker, then drop older ones. */
    public void checkpointed(java.nio.file.Path directory) {
        if (!remote || directory == null) {
            return;
        }
        try {
            Path remoteCheckpoints = new Path(target, CHECKPOINTS);
            Path remoteDir = new Path(remoteCheckpoints, directory.getFileName().toString());
            fs.delete(remoteDir, true);
            StagedOutput.uploadTree(fs, directory, remoteDir, null, p -> true);
            java.nio.file.Path metrics = local.resolve(METRICS);
            if (Files.isRegularFile(metrics)) {
                upload(metrics, new Path(target, METRICS));
            }
            fs.create(new Path(remoteDir, COMMITTED), true).close();
            // Keep remotely what the trainer keeps locally (its newest checkpoints).
            Set<String> kept = new HashSet<>();
            try (Stream<java.nio.file.Path> dirs = Files.list(directory.getParent())) {
                dirs.forEach(d -> kept.add(d.getFileName().toString()));
            }
            for (FileStatus status : fs.listStatus(remoteCheckpoints)) {
                if (!kept.contains(status.getPath().getName())) {
                    fs.delete(new Path(status.getPath(), COMMITTED), false); // untrusted before it goes
                    fs.delete(status.getPath(), true);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot upload checkpoint " + directory.getFileName() + " to " + target + ": "
                    + e.getMessage(), e);
        }
    }

    /** Uploads the finished run (dictionary, metrics, config), the manifest file last. */
    public void publish() {
        if (!remote) {
            return;
        }
        try {
            if (!Files.isRegularFile(local.resolve(manifestName))) {
                throw new IllegalStateException("the trained dictionary in " + local + " has no " + manifestName);
            }
            // Checkpoints went up as they were made.
            StagedOutput.uploadTree(fs, local, target, manifestName, p -> !p.startsWith(CHECKPOINTS));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot upload the trained dictionary to " + target + ": " + e.getMessage(), e);
        }
    }

    /** Removes the scratch directory of a remote target. */
    @Override
    public void close() {
        if (remote) {
            FileUtil.fullyDelete(local.toFile());
        }
    }

    private void downloadLatestCheckpoint() throws IOException {
        Path remoteCheckpoints = new Path(target, CHECKPOINTS);
        if (!fs.exists(remoteCheckpoints)) {
            return;
        }
        FileStatus newest = null;
        for (FileStatus status : fs.listStatus(remoteCheckpoints)) {
            if (status.isDirectory() && status.getPath().getName().matches("step-\\d+")
                    && fs.exists(new Path(status.getPath(), COMMITTED))
                    && (newest == null || step(status) > step(newest))) {
                newest = status;
            }
        }
        if (newest == null) {
            return;
        }
        System.out.println("checkpoint " + newest.getPath().getName() + " fetched from " + target);
        java.nio.file.Path into = local.resolve(CHECKPOINTS).resolve(newest.getPath().getName());
        StagedOutput.downloadTree(fs, newest.getPath(), into, name -> true);
        Files.deleteIfExists(into.resolve(COMMITTED));
        Path metrics = new Path(target, METRICS);
        if (fs.exists(metrics)) {
            try (InputStream in = fs.open(metrics)) {
                Files.copy(in, local.resolve(METRICS));
            }
        }
    }

    private static long step(FileStatus status) {
        return Long.parseLong(status.getPath().getName().substring("step-".length()));
    }

    private void upload(java.nio.file.Path file, Path to) throws IOException {
        StagedOutput.copy(fs, file, to);
    }

    private static boolean remote(Path path) {
        return !"file".equals(path.toUri().getScheme());
    }

    private static String digest(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)))
                    .substring(0, 16);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
