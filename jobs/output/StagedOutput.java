package jobs.output;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * An {@link OutputDirectory} on any Hadoop filesystem for outputs that plain-Java writers (JSON,
 * safetensors, PNG) produce on local disk: files are written to a local directory, copied into the
 * output's staging directory and published together, so the output appears whole or not at all.
 */
public final class StagedOutput implements AutoCloseable {

    private final Configuration hadoop;
    private final OutputDirectory out;
    private final java.nio.file.Path local;
    private boolean published;

    private StagedOutput(Configuration hadoop, OutputDirectory out, java.nio.file.Path local) {
        this.hadoop = hadoop;
        this.out = out;
        this.local = local;
    }

    /** Refuses a complete output ({@code manifestName} present) unless {@code overwrite}, like {@link OutputDirectory}. */
    public static StagedOutput begin(Configuration hadoop, String target, String manifestName, boolean overwrite) {
        OutputDirectory out = OutputDirectory.begin(hadoop, target, manifestName, overwrite);
        try {
            return new StagedOutput(hadoop, out, Files.createTempDirectory("spindle-output-"));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create a local staging directory: " + e.getMessage(), e);
        }
    }

    /** Where to write the files (a local directory). */
    public java.nio.file.Path local() {
        return local;
    }

    /** Copies every local file into the output's staging directory and publishes it. */
    public void publish() {
        try {
            FileSystem fs = out.staging().getFileSystem(hadoop);
            fs.mkdirs(out.staging());
            try (Stream<java.nio.file.Path> files = Files.list(local)) {
                for (java.nio.file.Path f : (Iterable<java.nio.file.Path>) files.sorted()::iterator) {
                    fs.copyFromLocalFile(false, true, new Path(f.toUri()), new Path(out.staging(), f.getFileName().toString()));
                }
            }
            out.publish();
            published = true;
        } catch (IOException e) {
            out.abandon();
            throw new UncheckedIOException("cannot write " + out.target() + ": " + e.getMessage(), e);
        }
    }

    /** Removes the local files, and the staging directory unless published. */
    @Override
    public void close() {
        if (!published) {
            out.abandon();
        }
        try (Stream<java.nio.file.Path> walk = Files.walk(local)) {
            walk.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // a temporary directory left behind is harmless
        }
    }
}
