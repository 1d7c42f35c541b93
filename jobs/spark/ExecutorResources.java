package jobs.spark;

import activations.model.TransformerModel;
import activations.tokenizer.TextTokenizer;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.file.Files;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Per-JVM caches of what tasks need from a model directory: each executor loads a tokenizer or a
 * model once, not per task or per batch, and tasks in the same JVM share it (both are thread-safe).
 * A model directory on a remote filesystem (hdfs://, s3a://) is first copied to local disk.
 */
public final class ExecutorResources {

    private static final Map<String, TextTokenizer> TOKENIZERS = new ConcurrentHashMap<>();
    private static final Map<String, TransformerModel> MODELS = new ConcurrentHashMap<>();
    private static final Map<String, java.nio.file.Path> LOCAL_COPIES = new ConcurrentHashMap<>();

    private ExecutorResources() {
    }

    public static TextTokenizer tokenizer(String modelDir) {
        return TOKENIZERS.computeIfAbsent(modelDir, dir -> TextTokenizer.load(localDirectory(dir)));
    }

    public static TransformerModel model(String modelDir) {
        return model(modelDir, -1);
    }

    /** One replica per device: tasks bound to GPU {@code device} share it ({@code -1}: host memory). */
    public static TransformerModel model(String modelDir, int device) {
        return MODELS.computeIfAbsent(modelDir + "@" + device, key -> TransformerModel.load(localDirectory(modelDir)));
    }

    /** A local path for a model directory given as a local path or any Hadoop filesystem URI. */
    public static java.nio.file.Path localDirectory(String dir) {
        URI uri = URI.create(dir.replace(" ", "%20"));
        if (uri.getScheme() == null || uri.getScheme().equals("file")) {
            return uri.getScheme() == null ? java.nio.file.Path.of(dir) : java.nio.file.Path.of(uri);
        }
        return LOCAL_COPIES.computeIfAbsent(dir, ExecutorResources::copyToLocal);
    }

    private static java.nio.file.Path copyToLocal(String dir) {
        try {
            Path remote = new Path(dir);
            FileSystem fs = remote.getFileSystem(new Configuration());
            java.nio.file.Path local = Files.createTempDirectory("spindle-model-");
            Runtime.getRuntime().addShutdownHook(new Thread(() -> org.apache.hadoop.fs.FileUtil.fullyDelete(local.toFile())));
            // Sharded dictionaries have subdirectories; training checkpoints (optimizer state, three
            // times the dictionary) and hidden files are left out.
            jobs.output.StagedOutput.downloadTree(fs, remote, local, name -> !name.startsWith(".") && !name.equals("checkpoints"));
            return local;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot copy directory " + dir + " to local disk: " + e.getMessage(), e);
        }
    }
}
